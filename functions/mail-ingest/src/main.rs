//! Lambda entry point: wire the AWS adapters once, then serve events.
// The SDK futures nest deeply; the default limit is too low to lay them out.
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, service_fn};
use mail_ingest::{Config, Ingest};
use rootmail_aws::Metrics;
use rootmail_aws::logging::without_panic_message;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = rootmail_aws::start(Config::from_env).await?;
    let handler = Ingest::on_aws(config, &aws, Metrics::stdout())
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    // The first triage's one-time work (about 15 ms of CPU), done in init,
    // which Lambda runs on a full vCPU, rather than in the first invocation
    // at the seventh of one that 256 MB buys (rootmail_domain::warm_up).
    rootmail_domain::warm_up(&handler.rules);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        without_panic_message(handler.handle(event))
    }))
    .await
}
