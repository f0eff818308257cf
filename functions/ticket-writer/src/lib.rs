//! `ticket-writer`: ticket operations in (SQS FIFO), tickets and comments out.
//!
//! Each operation creates its thread's ticket or comments on it, exactly once in
//! effect: the ledger, the thread map and the backend's idempotency keys make a
//! redelivered operation a no-op. Transient API failures are retried in place and
//! then by SQS; an operation that can never succeed goes to the dead-letter queue
//! with its reason.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::stream::{self, StreamExt};
use lambda_runtime::{Error, LambdaEvent};
use rootmail_aws::S3MailSource;
use rootmail_aws::aws_json::JsonClient;
use rootmail_aws::config::concat_names;
use rootmail_aws::metrics::now_millis;
use rootmail_aws::queue::{SqsDeadLetters, SqsRedelivery};
use rootmail_aws::tickets::{self, backend_settings, marker_key, secret_string, secrets_client};
use rootmail_aws::{ConfigError, DynamoLedger, DynamoThreadMap, Env, Metrics};
use rootmail_pipeline::{
    Applied, DeadLetters, Ledger, MailSource, PortError, PortResult, ThreadMap, TicketOp,
    TicketSink, WriterPorts, Written, apply_ticket_op,
};
use rootmail_tickets::backend::marker_key_in_credentials;
use rootmail_tickets::marker::MarkerKeyError;
use rootmail_tickets::{
    AnyBackend, BackendError, BackendKind, BackendSettings, Built, MarkerKey, Reload, ReloadingSink,
};
use std::time::Duration;
use tracing::Instrument;

/// Settings, read once at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub ledger_table: String,
    pub threads_table: String,
    pub dead_letter_queue_url: String,
    /// The queue the operations come from (`TICKET_OPS_QUEUE_URL`): a failed
    /// one whose failure says when to try again is delivered again then.
    pub ticket_ops_queue_url: Option<String>,
    /// The bucket the originals are in (attachments are read back from it).
    pub mail_bucket: String,
    /// Which ticketing system, where, and its HTTP limits (see `rootmail_aws::tickets`).
    pub backend: BackendSettings,
    /// The Secrets Manager secret holding the backend's JSON credentials. Never
    /// the credentials themselves: those stay out of the environment.
    pub credentials_secret: Option<String>,
    /// The Secrets Manager secret holding the key that signs the marker lines
    /// (`MARKER_KEY_SECRET_ARN`); without it, the credentials' `marker_key`.
    pub marker_key_secret: Option<String>,
    /// Threads (FIFO groups) of a batch written at once; one thread is always
    /// written in order.
    pub concurrency: usize,
}

/// What [`Config::from_env`] reads itself (the backend's are its own).
const OWN_VARIABLES: &[&str] = &[
    "LEDGER_TABLE",
    "THREADS_TABLE",
    "DEAD_LETTER_QUEUE_URL",
    "TICKET_OPS_QUEUE_URL",
    "MAIL_BUCKET",
    "TICKET_CREDENTIALS_SECRET_ARN",
    "MARKER_KEY_SECRET_ARN",
    "WRITER_CONCURRENCY",
];

impl Config {
    /// Every variable [`Config::from_env`] reads, the ticket backend's
    /// included. `infra/template.yaml` sets each for the function
    /// (`tests/tests/it/infra_template.rs`).
    pub const VARIABLES: &[&str] = &concat_names::<
        { OWN_VARIABLES.len() + tickets::VARIABLES.len() },
    >(&[OWN_VARIABLES, tickets::VARIABLES]);

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let env = &env.declaring(Self::VARIABLES);
        let backend = backend_settings(env, BackendKind::Zendesk)?;
        let credentials_secret = env.optional("TICKET_CREDENTIALS_SECRET_ARN");
        if backend.kind.needs_credentials() && credentials_secret.is_none() {
            return Err(ConfigError::Missing("TICKET_CREDENTIALS_SECRET_ARN"));
        }
        Ok(Self {
            ledger_table: env.required("LEDGER_TABLE")?,
            threads_table: env.required("THREADS_TABLE")?,
            dead_letter_queue_url: env.url("DEAD_LETTER_QUEUE_URL")?,
            ticket_ops_queue_url: env.optional("TICKET_OPS_QUEUE_URL"),
            mail_bucket: env.required("MAIL_BUCKET")?,
            backend,
            credentials_secret,
            marker_key_secret: env.optional("MARKER_KEY_SECRET_ARN"),
            concurrency: match env.parsed_or("WRITER_CONCURRENCY", 4)? {
                0 => {
                    return Err(ConfigError::Invalid {
                        name: "WRITER_CONCURRENCY",
                        value: "0".to_string(),
                        reason: "must be at least 1".to_string(),
                    });
                }
                n => n,
            },
        })
    }
}

/// The handler, generic over its ports so tests can drive it.
pub struct Writer<L, T, S, X, M, R = Option<SqsRedelivery>> {
    pub ledger: L,
    pub threads: T,
    pub sink: S,
    pub dead_letters: X,
    /// When the queue delivers a failed operation again.
    pub redelivery: R,
    /// The stored originals, read back for their attachments.
    pub mail: M,
    pub metrics: Metrics,
    /// Threads written at once (see [`Config::concurrency`]).
    pub concurrency: usize,
}

/// The handler as deployed: DynamoDB, SQS, S3 and the configured backend,
/// built again from its secret when the ticketing system refuses it.
pub type AwsWriter = Writer<
    DynamoLedger,
    DynamoThreadMap,
    ReloadingSink<SecretBackend>,
    SqsDeadLetters,
    S3MailSource,
>;

/// Why the writer cannot start (logged once at cold start, before any message).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("reading the ticket credentials: {0}")]
    Credentials(#[from] PortError),
    #[error("reading the marker key (MARKER_KEY_SECRET_ARN): {0}")]
    MarkerKey(PortError),
    #[error("the marker_key of the ticket credentials secret: {0}")]
    MarkerKeyInCredentials(#[from] MarkerKeyError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl AwsWriter {
    /// Wires the adapters over one SDK configuration and one HTTP client.
    pub async fn on_aws(
        config: &Config,
        aws: &aws_config::SdkConfig,
        metrics: Metrics,
    ) -> Result<Self, StartError> {
        let secret = SecretBackend {
            settings: config.backend.clone(),
            credentials_secret: config.credentials_secret.clone(),
            marker_key_secret: config.marker_key_secret.clone(),
            secrets: secrets_client(aws),
        };
        let sink = ReloadingSink::new(secret.build().await?, secret);
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        Ok(Self {
            ledger: DynamoLedger::new(dynamodb.clone(), &config.ledger_table),
            threads: DynamoThreadMap::new(dynamodb, &config.threads_table),
            sink,
            dead_letters: SqsDeadLetters::new(sqs.clone(), &config.dead_letter_queue_url),
            redelivery: config
                .ticket_ops_queue_url
                .as_ref()
                .map(|url| SqsRedelivery::new(sqs, url)),
            mail: S3MailSource::new(rootmail_aws::S3Client::new(aws)?, &config.mail_bucket),
            metrics,
            concurrency: config.concurrency,
        })
    }
}

/// The configured backend with its credentials and marker key from Secrets
/// Manager: read at cold start, and again when the ticketing system refuses
/// them (a rotated token: see [`ReloadingSink`]).
pub struct SecretBackend {
    settings: BackendSettings,
    credentials_secret: Option<String>,
    marker_key_secret: Option<String>,
    secrets: JsonClient,
}

impl SecretBackend {
    async fn build(&self) -> Result<Built<AnyBackend>, StartError> {
        let credentials = match &self.credentials_secret {
            Some(secret) => Some(secret_string(&self.secrets, secret).await?),
            None => None,
        };
        let key = self.marker_key(credentials.as_deref()).await?;
        let backend = AnyBackend::build(&self.settings, credentials.as_deref(), key)?;
        Ok(Built::from_secret(backend, credentials.as_deref()))
    }

    /// The marker key: its own secret first, else the credentials' field;
    /// none at all is refused by [`AnyBackend::build`] for every backend that
    /// writes markers, naming `MARKER_KEY_SECRET_ARN`.
    async fn marker_key(&self, credentials: Option<&str>) -> Result<Option<MarkerKey>, StartError> {
        if let Some(secret) = &self.marker_key_secret {
            let key = marker_key(&self.secrets, secret)
                .await
                .map_err(StartError::MarkerKey)?;
            return Ok(Some(key));
        }
        Ok(match credentials {
            Some(json) => marker_key_in_credentials(json)?,
            None => None,
        })
    }
}

impl Reload for SecretBackend {
    type Backend = AnyBackend;

    async fn reload(&self) -> PortResult<Built<AnyBackend>> {
        self.build().await.map_err(|e| match e {
            // Secrets Manager's own failure keeps its kind (a throttle is retried).
            StartError::Credentials(e) | StartError::MarkerKey(e) => e,
            e => PortError::permanent("ticket credentials", e.to_string()),
        })
    }
}

impl<L, T, S, X, M, R> Writer<L, T, S, X, M, R>
where
    L: Ledger + Sync,
    T: ThreadMap + Sync,
    S: TicketSink + Sync,
    X: DeadLetters + Sync,
    M: MailSource + Sync,
    R: Redelivery + Sync,
{
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        let until = rootmail_aws::finish_by(event.context.deadline, now_millis());
        Ok(self.handle_sqs_until(event.payload, until).await)
    }

    /// One FIFO batch. Threads (groups) are written concurrently, each in order;
    /// after a record fails, the later records of its group fail too without
    /// being tried, so a thread's operations keep their order.
    pub async fn handle_sqs(&self, batch: SqsEvent) -> SqsBatchResponse {
        self.handle_sqs_until(batch, None).await
    }

    /// One FIFO batch, each record given up at `until` (see
    /// `rootmail_aws::finish_by`): a ticket API that keeps answering 429 with
    /// a long `Retry-After` fails the record, and its group's later ones, in
    /// the batch's answer rather than timing the function out.
    pub async fn handle_sqs_until(
        &self,
        batch: SqsEvent,
        until: Option<tokio::time::Instant>,
    ) -> SqsBatchResponse {
        let failed: Vec<Failed> = stream::iter(by_group(batch))
            .map(|records| self.write_thread(records, until))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let told: Vec<(String, Duration)> = failed
            .iter()
            .filter_map(|group| Some((&group.receipts, group.retry_after?)))
            .flat_map(|(receipts, after)| {
                let after = after.clamp(EARLIEST_REDELIVERY, QUEUE_VISIBILITY);
                receipts.iter().map(move |receipt| (receipt.clone(), after))
            })
            .collect();
        if !told.is_empty() {
            // Within the margin kept for answering the batch.
            let redelivered = self.redelivery.redeliver(&told);
            match tokio::time::timeout(Duration::from_secs(2), redelivered).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the failed operations come back after the queue's own visibility timeout")
                }
                Err(_) => tracing::warn!(
                    "the queue did not answer in time: the failed operations come back after its own visibility timeout"
                ),
            }
        }
        rootmail_aws::batch_failures(failed.into_iter().flat_map(|group| group.ids))
    }

    /// One thread's records of a batch, in order; after one fails, the later
    /// ones fail too without being tried.
    async fn write_thread(
        &self,
        records: Vec<SqsMessage>,
        until: Option<tokio::time::Instant>,
    ) -> Failed {
        let mut failed = Failed::default();
        for record in records {
            let id = record.message_id.clone().unwrap_or_default();
            if !failed.ids.is_empty() {
                failed.push(id, record.receipt_handle);
                continue;
            }
            let body = record.body.as_deref().unwrap_or_default();
            let applied = rootmail_aws::unless_late(until, self.apply(body))
                .await
                .unwrap_or_else(|| {
                    Err(PortError::transient(
                        "writer",
                        "not finished before the invocation's deadline",
                    ))
                });
            if let Err(e) = applied {
                tracing::warn!(sqs_message_id = %id, error = %e, "operation will be retried");
                self.metrics.count("Retries", &[("Stage", "writer")]);
                failed.retry_after = e.retry_after().filter(|_| early(&record));
                failed.push(id, record.receipt_handle);
            }
        }
        failed
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
        let ports = WriterPorts {
            ledger: &self.ledger,
            threads: &self.threads,
            sink: &self.sink,
            mail: &self.mail,
        };
        match apply_ticket_op(ports, op, now_millis() / 1000).await {
            Ok(Applied {
                repeated: true,
                written,
            }) => {
                tracing::info!(ticket_id = written.ticket_id(), "already written");
                self.metrics.count("RepeatedOperations", &[]);
                Ok(())
            }
            Ok(Applied { written, .. }) => {
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
                    self.metrics.elapsed_since("EndToEndLatency", arrived);
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

/// A thread's records that failed in a batch, and when the first failure
/// said to try again (the later ones wait behind it).
#[derive(Default)]
struct Failed {
    ids: Vec<String>,
    receipts: Vec<String>,
    retry_after: Option<Duration>,
}

impl Failed {
    fn push(&mut self, id: String, receipt: Option<String>) {
        self.ids.push(id);
        self.receipts.extend(receipt);
    }
}

/// How many of an operation's deliveries may come back when its failure
/// said: each counts toward the queue's 10 receives before the dead-letter
/// queue, and the later ones keep the queue's 18 minutes, so a ticket API
/// that throttles for hours still has more than two of them.
const EARLY_REDELIVERIES: u32 = 3;

/// Whether `record` is within its [`EARLY_REDELIVERIES`] (Lambda gives its
/// `ApproximateReceiveCount`; without it, no).
fn early(record: &SqsMessage) -> bool {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse::<u32>().ok())
        .is_some_and(|count| count <= EARLY_REDELIVERIES)
}

/// The ticket-ops queue's visibility timeout (`infra/template.yaml`,
/// checked by a test): a failure's time only brings a redelivery forward.
pub const QUEUE_VISIBILITY: Duration = Duration::from_secs(1080);

/// The soonest a failed operation is delivered again when its failure said
/// when: a search that lags behind a write (Jira's) shows by then what the
/// failed attempt may have made.
pub const EARLIEST_REDELIVERY: Duration = Duration::from_secs(60);

/// When the queue delivers failed records again. The queue's own visibility
/// timeout is sized for a ticket API that is down (18 minutes); a failure
/// that says when (a long `Retry-After`, credentials since replaced) sets it.
pub trait Redelivery {
    /// Each receipt handle's record is delivered again after its duration.
    fn redeliver(&self, told: &[(String, Duration)])
    -> impl Future<Output = PortResult<()>> + Send;
}

impl Redelivery for SqsRedelivery {
    async fn redeliver(&self, told: &[(String, Duration)]) -> PortResult<()> {
        self.redeliver_after(told).await
    }
}

/// Without a queue to tell (`TICKET_OPS_QUEUE_URL` unset), its own timeout.
impl<R: Redelivery + Sync> Redelivery for Option<R> {
    async fn redeliver(&self, told: &[(String, Duration)]) -> PortResult<()> {
        match self {
            Some(queue) => queue.redeliver(told).await,
            None => Ok(()),
        }
    }
}

/// The batch's records grouped by `MessageGroupId`, each group in batch order.
fn by_group(batch: SqsEvent) -> Vec<Vec<SqsMessage>> {
    let mut groups: Vec<(String, Vec<SqsMessage>)> = Vec::new();
    for record in batch.records {
        let group = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, records)) => records.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    groups.into_iter().map(|(_, records)| records).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootmail_aws::config::{name_set, names_read};
    use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
    use rootmail_pipeline::{FoundTicket, NewComment, NewTicket, PortError};
    use std::sync::Mutex;

    /// Fails every create whose subject says so; records what it was asked.
    #[derive(Default)]
    struct Sink {
        calls: Mutex<Vec<String>>,
    }

    impl TicketSink for Sink {
        fn name(&self) -> &'static str {
            "test"
        }
        async fn find(&self, _: &ThreadKey) -> PortResult<Option<FoundTicket>> {
            Ok(None)
        }
        async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
            self.calls.lock().unwrap().push(ticket.subject.clone());
            if ticket.subject.contains("fail") {
                return Err(PortError::transient("test", "503"));
            }
            if ticket.subject.contains("throttle") {
                let secs = if ticket.subject.contains("long") {
                    4_000
                } else {
                    540
                };
                let refused = PortError::http("test", 429, "HTTP 429 (Retry-After)");
                return Err(refused.with_retry_after(Duration::from_secs(secs)));
            }
            Ok(ticket.subject.clone())
        }
        async fn comment(
            &self,
            id: &str,
            c: &NewComment,
        ) -> PortResult<rootmail_pipeline::PostedComment> {
            self.calls.lock().unwrap().push(format!("comment {id}"));
            Ok(rootmail_pipeline::PostedComment::on(id, &c.message))
        }
    }

    /// Records when it was told to deliver which records again.
    #[derive(Default)]
    struct Told(Mutex<Vec<(String, Duration)>>);

    impl Redelivery for Told {
        async fn redeliver(&self, told: &[(String, Duration)]) -> PortResult<()> {
            self.0.lock().unwrap().extend_from_slice(told);
            Ok(())
        }
    }

    /// A 429 whose `Retry-After` is too long to wait for in place: its
    /// thread's failed records come back when it says, not after the
    /// queue's 18 minutes; a failure that says nothing leaves them to it.
    #[tokio::test]
    async fn a_thread_told_when_to_try_again_is_delivered_again_then() {
        let dir = tempfile::tempdir().unwrap();
        let store = rootmail_local::LocalStore::open(dir.path()).unwrap();
        let writer = test_writer(&store, Told::default());
        let mut batch = SqsEvent::default();
        batch.records = vec![
            record("1", "a", "throttle a"),
            record("2", "b", "fail b"),
            record("3", "a", "a again"),
            record("5", "c", "throttle long c"),
        ];
        let response = writer.handle_sqs(batch).await;
        assert_eq!(response.batch_item_failures.len(), 4);
        let mut told = writer.redelivery.0.lock().unwrap().clone();
        told.sort();
        let after = Duration::from_secs(540);
        let mut wanted: Vec<_> = ["receipt-1", "receipt-3"]
            .map(|r| (r.to_string(), after))
            .into();
        // Never later than the queue would have delivered it anyway.
        wanted.push(("receipt-5".to_string(), QUEUE_VISIBILITY));
        assert_eq!(told, wanted);
        writer.redelivery.0.lock().unwrap().clear();
        // Its fourth delivery keeps the queue's timeout.
        let mut late = record("4", "a", "throttle a");
        late.attributes
            .insert("ApproximateReceiveCount".to_string(), "4".to_string());
        let mut batch = SqsEvent::default();
        batch.records = vec![late];
        assert_eq!(writer.handle_sqs(batch).await.batch_item_failures.len(), 1);
        assert!(
            writer.redelivery.0.lock().unwrap().is_empty(),
            "not told again"
        );
    }

    type TestWriter<'a, R> = Writer<
        &'a rootmail_local::LocalStore,
        &'a rootmail_local::LocalStore,
        Sink,
        NoDeadLetters,
        &'a rootmail_local::LocalStore,
        R,
    >;

    /// A writer over a local store and the test sink, two threads at once.
    fn test_writer<R>(store: &rootmail_local::LocalStore, redelivery: R) -> TestWriter<'_, R> {
        Writer {
            ledger: store,
            threads: store,
            sink: Sink::default(),
            dead_letters: NoDeadLetters,
            redelivery,
            mail: store,
            metrics: Metrics::memory().0,
            concurrency: 2,
        }
    }

    struct NoDeadLetters;
    impl DeadLetters for NoDeadLetters {
        async fn bury(&self, _: &str, reason: &str) -> PortResult<()> {
            panic!("nothing should be buried: {reason}")
        }
    }

    fn record(id: &str, group: &str, subject: &str) -> SqsMessage {
        let op = TicketOp {
            message: ContentHash::of(id.as_bytes()),
            thread_key: ThreadKey::message(group),
            kind: Kind::Unknown,
            priority: Priority::Normal,
            account_id: None,
            customer: None,
            subject: subject.to_string(),
            body: String::new(),
            internal_note: String::new(),
            attachments: Vec::new(),
            archive_ref: None,
            quarantined: false,
            received_at_ms: None,
        };
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_string());
        message.receipt_handle = Some(format!("receipt-{id}"));
        message.body = Some(serde_json::to_string(&op).unwrap());
        message
            .attributes
            .insert("MessageGroupId".to_string(), group.to_string());
        message
            .attributes
            .insert("ApproximateReceiveCount".to_string(), "1".to_string());
        message
    }

    #[tokio::test]
    async fn a_failed_operation_holds_back_the_rest_of_its_thread_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = rootmail_local::LocalStore::open(dir.path()).unwrap();
        let writer = test_writer(&store, None::<SqsRedelivery>);
        let mut batch = SqsEvent::default();
        batch.records = vec![
            record("1", "a", "fail a"),
            record("2", "b", "b"),
            record("3", "a", "a again"),
        ];
        let response = writer.handle_sqs(batch).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["1", "3"]);
        let calls = writer.sink.calls.lock().unwrap().clone();
        assert!(calls.contains(&"b".to_string()), "{calls:?}");
        assert!(!calls.contains(&"a again".to_string()), "{calls:?}");
    }

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::from_pairs(pairs.iter().copied())
    }

    const BASE: &[(&str, &str)] = &[
        ("LEDGER_TABLE", "ledger"),
        ("THREADS_TABLE", "threads"),
        ("DEAD_LETTER_QUEUE_URL", "https://sqs/dlq.fifo"),
        ("MAIL_BUCKET", "mail"),
        ("TICKET_API_URL", "https://acme.zendesk.com"),
        (
            "TICKET_CREDENTIALS_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:zendesk-AbCdEf",
        ),
    ];

    #[test]
    fn config_defaults_to_zendesk_with_credentials_from_a_secret() {
        let config = Config::from_env(&env(BASE)).unwrap();
        assert_eq!(config.backend.kind, BackendKind::Zendesk);
        assert_eq!(config.backend.retry.max_attempts, 4);
        assert!(
            config
                .credentials_secret
                .unwrap()
                .contains(":secret:zendesk")
        );
    }

    #[test]
    fn variables_are_what_from_env_reads() {
        let read = names_read(BASE, |env| {
            Config::from_env(env).unwrap();
        });
        assert_eq!(read, name_set(Config::VARIABLES));
    }

    #[test]
    fn config_errors_name_the_variable() {
        let mut pairs = BASE.to_vec();
        pairs.retain(|(k, _)| *k != "TICKET_API_URL");
        let error = Config::from_env(&env(&pairs)).unwrap_err().to_string();
        assert!(error.contains("TICKET_API_URL"), "{error}");
        pairs.push(("TICKET_API_URL", "https://x.example"));
        pairs.push(("TICKET_BACKEND", "carrier-pigeon"));
        let error = Config::from_env(&env(&pairs)).unwrap_err().to_string();
        assert!(error.contains("TICKET_BACKEND") && error.contains("carrier-pigeon"));
    }

    #[test]
    fn the_marker_key_comes_from_its_own_secret() {
        let config = Config::from_env(&env(BASE)).unwrap();
        assert_eq!(config.marker_key_secret, None);
        let mut pairs = BASE.to_vec();
        pairs.push((
            "MARKER_KEY_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:marker-AbCdEf",
        ));
        let config = Config::from_env(&env(&pairs)).unwrap();
        assert!(config.marker_key_secret.unwrap().contains(":secret:marker"));
    }

    #[test]
    fn a_ticketing_system_needs_its_secret_but_a_webhook_does_not() {
        let mut pairs = BASE.to_vec();
        pairs.retain(|(k, _)| *k != "TICKET_CREDENTIALS_SECRET_ARN");
        let error = Config::from_env(&env(&pairs)).unwrap_err().to_string();
        assert!(error.contains("TICKET_CREDENTIALS_SECRET_ARN"), "{error}");
        pairs.push(("TICKET_BACKEND", "webhook"));
        assert!(Config::from_env(&env(&pairs)).is_ok());
    }
}
