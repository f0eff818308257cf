//! AWS adapters for the rootmail ports. Each type wraps one SDK client built once
//! at cold start; endpoints come from the standard `AWS_ENDPOINT_URL*` variables,
//! so nothing here knows whether it talks to AWS or to a local stand-in.

//!
//! Cargo features choose the clients a build links (see `Cargo.toml`): `mail`,
//! `queue`, `ticket-secrets`, `organizations`, `handoffs` and `lifecycle`.

pub mod accounts;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod ledger;
#[cfg(feature = "handoffs")]
pub mod lifecycle_adapters;
pub mod logging;
#[cfg(feature = "mail")]
pub mod mail;
pub mod metrics;
#[cfg(feature = "queue")]
pub mod queue;
pub mod threads;
#[cfg(feature = "ticket-secrets")]
mod ticket_secrets;
pub mod tickets;

pub use accounts::{DynamoAccounts, Upsert};
pub use config::{ConfigError, Env};
pub use ledger::DynamoLedger;
#[cfg(feature = "mail")]
pub use mail::{MailLocation, ReadError, S3Mail, S3MailSource, SEALED_TAG};
pub use metrics::Metrics;
#[cfg(feature = "queue")]
pub use queue::{SqsDeadLetters, SqsTicketQueue, message_group_id};
pub use threads::DynamoThreadMap;

/// What every function does before it serves: JSON logs, its configuration
/// from the process environment, and the SDK's configuration. A bad
/// configuration is logged as a readable line first, because the runtime
/// prints the returned error with `Debug`.
pub async fn start<C>(
    from_env: impl FnOnce(&Env<fn(&str) -> Option<String>>) -> Result<C, ConfigError>,
) -> Result<(C, aws_config::SdkConfig), ConfigError> {
    logging::init_json_logs();
    let config = from_env(&Env::process())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    Ok((config, sdk_config().await))
}

/// Loads the SDK configuration once. S3 uses path-style addressing when an
/// endpoint override is set (local stand-ins do not serve virtual hosts).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The HTTPS client of every AWS client: rustls on ring, the crypto the ticket
/// API's client uses too, so a bootstrap links one provider (not aws-lc-rs
/// beside it). The SDK crates are built without their default client.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

#[cfg(feature = "mail")]
/// An S3 client for `config`, path-style when an endpoint override is set.
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = config.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build(),
    )
}

/// The answer to an SQS batch: these records failed and are redelivered, the
/// others are deleted.
pub fn batch_failures(
    ids: impl IntoIterator<Item = String>,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
    for id in ids {
        response.add_failure(id);
    }
    response
}
