//! What the operator's console stores and reads: its users, sessions and login attempts, and
//! the read models of its pages.

pub mod auth;
pub mod company;
pub mod conversations;
pub mod views;
