//! rootmail's embedded default: the pipeline's ports over SQLite and files in
//! one state directory, and the account directory from CSV, so the whole
//! product runs on one machine with no AWS.

pub mod accounts;
pub mod console;
pub mod db;
mod legacy;
pub mod lifecycle_store;
pub mod store;
pub mod workflow;

pub use store::{LocalComment, LocalStore, LocalTicket, StoreError};
