//! The rootmail domain: everything that decides what a root-address mail means,
//! with no I/O. Adapters (files, AWS, ticket APIs) live in other crates and
//! implement the traits declared here.

pub mod auth;
mod case_relay;
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
pub mod warm_up;

#[cfg(test)]
mod linear_tests;

/// A small deterministic generator for the tests that check a fast reading
/// against a plain one on generated input (xorshift64).
#[cfg(test)]
pub(crate) fn generator(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below as u64) as usize
    }
}

pub use directory::{Account, AccountDirectory, InMemoryDirectory};
pub use handoff::{Handoff, NoRotations, UnreadSecret, WaitingRotation, WaitingRotations};
pub use render::{AttachmentRef, TicketDraft};
pub use rules::Rules;
pub use secret_value::{FoundSecret, SecretKind, SecretValue};
pub use thread::{KnownThreads, NoKnownThreads};
pub use triage::{Context, MailInput, Triage, rethread, triage, triage_parsed};
pub use types::*;
pub use warm_up::warm_up;
