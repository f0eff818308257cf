//! The two Lambda handlers wired to a fresh [`Stack`] exactly as their `main.rs`
//! wires them (`on_aws`), with the configuration read from the environment a
//! deployed function would get.

use crate::aws::Stack;
use mail_ingest::{AwsIngest, Ingest};
use rootmail_aws::metrics::CapturedLines;
use rootmail_aws::queue::{SqsDeadLetters, SqsRedelivery};
use rootmail_aws::{DynamoLedger, DynamoThreadMap, Env, Metrics, S3MailSource};
use rootmail_pipeline::{LedgerRow, TicketSink};
use ticket_writer::{AwsWriter, Writer};

pub type WriterHandler<S> = Writer<DynamoLedger, DynamoThreadMap, S, SqsDeadLetters, S3MailSource>;

impl Stack {
    fn env(&self, extra: &[(&'static str, String)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::from_pairs(self.function_env().into_iter().chain(extra.iter().cloned()))
    }

    /// A `mail-ingest` instance; `extra` adds or overrides environment variables.
    pub fn ingest_handler(&self, extra: &[(&'static str, String)]) -> (AwsIngest, CapturedLines) {
        let config = mail_ingest::Config::from_env(&self.env(extra)).expect("ingest config");
        let (metrics, lines) = Metrics::memory();
        (
            Ingest::on_aws(config, &self.aws, metrics).expect("the S3 client builds"),
            lines,
        )
    }

    /// A `ticket-writer` instance posting to the webhook at `url`, retrying fast
    /// (the fake receiver asks for `Retry-After: 0`).
    pub async fn writer_handler(
        &self,
        url: &str,
        extra: &[(&'static str, String)],
    ) -> (AwsWriter, CapturedLines) {
        let mut settings = vec![
            ("TICKET_API_URL", url.to_string()),
            ("HTTP_RETRY_BASE_MS", "5".to_string()),
        ];
        settings.extend(extra.iter().cloned());
        let config = ticket_writer::Config::from_env(&self.env(&settings)).expect("writer config");
        let (metrics, lines) = Metrics::memory();
        let writer = Writer::on_aws(&config, &self.aws, metrics)
            .await
            .expect("writer");
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
            redelivery: Some(SqsRedelivery::new(self.sqs.clone(), &self.ticket_ops_url)),
            mail: S3MailSource::new(
                rootmail_aws::S3Client::new(&self.aws).expect("the S3 client builds"),
                &self.bucket,
            ),
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
