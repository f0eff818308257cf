//! Ingests stored messages with the `mail-ingest` handler, configured exactly
//! as in Lambda (environment, `AWS_ENDPOINT_URL`), and reports the process's peak
//! memory. A separate process, so the measurement is these messages' alone.
//!
//!   ingest-one BUCKET KEY            ->   {"outcome": "...", "peak_rss_kib": N}
//!   ingest-one BUCKET KEY KEY...     ->   {"outcome": "batch of 2, 0 failed", "failed": 0, ...}
//!
//! Several keys arrive as one SQS batch (an S3 notification per record) through
//! the Lambda entry point, which handles `INGEST_CONCURRENCY` of them at once,
//! as a deployed instance does.
#![recursion_limit = "256"]

use lambda_runtime::{Context, Error, LambdaEvent};
use mail_ingest::events::MailRef;
use mail_ingest::{Config, Ingest};
use rootmail_aws::{Env, MailLocation, Metrics};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let Some(bucket) = args.next() else {
        return Err("usage: ingest-one BUCKET KEY [KEY...]".into());
    };
    let keys: Vec<String> = args.collect();
    let config = Config::from_env(&Env::process())?;
    let aws = rootmail_aws::lambda_sdk_config(&Env::process())?;
    let handler = Ingest::on_aws(config, &aws, Metrics::memory().0).expect("the S3 client builds");
    let mut report = match keys.as_slice() {
        [] => return Err("usage: ingest-one BUCKET KEY [KEY...]".into()),
        [key] => {
            let outcome = handler
                .ingest_one(&MailRef {
                    location: MailLocation {
                        bucket,
                        key: key.clone(),
                    },
                    arrived_ms: None,
                })
                .await?;
            json!({"outcome": format!("{outcome:?}")})
        }
        keys => {
            let event = LambdaEvent::new(sqs_batch(&bucket, keys), Context::default());
            let response = handler.handle(event).await?;
            let failed = response["batchItemFailures"].as_array().map_or(0, Vec::len);
            json!({
                "outcome": format!("batch of {}, {failed} failed", keys.len()),
                "failed": failed,
            })
        }
    };
    report["peak_rss_kib"] = peak_rss_kib()?.into();
    println!("{report}");
    Ok(())
}

/// The SQS event Lambda would pass: one record per object, each body the S3
/// notification the bucket sends for it.
fn sqs_batch(bucket: &str, keys: &[String]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let notification = json!({"Records": [{
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
            }]});
            json!({
                "messageId": format!("ingest-one-{i}"),
                "receiptHandle": format!("ingest-one-{i}"),
                "body": notification.to_string(),
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> Result<u64, Error> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM in /proc/self/status")?)
}
