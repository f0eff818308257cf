//! Lambda entry point: one binary for every lifecycle step; `LIFECYCLE_STEP`
//! says which one this function runs.
// The SDK futures nest deeply; the default limit is too low to lay them out.
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, service_fn};
use lifecycle::{Config, Lifecycle, Step};
use rootmail_aws::logging::without_panic_message;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = rootmail_aws::start(Config::from_env).await?;
    let handler = Lifecycle::on_aws(&config, &aws)
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let handler = &handler;
    if config.step == Step::Operator {
        // People's requests through the function URL: an HTTP answer each.
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            without_panic_message(async move {
                Ok::<Value, Error>(handler.handle_operator(event).await)
            })
        }))
        .await;
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        without_panic_message(handler.handle(event))
    }))
    .await
}
