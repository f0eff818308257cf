//! Lambda entry point: wire the adapters once, then serve FIFO batches.
// The SDK futures nest deeply; the default limit is too low to lay them out.
#![recursion_limit = "256"]

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use rootmail_aws::Metrics;
use rootmail_aws::logging::without_panic_message;
use ticket_writer::{Config, Writer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = rootmail_aws::start(Config::from_env).await?;
    let handler = Writer::on_aws(&config, &aws, Metrics::stdout())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        without_panic_message(handler.handle(event))
    }))
    .await
}
