//! The root-credential lifecycle: take-over, break-glass access, release and
//! closure. Each step is a function over the ports in [`ports`]; Step Functions
//! runs them in AWS (one Lambda per step), the CLI in-process locally.

pub mod closure;
pub mod code_mail;
pub mod console;
pub mod credentials;
pub mod estate;
pub mod handoff;
pub mod model;
pub mod notes;
pub mod operator;
pub mod ports;
pub mod steps;

pub use model::*;
pub use ports::*;
