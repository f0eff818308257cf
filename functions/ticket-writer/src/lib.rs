//! `ticket-writer`: ticket operations in (SQS FIFO), tickets and comments out.
//!
//! Each operation creates its thread's ticket or comments on it, exactly once in
//! effect: the ledger, the thread map and the backend's idempotency keys make a
//! redelivered operation a no-op. Transient API failures are retried in place and
//! then by SQS; an operation that can never succeed goes to the dead-letter queue
//! with its reason.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use rootmail_aws::{ConfigError, Env, Metrics};
use rootmail_pipeline::{
    DeadLetters, Ledger, PortResult, ThreadMap, TicketOp, TicketSink, Written, write_ticket,
};
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// Settings, read once at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub ledger_table: String,
    pub threads_table: String,
    pub dead_letter_queue_url: String,
    pub backend: Backend,
    pub http_timeout: Duration,
    pub http_max_attempts: u32,
}

/// The ticketing backend and its settings.
#[derive(Clone)]
pub enum Backend {
    Webhook { url: String, token: Option<String> },
}

impl std::fmt::Debug for Backend {
    // The token stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Webhook { url, token } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("token", &token.as_ref().map(|_| "[redacted]"))
                .finish(),
        }
    }
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let backend = match env.optional("TICKET_BACKEND").as_deref() {
            None | Some("webhook") => Backend::Webhook {
                url: env.url("WEBHOOK_URL")?,
                token: env.optional("WEBHOOK_TOKEN"),
            },
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "TICKET_BACKEND",
                    value: other.to_string(),
                    reason: "supported backends: webhook".to_string(),
                });
            }
        };
        Ok(Self {
            ledger_table: env.required("LEDGER_TABLE")?,
            threads_table: env.required("THREADS_TABLE")?,
            dead_letter_queue_url: env.url("DEAD_LETTER_QUEUE_URL")?,
            backend,
            http_timeout: Duration::from_secs(env.parsed_or("HTTP_TIMEOUT_SECS", 10)?),
            http_max_attempts: env.parsed_or("HTTP_MAX_ATTEMPTS", 4)?,
        })
    }
}

/// The handler, generic over its ports so tests can drive it.
pub struct Writer<L, T, S, X> {
    pub ledger: L,
    pub threads: T,
    pub sink: S,
    pub dead_letters: X,
    pub metrics: Metrics,
}

impl<L, T, S, X> Writer<L, T, S, X>
where
    L: Ledger + Sync,
    T: ThreadMap + Sync,
    S: TicketSink + Sync,
    X: DeadLetters + Sync,
{
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        Ok(self.handle_sqs(event.payload).await)
    }

    /// One FIFO batch. After a record fails, the later records of its group fail
    /// too without being tried, so a thread's operations keep their order.
    pub async fn handle_sqs(&self, batch: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let mut failed_groups: HashSet<String> = HashSet::new();
        for record in batch.records {
            let id = record.message_id.clone().unwrap_or_default();
            let group = record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_default();
            if failed_groups.contains(&group) {
                response.add_failure(id);
                continue;
            }
            let body = record.body.as_deref().unwrap_or_default();
            if let Err(e) = self.apply(body).await {
                tracing::warn!(sqs_message_id = %id, error = %e, "operation will be retried");
                self.metrics.count("Retries", &[("Stage", "writer")]);
                failed_groups.insert(group);
                response.add_failure(id);
            }
        }
        response
    }

    /// Applies one operation. `Err` means "retry later"; an operation that can
    /// never succeed is buried in the dead-letter queue and counts as handled.
    pub async fn apply(&self, body: &str) -> PortResult<()> {
        let op: TicketOp = match serde_json::from_str(body) {
            Ok(op) => op,
            Err(e) => {
                return self
                    .bury(body, &format!("not a ticket operation: {e}"))
                    .await;
            }
        };
        let span = tracing::info_span!(
            "operation",
            message = %op.message,
            account_id = op.account_id.as_deref().unwrap_or("-"),
            thread_key = %op.thread_key,
            kind = op.kind.as_str(),
        );
        self.apply_op(body, &op).instrument(span).await
    }

    async fn apply_op(&self, body: &str, op: &TicketOp) -> PortResult<()> {
        let ports = (&self.ledger, &self.threads, &self.sink);
        match write_ticket(ports, op, now_millis() / 1000).await {
            Ok(written) => {
                let backend = self.sink.name();
                match &written {
                    Written::Created { ticket_id } => {
                        tracing::info!(ticket_id, "ticket created");
                        self.metrics
                            .count("TicketsCreated", &[("Backend", backend)]);
                    }
                    Written::Commented {
                        ticket_id,
                        comment_id,
                    } => {
                        tracing::info!(ticket_id, comment_id, "comment added");
                        self.metrics.count("CommentsAdded", &[("Backend", backend)]);
                    }
                }
                if let Some(arrived) = op.received_at_ms {
                    let waited = now_millis().saturating_sub(arrived) as f64;
                    self.metrics.milliseconds("EndToEndLatency", waited, &[]);
                }
                Ok(())
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                let reason = e.to_string();
                self.note_failure(op, &reason).await?;
                self.bury(body, &reason).await
            }
        }
    }

    /// The ledger row says why its ticket is missing (it stays `queued`, so a replay redoes it).
    async fn note_failure(&self, op: &TicketOp, reason: &str) -> PortResult<()> {
        if let Some(mut row) = self.ledger.get(&op.message).await? {
            row.failure = Some(format!("ticket operation dead-lettered: {reason}"));
            self.ledger.record(&row).await?;
        }
        Ok(())
    }

    async fn bury(&self, body: &str, reason: &str) -> PortResult<()> {
        tracing::error!(%reason, "operation moved to the dead-letter queue");
        self.dead_letters.bury(body, reason).await?;
        self.metrics.count("DeadLetters", &[("Stage", "writer")]);
        Ok(())
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_fn(move |name| map.get(name).cloned())
    }

    const BASE: &[(&str, &str)] = &[
        ("LEDGER_TABLE", "ledger"),
        ("THREADS_TABLE", "threads"),
        ("DEAD_LETTER_QUEUE_URL", "https://sqs/dlq.fifo"),
        ("WEBHOOK_URL", "https://tickets.example.com/hook"),
        ("WEBHOOK_TOKEN", "s3cr3t-token"),
    ];

    #[test]
    fn config_reads_the_webhook_and_hides_its_token() {
        let config = Config::from_env(&env(BASE)).unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("https://tickets.example.com/hook"));
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert_eq!(config.http_max_attempts, 4);
    }

    #[test]
    fn config_errors_name_the_variable() {
        let mut pairs = BASE.to_vec();
        pairs.retain(|(k, _)| *k != "WEBHOOK_URL");
        let error = Config::from_env(&env(&pairs)).unwrap_err().to_string();
        assert!(error.contains("WEBHOOK_URL"), "{error}");
        pairs.push(("TICKET_BACKEND", "carrier-pigeon"));
        let error = Config::from_env(&env(&pairs)).unwrap_err().to_string();
        assert!(error.contains("TICKET_BACKEND") && error.contains("carrier-pigeon"));
    }
}
