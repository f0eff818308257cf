//! The backends' HTTP requests, each against a fake of its API
//! (`rootmail-fake-http`: an axum router on loopback that records what it got).

mod fixtures;
mod jira_requests;
mod rt_requests;
mod webhook_requests;
mod zendesk_requests;
