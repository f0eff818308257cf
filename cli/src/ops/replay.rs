//! `rootmail replay`: re-drive stored mail or dead letters through the pipeline.
//!
//! Stored mail is announced again on the inbound queue with the S3 event S3 would
//! have sent; dead letters go back to the queue they belong to. Both are safe to
//! repeat: the ledger makes a message that was finished a no-op.

use anyhow::Context as _;
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use rootmail_aws::mail::created_event;
use rootmail_aws::{MailLocation, message_group_id};
use rootmail_pipeline::TicketOp;
use std::time::{SystemTime, UNIX_EPOCH};

/// Announces every object under `prefix` on the inbound queue.
pub async fn bucket(bucket: &str, prefix: &str, inbound_queue: &str) -> anyhow::Result<()> {
    let aws = rootmail_aws::sdk_config().await;
    let s3 = rootmail_aws::s3_sdk_client(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let mut objects = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("listing s3://{bucket}/{prefix}"))?;
        for object in page.contents.unwrap_or_default() {
            if let Some(key) = object.key {
                objects.push((key, object.size.unwrap_or(0).max(0) as u64));
            }
        }
    }
    let bar = super::progress(Some(objects.len() as u64), "replaying");
    let now = now_rfc3339();
    for chunk in objects.chunks(10) {
        let mut batch = sqs.send_message_batch().queue_url(inbound_queue);
        for (i, (key, size)) in chunk.iter().enumerate() {
            let location = MailLocation {
                bucket: bucket.to_string(),
                key: key.clone(),
            };
            batch = batch.entries(
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(created_event(&location, *size, &now).to_string())
                    .build()?,
            );
        }
        let sent = batch.send().await.context("sending to the inbound queue")?;
        if let Some(failed) = sent.failed.first() {
            anyhow::bail!(
                "the inbound queue refused a message: {} ({})",
                failed.message.as_deref().unwrap_or("no reason given"),
                failed.code
            );
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    println!(
        "replayed {} objects from s3://{bucket}/{prefix} to {inbound_queue}",
        objects.len()
    );
    Ok(())
}

/// Where dead letters go back to.
pub struct Targets<'a> {
    pub inbound_queue: Option<&'a str>,
    pub ticket_ops_queue: Option<&'a str>,
}

#[derive(Default)]
struct Moved {
    operations: usize,
    events: usize,
    /// Dead letters that arrived after the run began, left for the next.
    later: usize,
    /// What stays, by message id: its latest receipt handle.
    unknown: std::collections::BTreeMap<String, String>,
}

/// Moves every message of a dead-letter queue back where it belongs: ticket
/// operations to the ticket-ops queue, S3 events to the inbound queue. What is
/// neither stays in the DLQ.
pub async fn dead_letters(dlq: &str, targets: Targets<'_>) -> anyhow::Result<()> {
    let aws = rootmail_aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let bar = super::progress(None, "replaying dead letters");
    let mut moved = Moved::default();
    // What reached the DLQ after this run began (an operation replayed now
    // that failed again) waits for the next run: else a backend that keeps
    // refusing would keep this one going for ever.
    let started_ms = now_millis();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            // Hidden while this run lasts, so a message left behind is not read twice.
            .visibility_timeout(HIDDEN_SECS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .with_context(|| format!("reading {dlq}"))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            take(&sqs, (dlq, &targets), message, started_ms, &mut moved).await?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    release_unknown(&sqs, dlq, moved.unknown.values()).await?;
    println!(
        "replayed {} ticket operations and {} mail events from {dlq}; {} not recognized, left in the DLQ{}",
        moved.operations,
        moved.events,
        moved.unknown.len() - moved.later,
        match moved.later {
            0 => String::new(),
            n => format!("; {n} that arrived during this run left for the next"),
        }
    );
    Ok(())
}

/// One dead letter: sent back and deleted, or kept to be shown again at the
/// end (not recognised, or arrived after the run began at `started_ms`).
async fn take(
    sqs: &aws_sdk_sqs::Client,
    (dlq, targets): (&str, &Targets<'_>),
    message: aws_sdk_sqs::types::Message,
    started_ms: u128,
    moved: &mut Moved,
) -> anyhow::Result<()> {
    let sent_ms = sent_at_ms(&message);
    let body = message.body.unwrap_or_default();
    let handle = message.receipt_handle.unwrap_or_default();
    let id = message.message_id.unwrap_or_default();
    // Seen before (a run past the visibility timeout received it again):
    // only its newest handle can release it at the end.
    if let Some(kept) = moved.unknown.get_mut(&id) {
        *kept = handle;
        return Ok(());
    }
    if sent_ms.is_some_and(|sent| sent >= started_ms) {
        moved.later += 1;
        moved.unknown.insert(id, handle);
        return Ok(());
    }
    if send_back(sqs, targets, &body, moved).await? {
        sqs.delete_message()
            .queue_url(dlq)
            .receipt_handle(&handle)
            .send()
            .await
            .context("deleting a replayed dead letter")?;
    } else {
        moved.unknown.insert(id, handle);
    }
    Ok(())
}

/// Sends one dead letter back to the queue it came from; `false`: it is
/// neither a ticket operation nor a mail event, and stays.
async fn send_back(
    sqs: &aws_sdk_sqs::Client,
    targets: &Targets<'_>,
    body: &str,
    moved: &mut Moved,
) -> anyhow::Result<bool> {
    if let Ok(op) = serde_json::from_str::<TicketOp>(body) {
        let queue = targets
            .ticket_ops_queue
            .context("a ticket operation is in the DLQ: give --ticket-ops-queue")?;
        // A fresh deduplication id: the original's may still be remembered.
        let hash = op.message.as_str();
        let dedup = format!("{}-replay-{}", hash.get(..40).unwrap_or(hash), now_millis());
        sqs.send_message()
            .queue_url(queue)
            .message_body(body)
            .message_group_id(message_group_id(&op.thread_key))
            .message_deduplication_id(dedup)
            .send()
            .await
            .context("sending to the ticket-ops queue")?;
        moved.operations += 1;
        Ok(true)
    } else if is_mail_event(body) {
        let queue = targets
            .inbound_queue
            .context("a mail event is in the DLQ: give --inbound-queue")?;
        sqs.send_message()
            .queue_url(queue)
            .message_body(body)
            .send()
            .await
            .context("sending to the inbound queue")?;
        moved.events += 1;
        Ok(true)
    } else {
        Ok(false)
    }
}

/// When SQS first received a message (`SentTimestamp`, milliseconds).
fn sent_at_ms(message: &aws_sdk_sqs::types::Message) -> Option<u128> {
    message
        .attributes
        .as_ref()?
        .get(&MessageSystemAttributeName::SentTimestamp)?
        .parse()
        .ok()
}

/// How long a received dead letter stays hidden from this run's next receives.
const HIDDEN_SECS: i32 = 600;

/// What was not recognised becomes visible again for a person to look at.
async fn release_unknown(
    sqs: &aws_sdk_sqs::Client,
    dlq: &str,
    handles: impl Iterator<Item = &String>,
) -> anyhow::Result<()> {
    for handle in handles {
        // One that cannot be released (deleted meanwhile, a stale handle)
        // shows again when its hiding ends: the others are still released.
        if let Err(e) = sqs
            .change_message_visibility()
            .queue_url(dlq)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
        {
            eprintln!(
                "a dead letter left behind could not be shown again at once ({}); it shows in {HIDDEN_SECS} s",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            );
        }
    }
    Ok(())
}

/// An S3 event notification (or S3's test event) as the inbound queue carries it.
fn is_mail_event(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("Records").is_some_and(|r| r.is_array()))
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn now_rfc3339() -> String {
    aws_sdk_s3::primitives::DateTime::from(SystemTime::now())
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}
