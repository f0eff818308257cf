//! Crash points: `mail-ingest` and `ticket-writer` die at every step boundary
//! (the `failpoints` feature of `rootmail-pipeline`, compiled into the tests
//! only), Lambda delivers the batch again, and in the end nothing is lost or
//! repeated: one ledger row per message, one ticket per thread and one comment
//! per message, in a stateful fake Zendesk driven by the real backend.
//!
//! A crash is a panic at the point: the whole invocation dies mid-batch, as a
//! Lambda instance does, so every record of that batch comes back, wherever
//! the others had got to.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use futures_util::FutureExt;
use rootmail_pipeline::{CRASH_POINTS, LedgerStatus, fail};
use rootmail_tests::aws::Stack;
use rootmail_tests::lambda::{queue_depth, receive, settle};
use rootmail_tests::zendesk_fake::FakeZendesk;
use rootmail_tests::{corpus_dir, design_corpus, relative};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Duration;

/// The fail-point registry is process-wide: one crash scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The corpus' threads with replies, and mail of every disposition (archived,
/// quarantined, unparseable, a code): 27 messages, 16 threads.
fn mails() -> Vec<PathBuf> {
    let dirs = [
        "support.case",
        "billing.budget_alert",
        "billing.cost_anomaly",
        "notification.cloudwatch_alarm",
        "billing.statement",
        "phishing.suspected",
        "security.root_email_otp",
        "bad",
    ];
    dirs.iter()
        .flat_map(|d| design_corpus(&corpus_dir().join(d)))
        .collect()
}

/// What the golden files say: the messages that become a ticket operation, by thread.
struct Expected {
    messages: usize,
    threads: BTreeSet<String>,
    operations: usize,
}

fn expected(files: &[PathBuf]) -> Expected {
    let mut e = Expected {
        messages: files.len(),
        threads: BTreeSet::new(),
        operations: 0,
    };
    for file in files {
        let golden: Value =
            serde_json::from_slice(&std::fs::read(file.with_extension("json")).expect("golden"))
                .expect("golden json");
        if !golden["ticket"].is_null() {
            e.operations += 1;
            e.threads
                .insert(golden["thread_key"].as_str().expect("thread").to_string());
        }
    }
    e
}

/// Which stage crashes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Ingest,
    Writer,
}

/// Feeds a queue to a handler until it is empty, as the Lambda event source
/// does. With `crash`, an invocation none of whose records has been through a
/// crash yet dies at that point, once: so every record is received at most
/// twice, well under the queues' five receives before the dead-letter queue.
/// A dead invocation fails its whole batch. Returns the crashed invocations.
async fn deliver<F, Fut>(stack: &Stack, url: &str, crash: Option<&str>, mut handler: F) -> usize
where
    F: FnMut(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let mut crashed_records = BTreeSet::new();
    let mut crashes = 0;
    for _ in 0..500 {
        let Some(event) = receive(&stack.sqs, url, 10).await else {
            return crashes;
        };
        let ids: Vec<String> = event
            .records
            .iter()
            .map(|r| r.message_id.clone().unwrap_or_default())
            .collect();
        let armed = crash.filter(|_| ids.iter().all(|id| !crashed_records.contains(id)));
        if let Some(point) = armed {
            fail::cfg(point, "1*panic").expect("fail point");
        }
        let outcome = AssertUnwindSafe(handler(event.clone()))
            .catch_unwind()
            .await;
        if let Some(point) = armed {
            fail::remove(point);
        }
        let response = match outcome {
            Ok(response) => response,
            Err(_) => {
                crashes += 1;
                crashed_records.extend(ids);
                if url == stack.inbound_url {
                    // SQS redelivers after the visibility timeout, by which time
                    // a dead run's claim has expired (CLAIM_TIMEOUT_SECS is 1 here).
                    tokio::time::sleep(Duration::from_millis(2100)).await;
                }
                every_record_failed(&event)
            }
        };
        settle(&stack.sqs, url, &event, &response).await;
    }
    panic!("{url} did not drain in 500 batches");
}

fn every_record_failed(event: &SqsEvent) -> SqsBatchResponse {
    rootmail_aws::batch_failures(
        event
            .records
            .iter()
            .map(|r| r.message_id.clone().unwrap_or_default()),
    )
}

/// The message each comment was written for, counted per visibility.
fn markers(fake: &FakeZendesk, public: bool) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for ticket in fake.tickets() {
        for comment in ticket.comments.iter().filter(|c| c.public == public) {
            let message = rootmail_tests::zendesk_fake::marker_key()
                .last_marked(&comment.body)
                .unwrap_or_else(|| panic!("a comment without a marker: {}", comment.body));
            *counts.entry(message.to_string()).or_default() += 1;
        }
    }
    counts
}

/// Runs the mails through both stages with `point` crashing `stage` once per
/// message, then checks that the end state is what one clean run gives.
async fn crash_and_redeliver(point: &'static str) {
    let _serial = SERIAL.lock().await;
    assert!(
        CRASH_POINTS.contains(&point),
        "{point} is a known crash point"
    );
    let stage = if point.starts_with("ingest.") {
        Stage::Ingest
    } else {
        Stage::Writer
    };
    let files = mails();
    let want = expected(&files);
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    for file in &files {
        let key = format!("inbound/{}", relative(file).replace('/', "-"));
        stack
            .put_mail(&key, std::fs::read(file).expect("fixture"))
            .await;
    }
    let fake = FakeZendesk::start();
    let (ingest, _) = stack.ingest_handler(&[("CLAIM_TIMEOUT_SECS", "1".to_string())]);
    let (writer, _) = stack.writer_with(fake.backend());

    let (ingest_point, writer_point) = match stage {
        Stage::Ingest => (Some(point), None),
        Stage::Writer => (None, Some(point)),
    };
    let ingest_crashes = deliver(&stack, &stack.inbound_url, ingest_point, |event| {
        ingest.handle_sqs(event)
    })
    .await;
    let writer_crashes = deliver(&stack, &stack.ticket_ops_url, writer_point, |event| {
        writer.handle_sqs(event)
    })
    .await;
    let crashes = ingest_crashes + writer_crashes;
    assert!(crashes > 0, "{point}: the crash point was never reached");
    // Nothing lost: one finished ledger row per message.
    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), want.messages, "{point}: ledger rows");
    let unfinished: Vec<_> = rows
        .iter()
        .filter(|r| r.status != LedgerStatus::Done)
        .map(|r| (&r.source, r.status))
        .collect();
    assert!(unfinished.is_empty(), "{point}: unfinished {unfinished:?}");
    // Nothing repeated: one ticket per thread, one public comment and one
    // internal note per message that has an operation.
    let tickets = fake.tickets();
    let threads: BTreeSet<_> = tickets
        .iter()
        .filter_map(|t| t.external_id.clone())
        .collect();
    assert_eq!(tickets.len(), want.threads.len(), "{point}: tickets");
    assert_eq!(
        threads.len(),
        tickets.len(),
        "{point}: one ticket per thread"
    );
    for public in [true, false] {
        let counts = markers(&fake, public);
        assert_eq!(
            counts.len(),
            want.operations,
            "{point}: messages (public {public})"
        );
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            repeated.is_empty(),
            "{point}: written twice (public {public}): {repeated:?}"
        );
    }
    assert_eq!(queue_depth(&stack.sqs, &stack.inbound_dlq_url).await, 0);
    assert_eq!(queue_depth(&stack.sqs, &stack.ticket_ops_dlq_url).await, 0);
    eprintln!(
        "{point}: {crashes} crashed invocations; {} rows, {} tickets, {} operations",
        rows.len(),
        tickets.len(),
        want.operations
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_crashes_after_claim() {
    crash_and_redeliver("ingest.after-claim").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_crashes_after_archive() {
    crash_and_redeliver("ingest.after-archive").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_crashes_after_record_before_enqueue() {
    crash_and_redeliver("ingest.after-record").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_crashes_after_enqueue() {
    crash_and_redeliver("ingest.after-enqueue").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writer_crashes_after_marking_its_first_send() {
    crash_and_redeliver("writer.after-start-sending").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writer_crashes_after_create_before_record() {
    crash_and_redeliver("writer.after-create").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writer_crashes_after_comment_before_record() {
    crash_and_redeliver("writer.after-comment").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writer_crashes_after_thread_saved() {
    crash_and_redeliver("writer.after-thread-saved").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writer_crashes_after_ledger_done() {
    crash_and_redeliver("writer.after-ledger-done").await;
}

/// Every crash point the pipeline declares has a scenario above.
#[test]
fn every_crash_point_has_a_scenario() {
    let source = include_str!("crash_points.rs");
    for point in CRASH_POINTS {
        assert!(
            source.contains(&format!("crash_and_redeliver(\"{point}\")")),
            "{point} has no scenario"
        );
    }
}
