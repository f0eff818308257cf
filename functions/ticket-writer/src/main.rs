//! Lambda entry point: wire the adapters once, then serve FIFO batches.
// The SDK futures nest deeply; the default limit is too low to lay them out.
#![recursion_limit = "256"]

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use rootmail_aws::queue::SqsDeadLetters;
use rootmail_aws::{DynamoLedger, DynamoThreadMap, Env, Metrics, logging};
use rootmail_tickets::{HttpClient, RetryPolicy, Webhook};
use ticket_writer::{Backend, Config, Writer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init_json_logs();
    let config = Config::from_env(&Env::process())?;
    let aws = rootmail_aws::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let policy = RetryPolicy {
        max_attempts: config.http_max_attempts,
        ..RetryPolicy::default()
    };
    let Backend::Webhook { url, token } = &config.backend;
    let http = HttpClient::new("webhook", config.http_timeout, policy)?;
    let handler = Writer {
        ledger: DynamoLedger::new(dynamodb.clone(), &config.ledger_table),
        threads: DynamoThreadMap::new(dynamodb, &config.threads_table),
        sink: Webhook::new(http, url, token.clone()),
        dead_letters: SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(&aws),
            &config.dead_letter_queue_url,
        ),
        metrics: Metrics::stdout(),
        concurrency: config.concurrency,
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        handler.handle(event).await
    }))
    .await
}
