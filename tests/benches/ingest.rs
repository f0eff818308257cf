//! `mail-ingest` end to end against moto (`make bench` starts it). The corpus
//! is uploaded to S3, its notifications are received from the inbound queue in
//! batches of ten, as the Lambda event source does, and each batch is handled by
//! `Ingest::handle_sqs` wired as deployed, with the template's
//! `INGEST_CONCURRENCY=2`, one batch after another as one instance would. Only
//! the handling is timed.
//!
//! Every iteration gets a fresh stack (bucket, queues, tables), so every message
//! is ingested for the first time: the same object again would take the ledger's
//! duplicate path. Each iteration checks that no record failed and that the
//! ledger holds one row per distinct message.
//!
//! The baseline, measured in the same run: the bare moto round trips each
//! message needs at the least, S3 GetObject of the whole object and one DynamoDB
//! PutItem, with the same batches and concurrency. The ratio is what ingest
//! costs beyond them: its other calls (the ledger claim, account and thread
//! lookups, the thread and ledger writes, the ticket operation) and triage.

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use criterion::{Criterion, SamplingMode, Throughput};
use futures_util::stream::{self, StreamExt};
use rootmail_tests::aws::{ENDPOINT_VARIABLE, Stack};
use rootmail_tests::lambda::receive;
use rootmail_tests::{corpus_dir, eml_files, relative};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The template's `INGEST_CONCURRENCY`, and the event source's batch size.
const CONCURRENCY: usize = 2;
const BATCH: usize = 10;

struct Corpus {
    mail: Vec<(String, Vec<u8>)>,
    distinct: usize,
}

impl Corpus {
    fn load() -> Self {
        let mail: Vec<(String, Vec<u8>)> = eml_files(&corpus_dir())
            .into_iter()
            .map(|p| {
                let raw = std::fs::read(&p).expect("fixture");
                (format!("inbound/{}", relative(&p)), raw)
            })
            .collect();
        let distinct = mail
            .iter()
            .map(|(_, raw)| raw.as_slice())
            .collect::<HashSet<_>>()
            .len();
        Self { mail, distinct }
    }

    async fn upload(&self, stack: &Stack) {
        for (key, raw) in &self.mail {
            stack.put_mail(key, raw.clone()).await;
        }
    }
}

/// One first-time ingest of the corpus on a fresh stack; the handling alone is timed.
async fn first_time_ingest(corpus: &Corpus) -> Duration {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    corpus.upload(&stack).await;
    let batches = notifications(&stack, corpus.mail.len()).await;
    let concurrency = CONCURRENCY.to_string();
    let (ingest, _metrics) = stack.ingest_handler(&[("INGEST_CONCURRENCY", concurrency)]);

    let start = Instant::now();
    let mut failures = 0;
    for batch in batches {
        failures += ingest.handle_sqs(batch).await.batch_item_failures.len();
    }
    let elapsed = start.elapsed();

    assert_eq!(failures, 0, "every record is ingested");
    assert_eq!(stack.ledger_rows().await.len(), corpus.distinct);
    elapsed
}

/// The bucket's notifications for `expected` objects, as the batches the
/// event source would hand over (received now, handled later: they stay in
/// flight well within the queue's visibility timeout).
async fn notifications(stack: &Stack, expected: usize) -> Vec<SqsEvent> {
    let mut batches = Vec::new();
    let mut announced = 0;
    for _ in 0..200 {
        match receive(&stack.sqs, &stack.inbound_url, BATCH as i32).await {
            Some(event) => {
                announced += event
                    .records
                    .iter()
                    .filter_map(|r| r.body.as_deref())
                    .map(|body| mail_ingest::events::s3_notification(body).map_or(0, |r| r.len()))
                    .sum::<usize>();
                batches.push(event);
            }
            None if announced >= expected => break,
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(announced, expected, "one notification per uploaded object");
    batches
}

/// The bare round trips for the corpus on `stack` (uploaded once): GetObject
/// of each message and one PutItem under a key this run has not used.
async fn bare_round_trips(stack: &Stack, corpus: &Corpus, run: u64) -> Duration {
    let start = Instant::now();
    for batch in corpus.mail.chunks(BATCH) {
        stream::iter(batch)
            .map(|(key, _)| async move {
                let object = stack
                    .s3
                    .get_object()
                    .bucket(&stack.bucket)
                    .key(key)
                    .send()
                    .await
                    .expect("get object");
                let raw = object.body.collect().await.expect("object body");
                stack
                    .dynamodb
                    .put_item()
                    .table_name(&stack.ledger_table)
                    .item(
                        "content_hash",
                        AttributeValue::S(format!("bench-{run}-{key}")),
                    )
                    .item("source", AttributeValue::S(key.clone()))
                    .item(
                        "bytes",
                        AttributeValue::N(raw.into_bytes().len().to_string()),
                    )
                    .send()
                    .await
                    .expect("put item");
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }
    start.elapsed()
}

fn main() {
    if std::env::var_os(ENDPOINT_VARIABLE).is_none() {
        eprintln!(
            "ingest bench skipped: it needs moto. Run `make bench`, or \
             `scripts/with-moto cargo bench -p rootmail-tests --bench ingest`."
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let corpus = Corpus::load();
    println!(
        "ingest: {} corpus messages per iteration, batches of {BATCH}, INGEST_CONCURRENCY={CONCURRENCY}",
        corpus.mail.len()
    );
    let baseline_stack = runtime.block_on(async {
        let stack = Stack::create().await;
        corpus.upload(&stack).await;
        stack
    });

    let mut criterion = Criterion::default().configure_from_args();
    // An iteration takes a second or more: ten samples of one or two iterations
    // each (criterion's "Unable to complete 10 samples" note is expected).
    let mut group = criterion.benchmark_group("ingest");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(corpus.mail.len() as u64));
    let mut run = 0;
    group.bench_function("bare_round_trips", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    run += 1;
                    total += bare_round_trips(&baseline_stack, &corpus, run).await;
                }
                total
            })
        })
    });
    group.bench_function("first_time_ingest", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += first_time_ingest(&corpus).await;
                }
                total
            })
        })
    });
    group.finish();
    criterion.final_summary();
}
