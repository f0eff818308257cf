//! The rootmail domain: everything that decides what a root-address mail means,
//! with no I/O. Adapters (files, AWS, ticket APIs) live in other crates and
//! implement the traits declared here.

pub mod auth;
pub mod confusables;
pub mod dates;
pub mod directory;
pub mod evidence;
pub mod explain;
pub mod facts;
pub mod handoff;
pub mod html;
pub mod mail;
pub mod pattern_set;
pub mod render;
pub mod rules;
pub mod secret_scan;
pub mod secret_value;
pub mod ses;
pub mod thread;
pub mod triage;
pub mod types;

#[cfg(test)]
mod linear_tests;

pub use directory::{Account, AccountDirectory, InMemoryDirectory};
pub use handoff::{Handoff, NoRotations, WaitingRotation, WaitingRotations};
pub use render::{AttachmentRef, TicketDraft};
pub use rules::Rules;
pub use secret_value::{FoundSecret, SecretKind, SecretValue};
pub use thread::{KnownThreads, NoKnownThreads};
pub use triage::{Context, MailInput, Triage, rethread, triage, triage_parsed};
pub use types::*;
