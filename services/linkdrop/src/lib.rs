//! The linkdrop binary's library half: [`startup`] builds an application from the
//! configuration and a set of roles, exactly as `main` does, so that integration tests
//! start the very same thing on port 0; [`backends`] connects what the roles need.

pub mod backends;
pub mod listener;
pub mod serve;
pub mod startup;
pub mod watch;
