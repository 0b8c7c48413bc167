//! Storage: PostgreSQL through sqlx. The embedded cluster, connections, migrations, and the
//! repositories the agent and the HTTP layer use.

pub mod backfill;
pub mod challenges;
pub mod console;
pub mod context;
pub mod customers;
pub mod embedded;
pub mod inbox;
pub mod jobs;
pub mod legacy;
pub mod memory;
pub mod migrate;
pub mod outbox;
pub mod pool;
pub mod quality;
pub mod sales;
pub mod settings;
pub mod tighten;
pub mod tokens;
