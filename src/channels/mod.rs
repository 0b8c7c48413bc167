//! Channels: how messages arrive (and are proven to come from the provider) and leave.

pub mod error;
pub mod messenger;
pub mod signature;
pub mod twilio;
