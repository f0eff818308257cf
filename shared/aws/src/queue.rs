//! SQS queues: the FIFO queue of ticket operations and the dead-letter queue.

use crate::error::port_error;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use rootmail_domain::{ContentHash, ThreadKey};
use rootmail_pipeline::{DeadLetters, PortError, PortResult, TicketOp, TicketQueue};

const PORT: &str = "queue";
/// SQS limits group and deduplication ids to 128 characters of printable ASCII.
const MAX_ID_CHARS: usize = 128;

/// The FIFO group of a thread: its key when SQS accepts it as is, else a hash of
/// it. Either way one thread is one group, so it is never written concurrently.
pub fn message_group_id(key: &ThreadKey) -> String {
    let text = key.as_str();
    let valid = text.len() <= MAX_ID_CHARS && text.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        text.to_string()
    } else {
        format!(
            "thread-{}",
            &ContentHash::of(text.as_bytes()).as_str()[..48]
        )
    }
}

#[derive(Clone)]
pub struct SqsTicketQueue {
    client: Client,
    url: String,
}

impl SqsTicketQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl TicketQueue for SqsTicketQueue {
    async fn enqueue(&self, op: &TicketOp) -> PortResult<()> {
        let body = serde_json::to_string(op).map_err(|e| {
            PortError::permanent(PORT, format!("cannot serialize the ticket operation: {e}"))
        })?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(message_group_id(&op.thread_key))
            // The message's hash: a redelivered mail enqueues no second operation
            // within SQS's five-minute window (the writer covers the rest).
            .message_deduplication_id(op.message.as_str())
            .send()
            .await
            .map_err(|e| port_error(PORT, e))?;
        Ok(())
    }
}

/// A dead-letter queue written to directly, with the reason as an attribute.
#[derive(Clone)]
pub struct SqsDeadLetters {
    client: Client,
    url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl DeadLetters for SqsDeadLetters {
    async fn bury(&self, body: &str, reason: &str) -> PortResult<()> {
        let reason_attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(attribute_text(reason))
            .build()
            .map_err(|e| PortError::permanent(PORT, e.to_string()))?;
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_attributes("reason", reason_attribute);
        if self.url.ends_with(".fifo") {
            // A group of its own: a FIFO queue holds a group's later messages
            // while one is in flight, and `replay --dlq` keeps the ones it
            // does not recognise in flight; order among dead letters means
            // nothing (replay sends each back to its thread's group).
            let id = ContentHash::of(body.as_bytes());
            send = send
                .message_group_id(id.as_str())
                .message_deduplication_id(burial_id(body).as_str());
        }
        send.send().await.map_err(|e| port_error(PORT, e))?;
        Ok(())
    }
}

/// When failed deliveries of a queue are seen again: their visibility
/// timeout, set to what the failure said (a `Retry-After`) rather than the
/// queue's own, which is sized for a ticket API that is down.
#[derive(Clone)]
pub struct SqsRedelivery {
    client: Client,
    url: String,
}

/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;

impl SqsRedelivery {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Each receipt handle's message is delivered again after its duration
    /// (at least a second, at most 12 hours), counted from now.
    pub async fn redeliver_after(&self, told: &[(String, std::time::Duration)]) -> PortResult<()> {
        use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry as Entry;
        let secs = |after: &std::time::Duration| {
            after
                .as_secs_f64()
                .ceil()
                .clamp(1.0, MAX_VISIBILITY_SECS as f64) as i32
        };
        // A batch takes at most 10 entries.
        for chunk in told.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (handle, after))| {
                    Entry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout(secs(after))
                        .build()
                        .map_err(|e| PortError::permanent(PORT, e.to_string()))
                })
                .collect::<PortResult<Vec<_>>>()?;
            let answer = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| port_error(PORT, e))?;
            if let Some(failed) = answer.failed.first() {
                return Err(PortError::transient(
                    PORT,
                    format!(
                        "changing a message's visibility: {} ({})",
                        failed.code,
                        failed.message.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `text` as SQS takes it in a message attribute, which holds the
/// characters its message bodies may (XML's: tab, line breaks, and from
/// U+0020 on, without surrogates, which no `char` is, U+FFFE and U+FFFF);
/// SQS refuses a message with any other, and a reason quotes a ticket API's
/// answer, which may hold a terminal's escape codes. Each other character
/// becomes U+FFFD.
fn attribute_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || rootmail_domain::mail::is_refused_noncharacter(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// A dead letter's deduplication id: its body and the moment it is buried.
/// SQS drops, while reporting success, a message whose id it saw in the
/// last five minutes, even one since received and deleted: with the body's
/// hash alone, an operation replayed from the DLQ that failed again within
/// five minutes was dropped, in neither queue. A burial sent twice (a retry
/// of the writer) leaves two copies; replaying both is harmless, since the
/// writer applies an operation once.
fn burial_id(body: &str) -> ContentHash {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    ContentHash::of_parts(&[body.as_bytes(), &now.to_be_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_keeps_only_what_sqs_takes_in_an_attribute() {
        let answer = "HTTP 500: \u{1b}[31mboom\u{1b}[0m\u{0}\tline\nnext ü \u{FFFE}";
        assert_eq!(
            attribute_text(answer),
            "HTTP 500: \u{FFFD}[31mboom\u{FFFD}[0m\u{FFFD}\tline\nnext ü \u{FFFD}"
        );
    }

    fn key(text: &str) -> ThreadKey {
        serde_json::from_value(serde_json::Value::String(text.to_string())).unwrap()
    }

    #[test]
    fn group_ids_are_valid_for_sqs_and_stable() {
        let short = key("case:1234567890");
        assert_eq!(message_group_id(&short), "case:1234567890");
        let long = key(&format!("msg:<{}@x>", "a".repeat(200)));
        let id = message_group_id(&long);
        assert!(id.len() <= MAX_ID_CHARS && id.starts_with("thread-"));
        assert_eq!(id, message_group_id(&long));
        let spaced = key("msg:<a b@x>");
        assert!(message_group_id(&spaced).starts_with("thread-"));
    }
}
