//! AWS adapters for the rootmail ports. Each type wraps one SDK client built once
//! at cold start (S3, Step Functions, KMS, SES and Secrets Manager: clients of
//! our own, `s3` and `aws_json`, for the few calls the Lambdas make); endpoints
//! come from the standard `AWS_ENDPOINT_URL*` variables, so nothing here knows
//! whether it talks to AWS or to a local stand-in.
//!
//! Cargo features choose the clients a build links (see `Cargo.toml`): `mail`,
//! `queue`, `ticket-secrets`, `organizations`, `handoffs`, `lifecycle`, and
//! `s3-sdk` (the SDK's S3 client, for the command-line tool and the tests).

pub mod accounts;
#[cfg(any(feature = "handoffs", feature = "ticket-secrets"))]
pub mod aws_json;
pub mod caller_proof;
pub mod config;
#[cfg(any(feature = "mail", feature = "handoffs", feature = "ticket-secrets"))]
mod credentials;
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
#[cfg(feature = "mail")]
pub mod s3;
mod sdk_http;
#[cfg(any(feature = "handoffs", feature = "ticket-secrets"))]
mod secrets_manager;
pub mod sigv4;
#[cfg(test)]
mod test_server;
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
#[cfg(feature = "mail")]
pub use s3::S3Client;
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
    // The SDK's whole default chain only in the baseline `make bench` builds
    // to compare with (scripts/bootstrap-sizes).
    #[cfg(feature = "default-chain")]
    let aws = sdk_config().await;
    #[cfg(not(feature = "default-chain"))]
    let aws = lambda_sdk_config(&Env::process())?;
    Ok((config, aws))
}

/// The SDK configuration inside Lambda, from the variables Lambda sets: the
/// region, the execution role's credentials and, where a test or a local
/// stand-in gives one, `AWS_ENDPOINT_URL`. The SDK's default chain finds these
/// first in Lambda too; building from them alone keeps its other sources
/// (profile files, IMDS, ECS, web identity through STS) out of the
/// bootstraps (issue 16: smaller bootstraps load faster). FIPS and dual-stack
/// endpoints are read as the SDK reads them; other SDK settings are not.
pub fn lambda_sdk_config<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<aws_config::SdkConfig, ConfigError> {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let region = env
        .optional("AWS_REGION")
        .or_else(|| env.optional("AWS_DEFAULT_REGION"))
        .ok_or(ConfigError::Missing("AWS_REGION"))?;
    let flag = |name| env.parsed_or::<bool>(name, false);
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        // The default chain's connect timeout.
        .connect_timeout(std::time::Duration::from_millis(3100))
        .build();
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(https_client())
        .retry_config(aws_config::retry::RetryConfig::standard())
        .timeout_config(timeouts)
        .use_fips(flag("AWS_USE_FIPS_ENDPOINT")?)
        .use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT")?);
    builder.set_endpoint_url(env.optional("AWS_ENDPOINT_URL"));
    Ok(builder.build())
}

/// Loads the SDK configuration once. S3 uses path-style addressing when an
/// endpoint override is set (local stand-ins do not serve virtual hosts).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The HTTPS client of every AWS client: reqwest with rustls on ring, the
/// client and crypto the ticket APIs use too, so a bootstrap links one HTTP
/// stack and one provider (not aws-lc-rs beside it). The SDK crates are built
/// without their default client.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    sdk_http::sdk_http_client()
}

#[cfg(feature = "s3-sdk")]
/// The SDK's S3 client for `config`, path-style when an endpoint override is
/// set: the command-line tool's and the tests' (listing, copying, writing).
pub fn s3_sdk_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
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

/// Time kept back from an invocation's deadline to answer its batch.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// When a handler gives up the records of its batch still running:
/// [`DEADLINE_MARGIN`] before the invocation's `deadline_ms` (milliseconds
/// since the epoch, as Lambda's context gives it; 0, as a context built by
/// hand has, is none). A record given up is reported failed and retried
/// alone, as after a crash at that point, where a timed-out function would
/// have SQS send its whole batch back.
pub fn finish_by(deadline_ms: u64, now_ms: u64) -> Option<tokio::time::Instant> {
    let deadline_ms = (deadline_ms > 0).then_some(deadline_ms)?;
    let left = std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Some(tokio::time::Instant::now() + left.saturating_sub(DEADLINE_MARGIN))
}

/// What `work` gives, or None when `until` came first (`work` is dropped
/// there: every hop of the pipeline is safe to stop at an await, as at a
/// crash).
pub async fn unless_late<F: std::future::Future>(
    until: Option<tokio::time::Instant>,
    work: F,
) -> Option<F::Output> {
    match until {
        Some(until) => tokio::time::timeout_at(until, work).await.ok(),
        None => Some(work.await),
    }
}

#[cfg(test)]
mod tests {
    use super::{ConfigError, Env, lambda_sdk_config};

    #[test]
    fn lambda_sdk_config_reads_what_lambda_sets_and_names_what_is_missing() {
        let config = lambda_sdk_config(&Env::from_pairs([
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]))
        .expect("config");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(config.credentials_provider().is_some());
        assert_eq!(config.use_fips(), Some(false));

        let no_endpoint =
            lambda_sdk_config(&Env::from_pairs([("AWS_DEFAULT_REGION", "us-east-2")]))
                .expect("config");
        assert_eq!(no_endpoint.region().map(|r| r.as_ref()), Some("us-east-2"));
        assert_eq!(no_endpoint.endpoint_url(), None);

        let missing = lambda_sdk_config(&Env::from_pairs([("AWS_ENDPOINT_URL", "http://x")]));
        assert!(
            matches!(missing, Err(ConfigError::Missing("AWS_REGION"))),
            "{missing:?}"
        );
        let bad = lambda_sdk_config(&Env::from_pairs([
            ("AWS_REGION", "eu-west-1"),
            ("AWS_USE_FIPS_ENDPOINT", "yes please"),
        ]));
        assert!(
            matches!(
                &bad,
                Err(ConfigError::Invalid {
                    name: "AWS_USE_FIPS_ENDPOINT",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}
