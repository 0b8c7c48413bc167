//! Pure domain types and rules: no I/O, no database, no HTTP.

pub mod identity;
pub mod items;
pub mod memory;
pub mod messaging;
pub mod money;
pub mod password;
pub mod pricing;
pub mod progress;
pub mod schedule;
pub mod secret;
pub mod stages;
pub mod token;

use serde::{Deserialize, Serialize};

stages::named_enum! {
    /// Where a conversation happens (the database's `Channel`).
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    Channel as "Channel" {
        /// Text messages (Twilio).
        Sms = "sms",
        /// Facebook Messenger.
        Messenger = "messenger",
        /// The web chat on the company's site.
        Web = "web",
    }
}
