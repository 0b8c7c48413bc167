//! JunkQuote: quotes, approves and books junk-removal jobs over SMS, Messenger and web chat.
//!
//! The layers, from the inside out (each uses only those before it): `domain` (pure rules:
//! money, pricing, item recognition), `store` (PostgreSQL: the embedded cluster, migrations),
//! `http` (the axum server) and `cli` (the subcommands).

pub mod cli;
pub mod domain;
pub mod http;
pub mod store;
