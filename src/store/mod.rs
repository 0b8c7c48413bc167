//! Storage: PostgreSQL through sqlx. The embedded cluster, connections, and migrations.

pub mod embedded;
pub mod migrate;
pub mod pool;
