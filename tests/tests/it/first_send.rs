//! Issue 16, goal 6: the writer marks a queued operation's ledger row before
//! its first request to the ticketing system, and a comment whose row no
//! writer had taken is sent without searching the ticket for it. Against
//! moto's DynamoDB (the conditional update and the ingest's conditional put)
//! and the stateful fake Zendesk driven by the real backend.

use super::aws_pipeline::{thread_files, upload};
use rootmail_aws::DynamoLedger;
use rootmail_domain::ContentHash;
use rootmail_pipeline::{Claim, Ledger, LedgerStatus, Sending};
use rootmail_tests::aws::Stack;
use rootmail_tests::lambda::{drain, receive, settle};
use rootmail_tests::zendesk_fake::{Call, FakeZendesk, marker_key};
use std::collections::BTreeMap;

/// The ledger's half: one mark per queued row, never on a row of unknown
/// history, and a copy of the mail triaged again does not erase it.
#[tokio::test(flavor = "multi_thread")]
async fn the_sending_mark_is_made_once_and_survives_a_second_triage() {
    let stack = Stack::create().await;
    let ledger = DynamoLedger::new(stack.dynamodb.clone(), &stack.ledger_table);
    let hash = ContentHash::of(b"a queued message");
    let Claim::Owned(mut row) = ledger.claim(&hash, "s3://b/k", 1_000, 900).await.unwrap() else {
        panic!("a new message is owned");
    };
    assert_eq!(row.sending, Sending::Unknown, "claimed, not yet queued");
    assert!(!ledger.start_sending(&hash).await.unwrap(), "not queued");
    row.status = LedgerStatus::Queued;
    row.sending = Sending::NotYet;
    ledger.record(&row).await.unwrap();

    assert!(
        ledger.start_sending(&hash).await.unwrap(),
        "the first writer"
    );
    assert!(!ledger.start_sending(&hash).await.unwrap(), "any later one");
    // A redelivered copy is triaged again and writes the row it read before.
    ledger.record(&row).await.unwrap();
    let kept = ledger.get(&hash).await.unwrap().expect("row");
    assert_eq!(kept.sending, Sending::Started, "the mark stays");
    assert!(!ledger.start_sending(&hash).await.unwrap());

    // A row queued before the mark existed: its history is unknown.
    let old = ContentHash::of(b"queued by an earlier version");
    let Claim::Owned(mut row) = ledger.claim(&old, "s3://b/o", 1_000, 900).await.unwrap() else {
        panic!("owned");
    };
    row.status = LedgerStatus::Queued;
    ledger.record(&row).await.unwrap();
    assert!(
        !ledger.start_sending(&old).await.unwrap(),
        "unknown: searched"
    );
    // Nor a row of no message at all.
    let absent = ContentHash::of(b"never claimed");
    assert!(!ledger.start_sending(&absent).await.unwrap());
    assert_eq!(ledger.get(&absent).await.unwrap(), None, "nothing made up");
}

/// The whole path: three mails of one case through mail-ingest and
/// ticket-writer. The second mail's comment costs two requests (the comment
/// and its note); the third's comment goes in but its answer is lost, and
/// the retry searches, finds it and adds only the note.
#[tokio::test(flavor = "multi_thread")]
async fn a_first_comment_skips_the_search_and_a_retry_after_a_lost_answer_searches() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let files = thread_files("case:111122223333:177821827800850");
    assert_eq!(files.len(), 3);
    upload(&stack, &files).await;
    let (ingest, _) = stack.ingest_handler(&[]);
    drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
    let rows = stack.ledger_rows().await;
    assert!(
        rows.iter().all(|r| r.sending == Sending::NotYet),
        "{rows:?}"
    );

    let zendesk = FakeZendesk::start();
    let (writer, _) = stack.writer_with(zendesk.backend());
    let next_op = || async {
        let event = receive(&stack.sqs, &stack.ticket_ops_url, 1)
            .await
            .expect("an operation");
        let response = writer.handle_sqs(event.clone()).await;
        settle(&stack.sqs, &stack.ticket_ops_url, &event, &response).await;
        response.batch_item_failures.len()
    };
    let calls_since = |start: usize| -> Vec<Call> {
        zendesk.requests()[start..].iter().map(|r| r.call).collect()
    };

    assert_eq!(next_op().await, 0, "the ticket");
    let start = zendesk.requests().len();
    assert_eq!(next_op().await, 0, "the first comment");
    assert_eq!(
        calls_since(start),
        [Call::Update, Call::Update],
        "the comment and its note, nothing searched"
    );

    let start = zendesk.requests().len();
    zendesk.lose_answers(Call::Update, 1);
    assert_eq!(next_op().await, 1, "the answer was lost: retried");
    assert_eq!(next_op().await, 0, "the retry");
    let calls = calls_since(start);
    assert_eq!(calls.first(), Some(&Call::Update), "{calls:?}");
    assert!(
        calls.contains(&Call::ListComments),
        "the retry searched: {calls:?}"
    );

    let tickets = zendesk.tickets();
    assert_eq!(tickets.len(), 1);
    let mut written: BTreeMap<(String, bool), usize> = BTreeMap::new();
    for comment in &tickets[0].comments {
        let message = marker_key().last_marked(&comment.body).expect("marked");
        *written
            .entry((message.to_string(), comment.public))
            .or_default() += 1;
    }
    assert_eq!(
        written.len(),
        6,
        "a comment and a note per mail: {written:?}"
    );
    assert!(written.values().all(|n| *n == 1), "{written:?}");
    let rows = stack.ledger_rows().await;
    assert!(
        rows.iter().all(|r| r.status == LedgerStatus::Done),
        "{rows:?}"
    );
}
