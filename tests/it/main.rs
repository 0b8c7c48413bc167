//! The integration tests: one binary (one link step), a module per capability, shared helpers.
//!
//! Most tests start the application in-process on port 0 over a database of their own
//! ([`helpers::TestApp`]) and run the background jobs on demand; the command-line tests
//! (`cli`, `serve`, `migrations`, `embedded`, parts of `takeover`) run the `junkquote` binary.

mod helpers;

mod answering;
mod backups;
mod browser;
mod chat_limits;
mod cli;
mod console;
mod conversation;
mod crews;
mod embedded;
mod eval;
mod hardening;
mod identity;
mod llm;
mod memory;
mod messenger;
mod metrics;
mod migrations;
mod outbox;
mod quotes;
mod rules;
mod serve;
mod takeover;
