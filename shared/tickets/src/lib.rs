//! Ticketing backends behind the pipeline's `TicketSink` port.
//!
//! This crate holds the HTTP plumbing every backend shares (one client, timeouts,
//! retries that honour `Retry-After`), the backends, and [`AnyBackend`], the one
//! chosen by configuration.

pub mod backend;
pub mod credential;
pub mod http;
pub mod jira;
pub mod marker;
pub mod reloading;
pub mod rt;
pub mod ticket_text;
pub mod webhook;
pub mod zendesk;

pub use backend::{AnyBackend, BackendError, BackendKind, BackendSettings};
pub use http::{HttpClient, RetryPolicy};
pub use jira::{Jira, JiraCredentials, JiraOptions};
pub use marker::MarkerKey;
pub use reloading::{Built, Reload, ReloadingSink};
pub use rt::{Rt, RtCredentials, RtOptions};
pub use webhook::{Webhook, WebhookCredentials};
pub use zendesk::{Zendesk, ZendeskCredentials, ZendeskOptions};
