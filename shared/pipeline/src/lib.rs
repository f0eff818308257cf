//! The rootmail pipeline, generic over its ports.
//!
//! Stage one, [`ingest()`] (in `ingest.rs`), turns raw bytes into a ledger row
//! and at most one [`TicketOp`]; stage two, [`write_ticket`] (in `write.rs`),
//! applies that operation to a ticketing system. In AWS a FIFO queue sits
//! between them; locally they run one after the other. Both stages are
//! idempotent: any message or operation may be delivered again and has no
//! second effect. Each stage takes its ports by name ([`IngestPorts`],
//! [`WriterPorts`]).

pub mod error;
pub mod model;
pub mod ports;

/// The fail-point registry, for tests built with the `failpoints` feature.
#[cfg(feature = "failpoints")]
pub use fail;

/// A step boundary where a test build (feature `failpoints`) can crash the run,
/// to prove that redelivery after a crash there loses and repeats nothing.
/// Compiles to nothing otherwise. The names are listed in [`CRASH_POINTS`].
#[cfg(feature = "failpoints")]
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        $crate::fail::fail_point!($name)
    };
}

/// See the `failpoints` variant: without the feature, nothing.
#[cfg(not(feature = "failpoints"))]
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {};
}

/// Every crash point, in the order a message meets them.
pub const CRASH_POINTS: &[&str] = &[
    "ingest.after-claim",
    "ingest.after-archive",
    "ingest.after-record",
    "ingest.after-enqueue",
    "writer.after-start-sending",
    "writer.after-create",
    "writer.after-comment",
    "writer.after-thread-saved",
    "writer.after-ledger-done",
];

mod ingest;
mod prepared;
mod write;

pub use ingest::{
    DEFAULT_STALE_CLAIM_SECS, IngestPorts, Ingested, Knowledge, Prepared, ingest, ingest_prepared,
    record_unreadable, record_unreadable_as, unreadable_key,
};
pub use model::*;
pub use ports::*;
pub use write::{
    Applied, WriterPorts, Written, apply_ticket_op, create_key, idempotency_key, new_ticket,
    write_ticket,
};
