//! The integration tests: one binary, one module per concern (each module's
//! own doc says what it covers). `crash_points` stays a binary of its own:
//! its fail points are process-wide and would fire inside these tests.

mod account_fake;
mod aws_adapters;
mod aws_cli;
mod aws_pipeline;
mod backfill;
mod bad_input;
mod cli;
mod corpus;
mod error_decisions;
mod first_send;
mod function_length;
mod infra_template;
mod input_limits;
mod lambda_binaries;
mod leak_scan;
mod lifecycle_aws;
mod lifecycle_cli;
mod lifecycle_local;
mod local_pipeline;
mod ordering;
mod readme;
mod rt_end_to_end;
mod s3_signing;
mod soak;
mod spoofing;
mod tls;
mod webhook_stateful;
mod zendesk_stateful;
