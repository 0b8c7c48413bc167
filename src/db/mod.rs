//! Database plumbing: connecting (a pool over `DATABASE_URL`, or the embedded PostgreSQL this
//! process launches) and the schema's migrations (runner, catalog, verify, lint, adopt).

pub mod backup;
pub mod embedded;
pub mod migrate;
pub mod pool;
