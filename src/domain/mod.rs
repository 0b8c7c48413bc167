//! Pure domain types and rules: no I/O, no database, no HTTP.

pub mod identity;
pub mod items;
pub mod memory;
pub mod money;
pub mod password;
pub mod pricing;
pub mod progress;
pub mod schedule;
pub mod secret;
pub mod token;

use serde::{Deserialize, Serialize};

/// Where a conversation happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Text messages (Twilio).
    Sms,
    /// Facebook Messenger.
    Messenger,
    /// The web chat on the company's site.
    Web,
}

impl Channel {
    /// The name stored in the database's `"Channel"` enum.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Messenger => "messenger",
            Channel::Web => "web",
        }
    }
}
