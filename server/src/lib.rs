//! The `horde` binary's library: configuration, the HTTP adapter and background duties.

pub mod api;
pub mod cli;
pub mod duties;
pub mod local_worker;
pub mod site;
pub mod webhooks;
