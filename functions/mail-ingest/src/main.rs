//! Lambda entry point: wire the AWS adapters once, then serve events.
// The SDK futures nest deeply; the default limit is too low to lay them out.
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, service_fn};
use mail_ingest::{Config, Ingest};
use rootmail_aws::{
    DynamoAccounts, DynamoLedger, DynamoThreadMap, Env, Metrics, S3Mail, SqsTicketQueue, logging,
};
use rootmail_domain::Rules;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init_json_logs();
    let config = Config::from_env(&Env::process())?;
    let aws = rootmail_aws::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let handler = Ingest {
        mail: S3Mail::new(rootmail_aws::s3_client(&aws)),
        ledger: DynamoLedger::new(dynamodb.clone(), &config.ledger_table),
        threads: DynamoThreadMap::new(dynamodb.clone(), &config.threads_table),
        accounts: DynamoAccounts::new(dynamodb, &config.accounts_table),
        queue: SqsTicketQueue::new(aws_sdk_sqs::Client::new(&aws), &config.ticket_ops_queue_url),
        rules: Rules::built_in(),
        metrics: Metrics::stdout(),
        config,
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler.handle(event).await
    }))
    .await
}
