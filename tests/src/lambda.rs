//! Drives handlers the way the Lambda SQS event source does: receive a batch,
//! hand it over as an `SqsEvent`, delete what succeeded, and make what failed
//! visible again (Lambda waits for the visibility timeout; tests do not).

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::future::Future;

/// Up to `max` messages as a Lambda event, or `None` when the queue has none visible.
pub async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, max: i32) -> Option<SqsEvent> {
    let received = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return None;
    }
    let records: Vec<Value> = messages.iter().map(record).collect();
    Some(serde_json::from_value(json!({ "Records": records })).expect("SqsEvent"))
}

fn record(message: &Message) -> Value {
    let attributes: Map<String, Value> = message
        .attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), Value::String(v)))
        .collect();
    json!({
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "md5OfBody": message.md5_of_body,
        "attributes": attributes,
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "awsRegion": "us-east-1",
    })
}

/// What Lambda does with a batch's answer: delete the successes, release the failures.
pub async fn settle(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    event: &SqsEvent,
    response: &SqsBatchResponse,
) {
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for record in &event.records {
        let id = record.message_id.as_deref().unwrap_or_default();
        let handle = record.receipt_handle.as_deref().expect("receipt handle");
        if failed.contains(id) {
            sqs.change_message_visibility()
                .queue_url(url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .expect("release");
        } else {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(handle)
                .send()
                .await
                .expect("delete");
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub batches: usize,
    pub records: usize,
    pub failures: usize,
}

/// Feeds the queue to `handler` in batches of ten until it is empty.
pub async fn drain<F, Fut>(sqs: &aws_sdk_sqs::Client, url: &str, mut handler: F) -> Drained
where
    F: FnMut(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let mut drained = Drained::default();
    while let Some(event) = receive(sqs, url, 10).await {
        assert!(drained.batches < 5_000, "queue {url} never drains");
        drained.batches += 1;
        drained.records += event.records.len();
        let response = handler(event.clone()).await;
        drained.failures += response.batch_item_failures.len();
        settle(sqs, url, &event, &response).await;
    }
    drained
}

/// How many messages a queue holds (visible and in flight).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|a| {
        attributes
            .get(a)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    })
    .sum()
}
