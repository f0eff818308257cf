//! The two Lambda handlers wired to a fresh [`Stack`] exactly as their `main.rs`
//! wires them, with the configuration read from the environment they would get.

use crate::aws::Stack;
use mail_ingest::Ingest;
use rootmail_aws::metrics::CapturedLines;
use rootmail_aws::queue::SqsDeadLetters;
use rootmail_aws::{
    DynamoAccounts, DynamoLedger, DynamoThreadMap, Env, Metrics, S3Mail, SqsTicketQueue,
};
use rootmail_domain::Rules;
use rootmail_pipeline::{LedgerRow, TicketSink};
use rootmail_tickets::{HttpClient, RetryPolicy, Webhook};
use std::collections::HashMap;
use std::time::Duration;
use ticket_writer::Writer;

pub type IngestHandler =
    Ingest<S3Mail, DynamoLedger, DynamoThreadMap, DynamoAccounts, SqsTicketQueue>;
pub type WriterHandler<S> = Writer<DynamoLedger, DynamoThreadMap, S, SqsDeadLetters>;

impl Stack {
    fn env(&self, extra: &[(&'static str, String)]) -> HashMap<String, String> {
        self.function_env()
            .into_iter()
            .chain(extra.iter().cloned())
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// A `mail-ingest` instance; `extra` adds or overrides environment variables.
    pub fn ingest_handler(
        &self,
        extra: &[(&'static str, String)],
    ) -> (IngestHandler, CapturedLines) {
        let env = self.env(extra);
        let config = mail_ingest::Config::from_env(&Env::from_fn(|name| env.get(name).cloned()))
            .expect("ingest config");
        let (metrics, lines) = Metrics::memory();
        let handler = Ingest {
            mail: S3Mail::new(self.s3.clone()),
            ledger: DynamoLedger::new(self.dynamodb.clone(), &config.ledger_table),
            threads: DynamoThreadMap::new(self.dynamodb.clone(), &config.threads_table),
            accounts: DynamoAccounts::new(self.dynamodb.clone(), &config.accounts_table),
            queue: SqsTicketQueue::new(self.sqs.clone(), &config.ticket_ops_queue_url),
            rules: Rules::built_in(),
            metrics,
            config,
        };
        (handler, lines)
    }

    /// A `ticket-writer` instance posting to the webhook at `url`.
    pub fn writer_handler(
        &self,
        url: &str,
        extra: &[(&'static str, String)],
    ) -> (WriterHandler<Webhook>, CapturedLines) {
        let mut extra = extra.to_vec();
        extra.push(("WEBHOOK_URL", url.to_string()));
        let env = self.env(&extra);
        let config = ticket_writer::Config::from_env(&Env::from_fn(|name| env.get(name).cloned()))
            .expect("writer config");
        let ticket_writer::Backend::Webhook { url, token } = &config.backend;
        // Short waits: the fake receiver asks for `Retry-After: 0`.
        let policy = RetryPolicy {
            max_attempts: config.http_max_attempts,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(2),
        };
        let http = HttpClient::new("webhook", config.http_timeout, policy).expect("client");
        let (mut writer, lines) = self.writer_with(Webhook::new(http, url, token.clone()));
        writer.concurrency = config.concurrency;
        (writer, lines)
    }

    /// A `ticket-writer` instance with any sink (the in-memory double, say).
    pub fn writer_with<S: TicketSink>(&self, sink: S) -> (WriterHandler<S>, CapturedLines) {
        let (metrics, lines) = Metrics::memory();
        let handler = Writer {
            ledger: DynamoLedger::new(self.dynamodb.clone(), &self.ledger_table),
            threads: DynamoThreadMap::new(self.dynamodb.clone(), &self.threads_table),
            sink,
            dead_letters: SqsDeadLetters::new(self.sqs.clone(), &self.ticket_ops_dlq_url),
            metrics,
            concurrency: 4,
        };
        (handler, lines)
    }

    pub async fn ledger_rows(&self) -> Vec<LedgerRow> {
        DynamoLedger::new(self.dynamodb.clone(), &self.ledger_table)
            .rows_since(0)
            .await
            .expect("scan ledger")
    }
}
