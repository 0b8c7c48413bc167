//! Pure domain types and rules: no I/O, no database, no HTTP.

pub mod items;
pub mod money;
pub mod pricing;
pub mod schedule;
