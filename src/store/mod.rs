//! The service's storage: one repository per aggregate, over PostgreSQL through sqlx. The only
//! place the service runs SQL (the database plumbing is in `db`, the takeover tooling in
//! `takeover`). Functions take a `&mut PgConnection` so that the caller decides the
//! transaction; the lock order every writer follows is conversation, then lead, then quote/job.

pub mod audit;
pub mod challenges;
pub mod codec;
pub mod console;
pub mod context;
pub mod conversations;
pub mod customers;
pub mod inbox;
pub mod jobs;
pub mod leads;
pub mod limits;
pub mod memory;
pub mod outbox;
pub mod quotes;
pub mod rules;
pub mod settings;
pub mod tokens;
pub mod users;
