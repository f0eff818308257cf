//! The backends' HTTP requests, each against a recorded fake of its API.

mod jira_requests;
mod rt_requests;
mod webhook_requests;
mod zendesk_requests;
