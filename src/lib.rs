//! JunkQuote: quotes, approves and books junk-removal jobs over SMS, Messenger and web chat.
//!
//! The layers, from the inside out; each uses only those above it in this list:
//! - `domain`: pure types and rules (identities, money, pricing, item recognition, pickup
//!   windows, lead stages), no I/O;
//! - `db`: connecting to PostgreSQL (a pool, or the embedded cluster) and migrations;
//! - `store`: the service's repositories, the only place it runs SQL; `takeover`: adopting
//!   and converting an original JunkQuoteAgent database;
//! - `agent`: the conversation engine (rule-based, or a model driving the same tools);
//! - `channels`: Twilio, Messenger: signatures, outbound clients, send errors;
//! - `jobs`: the background jobs and the one loop that runs them;
//! - `http`: the axum routers; `app`: the application assembled; `cli`: the subcommands.
//!
//! `docs/ARCHITECTURE.md` is the map.

pub mod agent;
pub mod app;
pub mod channels;
pub mod cli;
pub mod db;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod store;
pub mod takeover;
