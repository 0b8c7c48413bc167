//! The read models of the operator's console pages: they only read (its users and sessions are
//! in `store::users`, what it changes in the repository of each aggregate).

pub mod company;
pub mod conversations;
pub mod views;
