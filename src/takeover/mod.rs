//! Taking over an original JunkQuoteAgent database: realistic legacy data to rehearse on,
//! the backfill of customers, conversations and messages from its rows, the tightening that the
//! backfill makes possible, and the quality gates of `db check`. Not used by `serve`.

pub mod backfill;
pub mod legacy;
pub mod quality;
pub mod tighten;
