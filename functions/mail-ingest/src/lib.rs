//! `mail-ingest`: stored mail in, ledger rows and ticket operations out.
//!
//! For each message: read it from S3, claim it in the ledger, triage it, record
//! the disposition and enqueue at most one ticket operation. A transient failure
//! fails that record only (SQS retries it, then its DLQ); a message that cannot
//! be read for good (gone, oversized) becomes a quarantine row, never a loss.
//!
//! With rotations configured (`ROTATIONS_TABLE` and the other lifecycle
//! settings), a verified code or link for an account whose rotation waits for
//! it goes to the vault and resumes the workflow instead of becoming a ticket.

pub use rootmail_events as events;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use events::MailRef;
use futures_util::stream::{self, StreamExt};
use lambda_runtime::{Error, LambdaEvent};
use rootmail_aws::config::concat_names;
use rootmail_aws::lifecycle_adapters::{AwsLifecycle, LifecycleConfig};
use rootmail_aws::mail::SES_MAX_MESSAGE_BYTES;
use rootmail_aws::metrics::now_millis;
use rootmail_aws::{
    ConfigError, DynamoAccounts, DynamoLedger, DynamoThreadMap, Env, MailLocation, Metrics,
    ReadError, S3Mail, SqsTicketQueue,
};
use rootmail_domain::{ContentHash, Disposition, Kind, Rules, Triage};
use rootmail_lifecycle::handoff::MailHandoffs;
use rootmail_pipeline::{
    AccountLookup, DEFAULT_STALE_CLAIM_SECS, Handoffs, IngestPorts, Ingested, Knowledge, Ledger,
    MailArchive, NoHandoffs, PortError, PortResult, ThreadMap, TicketOp, TicketQueue, ingest,
    record_unreadable,
};
use serde_json::Value;
use std::future::Future;
use tracing::{Instrument, field::Empty};

/// Settings, read once at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub accounts_table: String,
    pub ledger_table: String,
    pub threads_table: String,
    pub ticket_ops_queue_url: String,
    /// Where the SES S3 action stores mail; needed only for the SES Lambda-action trigger.
    pub mail_bucket: Option<String>,
    pub mail_prefix: String,
    pub max_message_bytes: u64,
    /// Records of a batch processed at once; each may hold a message of up to
    /// `max_message_bytes` (about 1.7 times that above the idle 18 MiB at peak, measured by `make
    /// bench`), so size memory for it.
    pub concurrency: usize,
    /// After this long a message's claim is taken to belong to a run that died
    /// (`CLAIM_TIMEOUT_SECS`, default 15 minutes); set it a little above the
    /// function's timeout so the first redelivery after a crash takes over.
    pub claim_timeout_secs: u64,
    /// The credential lifecycle, when `ROTATIONS_TABLE` is set: secrets from
    /// verified mail are handed to waiting rotations.
    pub lifecycle: Option<LifecycleConfig>,
}

/// What [`Config::from_env`] reads itself (the lifecycle's are its own).
const OWN_VARIABLES: &[&str] = &[
    "ACCOUNTS_TABLE",
    "LEDGER_TABLE",
    "THREADS_TABLE",
    "TICKET_OPS_QUEUE_URL",
    "MAIL_BUCKET",
    "MAIL_PREFIX",
    "MAX_MESSAGE_BYTES",
    "INGEST_CONCURRENCY",
    "CLAIM_TIMEOUT_SECS",
    "ROTATIONS_TABLE",
];

impl Config {
    /// Every variable [`Config::from_env`] reads, the lifecycle's included
    /// (read when `ROTATIONS_TABLE` is set). `infra/template.yaml` sets each
    /// for the function (`tests/tests/it/infra_template.rs`).
    pub const VARIABLES: &[&str] = &concat_names::<
        { OWN_VARIABLES.len() + LifecycleConfig::VARIABLES.len() },
    >(&[OWN_VARIABLES, LifecycleConfig::VARIABLES]);

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let env = &env.declaring(Self::VARIABLES);
        Ok(Self {
            accounts_table: env.required("ACCOUNTS_TABLE")?,
            ledger_table: env.required("LEDGER_TABLE")?,
            threads_table: env.required("THREADS_TABLE")?,
            ticket_ops_queue_url: env.url("TICKET_OPS_QUEUE_URL")?,
            mail_bucket: env.optional("MAIL_BUCKET"),
            mail_prefix: env
                .optional("MAIL_PREFIX")
                .unwrap_or_else(|| "inbound/".to_string()),
            max_message_bytes: env.parsed_or("MAX_MESSAGE_BYTES", SES_MAX_MESSAGE_BYTES)?,
            concurrency: at_least_one(env, "INGEST_CONCURRENCY", 4)?,
            claim_timeout_secs: env.parsed_or("CLAIM_TIMEOUT_SECS", DEFAULT_STALE_CLAIM_SECS)?,
            lifecycle: match env.optional("ROTATIONS_TABLE") {
                Some(_) => Some(LifecycleConfig::from_env(env)?),
                None => None,
            },
        })
    }
}

fn at_least_one<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
    default: usize,
) -> Result<usize, ConfigError> {
    match env.parsed_or(name, default)? {
        0 => Err(ConfigError::Invalid {
            name,
            value: "0".to_string(),
            reason: "must be at least 1".to_string(),
        }),
        n => Ok(n),
    }
}

/// Reads a stored message (S3 in AWS), and keeps one that holds a secret
/// from the ticket writer.
pub trait MailReader {
    fn read(
        &self,
        location: &MailLocation,
        max: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send;
    fn seal(&self, location: &MailLocation) -> impl Future<Output = PortResult<()>> + Send;
}

impl MailReader for S3Mail {
    fn read(
        &self,
        location: &MailLocation,
        max: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send {
        S3Mail::read(self, location, max)
    }

    fn seal(&self, location: &MailLocation) -> impl Future<Output = PortResult<()>> + Send {
        S3Mail::seal(self, location)
    }
}

/// SES already stored the raw message in the bucket: the archive is that
/// object, kept by the bucket's retention rules. Nothing is copied.
struct Original<'a, M> {
    location: &'a MailLocation,
    mail: &'a M,
}

impl<M: MailReader + Sync> MailArchive for Original<'_, M> {
    async fn put(&self, _hash: &ContentHash, _raw: &[u8]) -> PortResult<String> {
        Ok(self.location.to_string())
    }

    async fn seal(&self, _archive_ref: &str) -> PortResult<()> {
        self.mail.seal(self.location).await
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Triaged now; `queued` when a ticket operation was enqueued.
    Triaged {
        kind: Kind,
        disposition: Disposition,
        queued: bool,
    },
    /// Finished before: nothing done again.
    Duplicate,
    /// Could not be read for good: quarantined by its location.
    Unreadable { reason: String },
    /// The event named an object in another bucket than this stack's
    /// (`MAIL_BUCKET`): not read, logged and counted (`ForeignEvents`).
    Foreign,
}

/// Where secrets from verified mail go in AWS: the lifecycle when rotations
/// are configured, else nowhere (`None`: nothing ever waits).
pub type AwsHandoffs = Option<MailHandoffs<Box<AwsLifecycle>>>;

fn handoffs_on_aws(config: Option<&LifecycleConfig>, aws: &aws_config::SdkConfig) -> AwsHandoffs {
    config.map(|config| MailHandoffs(Box::new(AwsLifecycle::on_aws(aws, config))))
}

/// The handler, generic over its ports so tests can drive it.
pub struct Ingest<M, L, T, D, Q, H = NoHandoffs> {
    pub mail: M,
    pub ledger: L,
    pub threads: T,
    pub accounts: D,
    pub queue: Q,
    /// Waiting rotations, and where their secrets go.
    pub handoffs: H,
    pub rules: Rules,
    pub metrics: Metrics,
    pub config: Config,
}

/// The handler as deployed: every port an AWS adapter.
pub type AwsIngest =
    Ingest<S3Mail, DynamoLedger, DynamoThreadMap, DynamoAccounts, SqsTicketQueue, AwsHandoffs>;

impl AwsIngest {
    /// Wires the AWS adapters over one SDK configuration (clients built once).
    /// Fails only when the HTTP client for S3 cannot be built.
    pub fn on_aws(
        config: Config,
        aws: &aws_config::SdkConfig,
        metrics: Metrics,
    ) -> Result<Self, PortError> {
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        Ok(Self {
            mail: S3Mail::new(rootmail_aws::S3Client::new(aws)?),
            ledger: DynamoLedger::new(dynamodb.clone(), &config.ledger_table),
            threads: DynamoThreadMap::new(dynamodb.clone(), &config.threads_table),
            accounts: DynamoAccounts::new(dynamodb, &config.accounts_table),
            queue: SqsTicketQueue::new(aws_sdk_sqs::Client::new(aws), &config.ticket_ops_queue_url),
            handoffs: handoffs_on_aws(config.lifecycle.as_ref(), aws),
            rules: Rules::built_in(),
            metrics,
            config,
        })
    }
}

impl<M, L, T, D, Q, H> Ingest<M, L, T, D, Q, H>
where
    M: MailReader + Sync,
    L: Ledger + Sync,
    T: ThreadMap + Sync,
    D: AccountLookup + Sync,
    Q: TicketQueue + Sync,
    H: Handoffs + Sync,
{
    /// The Lambda entry point: an SQS batch, a direct S3 event or an SES event.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let deadline_ms = event.context.deadline;
        let payload = event.payload;
        match event_source(&payload) {
            Some("aws:sqs") => {
                let batch: SqsEvent = serde_json::from_value(payload)?;
                let until = rootmail_aws::finish_by(deadline_ms, now_millis());
                Ok(serde_json::to_value(
                    self.handle_sqs_until(batch, until).await,
                )?)
            }
            Some("aws:s3") => {
                let refs = events::s3_notification(&payload.to_string())?;
                self.ingest_all(&refs).await?;
                Ok(Value::Null)
            }
            Some("aws:ses") => {
                let bucket = self.config.mail_bucket.as_deref().ok_or(
                    "MAIL_BUCKET is not set: the SES Lambda action needs the bucket its S3 action writes to",
                )?;
                let refs = events::ses_event(payload, bucket, &self.config.mail_prefix)?;
                self.ingest_all(&refs).await?;
                // SES reads this when it invokes synchronously: go on with the rule.
                Ok(serde_json::json!({"disposition": "CONTINUE"}))
            }
            // S3 sends a test event when notifications are configured.
            _ if payload.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") => {
                Ok(Value::Null)
            }
            _ => Err("unrecognized event: expected SQS, S3 or SES records".into()),
        }
    }

    /// One SQS batch: failed records are reported so only they are retried.
    /// Records are independent messages, so several are processed at once.
    pub async fn handle_sqs(&self, batch: SqsEvent) -> SqsBatchResponse {
        self.handle_sqs_until(batch, None).await
    }

    /// One SQS batch, each record given up at `until` (the invocation's
    /// deadline less `rootmail_aws::DEADLINE_MARGIN`): a record still running then (a
    /// stalled S3 read retried four times takes longer than the function's
    /// timeout) is reported failed and retried alone, as after a crash at
    /// that point, instead of the function timing out and SQS sending the
    /// whole batch back.
    pub async fn handle_sqs_until(
        &self,
        batch: SqsEvent,
        until: Option<tokio::time::Instant>,
    ) -> SqsBatchResponse {
        let failed: Vec<Option<String>> = stream::iter(batch.records)
            .map(|record| async move {
                let id = record.message_id.clone().unwrap_or_default();
                let body = record.body.as_deref().unwrap_or_default();
                let work = async {
                    match events::s3_notification(body) {
                        Ok(refs) => self.ingest_all(&refs).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                };
                let outcome = rootmail_aws::unless_late(until, work)
                    .await
                    .unwrap_or_else(|| Err(UNFINISHED.to_string()));
                let reason = outcome.err()?;
                // Retried by SQS; after the queue's receive limit it is in the DLQ,
                // from where `rootmail replay --dlq` re-drives it.
                tracing::error!(sqs_message_id = %id, %reason, "record failed; it will be retried");
                self.metrics.count("Retries", &[("Stage", "ingest")]);
                Some(id)
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        rootmail_aws::batch_failures(failed.into_iter().flatten())
    }

    /// Every message an event names; the first that must be retried stops it
    /// (those before it are finished, so the retry finds them done).
    async fn ingest_all(&self, refs: &[MailRef]) -> PortResult<()> {
        for mail_ref in refs {
            self.ingest_one(mail_ref).await?;
        }
        Ok(())
    }

    /// One message. `Err` means "retry this later"; everything else is final.
    pub async fn ingest_one(&self, mail_ref: &MailRef) -> PortResult<Outcome> {
        let span = tracing::info_span!(
            "message",
            message_key = %mail_ref.location,
            account_id = Empty,
            thread_key = Empty,
            kind = Empty,
            disposition = Empty,
        );
        self.ingest_in_span(mail_ref).instrument(span).await
    }

    async fn ingest_in_span(&self, mail_ref: &MailRef) -> PortResult<Outcome> {
        let location = &mail_ref.location;
        let source = location.to_string();
        if self.is_foreign(location) {
            return Ok(Outcome::Foreign);
        }
        let raw = match self
            .mail
            .read(location, self.config.max_message_bytes)
            .await
        {
            Ok(raw) => raw,
            Err(ReadError::Port(e)) => return Err(e),
            Err(unreadable) => return self.quarantine_unreadable(mail_ref, &unreadable).await,
        };
        let knowledge = Knowledge {
            claim_timeout_secs: self.config.claim_timeout_secs,
            ..Knowledge::new(&self.rules, &self.handoffs)
        };
        let original = Original {
            location,
            mail: &self.mail,
        };
        let ports = IngestPorts {
            archive: &original,
            ledger: &self.ledger,
            threads: &self.threads,
            accounts: &self.accounts,
        };
        let ingested = ingest(ports, &knowledge, &raw, &source, now_secs()).await?;
        drop(raw);
        match ingested {
            Ingested::Duplicate(row) => {
                // A redelivered event, or another delivery of the same mail
                // (the ledger's row names the first).
                tracing::info!(first = %row.source, "already processed");
                self.metrics.count("Duplicates", &[]);
                Ok(Outcome::Duplicate)
            }
            Ingested::Busy => Err(PortError::transient(
                "ledger",
                format!("{source} is being processed by another run"),
            )),
            Ingested::Triaged { triage, op, .. } => {
                self.queue_and_count(mail_ref, &triage, op).await
            }
        }
    }

    /// Mail is this stack's bucket's (SES writes there, and `rootmail
    /// replay` re-drives objects an operator restored under another
    /// prefix): an object in another bucket, however it came to be named in
    /// an event (a message forged on the inbound queue), is not read. Logged
    /// and counted when so.
    fn is_foreign(&self, location: &MailLocation) -> bool {
        let ours =
            (self.config.mail_bucket.as_deref()).is_none_or(|bucket| bucket == location.bucket);
        if !ours {
            tracing::error!(
                object = %location,
                "an event names an object outside this stack's bucket (MAIL_BUCKET): not read"
            );
            self.metrics.count("ForeignEvents", &[]);
        }
        !ours
    }

    /// A triaged message: its facts on the span, its ticket operation on the
    /// queue, and its metrics.
    async fn queue_and_count(
        &self,
        mail_ref: &MailRef,
        triage: &Triage,
        op: Option<Box<TicketOp>>,
    ) -> PortResult<Outcome> {
        let span = tracing::Span::current();
        if let Some(account) = &triage.account_id {
            span.record("account_id", account.as_str());
        }
        span.record("thread_key", triage.thread_key.as_str());
        span.record("kind", triage.kind.as_str());
        span.record("disposition", triage.disposition.as_str());
        let queued = op.is_some();
        if let Some(mut op) = op {
            op.received_at_ms = mail_ref.arrived_ms;
            self.queue.enqueue(&op).await?;
            rootmail_pipeline::crash_point!("ingest.after-enqueue");
        }
        if let Some(arrived) = mail_ref.arrived_ms {
            self.metrics.elapsed_since("IngestLatency", arrived);
        }
        let (kind, disposition) = (triage.kind, triage.disposition);
        self.metrics.count(
            "Messages",
            &[
                ("Kind", kind.as_str()),
                ("Disposition", disposition.as_str()),
            ],
        );
        if disposition == Disposition::Quarantine {
            self.metrics.count("Quarantines", &[("Reason", "triage")]);
        }
        if kind == Kind::AwsUnclassified {
            // AWS's mail the rules do not know: what to extend them with.
            self.metrics.count("UnclassifiedAwsMail", &[]);
        }
        tracing::info!(warnings = triage.warnings.len(), queued, "triaged");
        Ok(Outcome::Triaged {
            kind,
            disposition,
            queued,
        })
    }

    async fn quarantine_unreadable(
        &self,
        mail_ref: &MailRef,
        error: &ReadError,
    ) -> PortResult<Outcome> {
        // Never searched, so it may hold a code or a reset link: sealed as
        // mail that does (tagging needs no download), before its row says
        // it is dealt with.
        if let ReadError::TooLarge { location, .. } = error {
            self.mail.seal(location).await?;
        }
        let reason = error.to_string();
        let source = mail_ref.location.to_string();
        let (_, op) = record_unreadable(
            &self.ledger,
            &source,
            &reason,
            now_secs(),
            self.config.claim_timeout_secs,
        )
        .await?;
        if let Some(mut op) = op {
            op.received_at_ms = mail_ref.arrived_ms;
            self.queue.enqueue(&op).await?;
        }
        let label = match error {
            ReadError::Missing(_) => "missing",
            ReadError::TooLarge { .. } => "oversized",
            ReadError::Port(_) => "unreadable",
        };
        tracing::error!(%reason, "quarantined unread");
        self.metrics.count("Quarantines", &[("Reason", label)]);
        Ok(Outcome::Unreadable { reason })
    }
}

const UNFINISHED: &str = "not finished before the invocation's deadline";

fn event_source(payload: &Value) -> Option<&str> {
    let first = payload.get("Records")?.get(0)?;
    first
        .get("eventSource")
        .or_else(|| first.get("EventSource"))
        .and_then(Value::as_str)
}

fn now_secs() -> u64 {
    now_millis() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootmail_aws::config::{name_set, names_read};

    const BASE: &[(&str, &str)] = &[
        ("ACCOUNTS_TABLE", "accounts"),
        ("LEDGER_TABLE", "ledger"),
        ("THREADS_TABLE", "threads"),
        (
            "TICKET_OPS_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/1/ticket-ops.fifo",
        ),
    ];

    fn config(extra: &[(&str, &str)], without: &str) -> Result<Config, ConfigError> {
        // Later pairs win, so `extra` overrides the base.
        let pairs = BASE
            .iter()
            .filter(|(k, _)| *k != without)
            .chain(extra)
            .copied();
        Config::from_env(&Env::from_pairs(pairs))
    }

    #[test]
    fn defaults_follow_ses() {
        let config = config(&[], "").unwrap();
        assert_eq!(config.max_message_bytes, 40 * 1024 * 1024);
        assert_eq!(config.mail_prefix, "inbound/");
        assert_eq!(config.mail_bucket, None);
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.lifecycle, None, "no rotations unless configured");
    }

    /// With `BASE`, what turns the lifecycle on.
    const LIFECYCLE: [(&str, &str); 7] = [
        ("ROTATIONS_TABLE", "rotations"),
        ("AUDIT_TABLE", "audit"),
        ("VAULT_KMS_KEY_ID", "alias/vault"),
        ("TOKEN_KMS_KEY_ID", "alias/vault"),
        ("NOTICE_FROM", "rootmail@example-msp.com"),
        ("NOTICE_TO", "security@example-msp.com"),
        ("ROOT_MAIL_DOMAIN", "root.example-msp.com"),
    ];

    #[test]
    fn rotations_bring_the_lifecycle_settings_along() {
        let config = config(&LIFECYCLE, "").unwrap();
        let lifecycle_config = config.lifecycle.expect("lifecycle settings");
        assert_eq!(lifecycle_config.rotations_table, "rotations");
        assert_eq!(lifecycle_config.accounts_table, config.accounts_table);
        assert_eq!(
            lifecycle_config.ticket_ops_queue_url,
            config.ticket_ops_queue_url
        );
        // Rotations without the rest is a configuration error, named.
        let error = config_error(&[("ROTATIONS_TABLE", "rotations")]);
        assert!(error.contains("AUDIT_TABLE"), "{error}");
    }

    fn config_error(extra: &[(&str, &str)]) -> String {
        config(extra, "").unwrap_err().to_string()
    }

    #[test]
    fn variables_are_what_from_env_reads() {
        let everything: Vec<(&str, &str)> = BASE.iter().chain(&LIFECYCLE).copied().collect();
        let read = names_read(&everything, |env| {
            Config::from_env(env).unwrap();
        });
        assert_eq!(read, name_set(Config::VARIABLES));
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for (name, _) in BASE {
            let error = config(&[], name).unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        let error = config(&[("INGEST_CONCURRENCY", "0")], "")
            .unwrap_err()
            .to_string();
        assert!(error.contains("INGEST_CONCURRENCY"), "{error}");
        let error = config(&[("TICKET_OPS_QUEUE_URL", "ticket-ops.fifo")], "")
            .unwrap_err()
            .to_string();
        assert!(error.contains("expected an http"), "{error}");
        let error = config(&[("MAX_MESSAGE_BYTES", "-1")], "")
            .unwrap_err()
            .to_string();
        assert!(error.contains("MAX_MESSAGE_BYTES"), "{error}");
    }
}
