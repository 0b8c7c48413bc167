//! JunkQuote: quotes, approves and books junk-removal jobs over SMS, Messenger and web chat.
//!
//! The layers, from the inside out (each uses only those before it): `domain` (pure rules:
//! money, pricing, item recognition, pickup windows), `store` (PostgreSQL: the embedded
//! cluster, migrations), `channels` (provider signatures), `http` (the axum server) and `cli`
//! (the subcommands).

pub mod agent;
pub mod channels;
pub mod cli;
pub mod domain;
pub mod http;
pub mod store;
