//! Ticketing backends behind the pipeline's `TicketSink` port.
//!
//! This crate holds the HTTP plumbing every backend shares (one client, timeouts,
//! retries that honour `Retry-After`) and the plain JSON webhook backend.

pub mod http;
pub mod rt;
pub mod webhook;
pub mod zendesk;

pub use http::{HttpClient, RetryPolicy};
pub use rt::{Rt, RtCredentials, RtOptions};
pub use webhook::Webhook;
pub use zendesk::{Zendesk, ZendeskCredentials, ZendeskOptions};
