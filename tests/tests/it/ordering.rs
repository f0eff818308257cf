//! Ordering: the mails of one thread arrive newest first and are ingested by
//! concurrent invocations. There is still one ticket, and every comment says
//! when its mail was sent, so the thread reads correctly whatever order the
//! comments were added in.

use aws_lambda_events::sqs::SqsEvent;
use rootmail_tests::aws::Stack;
use rootmail_tests::lambda::{drain, receive, settle};
use rootmail_tests::zendesk_fake::FakeZendesk;
use rootmail_tests::{corpus_dir, eml_files};
use std::collections::BTreeSet;

/// When a raw message says it was sent, as ticket bodies show it (RFC 3339).
fn date_of(raw: &str) -> String {
    mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .and_then(|m| m.date().map(|d| d.to_rfc3339()))
        .expect("a Date header")
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_out_of_order_and_concurrent_make_one_dated_thread() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    // The case's three mails (created, correspondence, reply), stored newest first.
    let mut files: Vec<_> = eml_files(&corpus_dir().join("support.case"))
        .into_iter()
        .filter(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            ["01-", "02-", "03-"].iter().any(|p| name.starts_with(p))
        })
        .collect();
    assert_eq!(files.len(), 3);
    files.reverse();
    let mut dates = BTreeSet::new();
    for (n, file) in files.iter().enumerate() {
        let raw = std::fs::read_to_string(file).expect("fixture");
        dates.insert(date_of(&raw));
        stack
            .put_mail(&format!("inbound/{n}-case"), raw.into_bytes())
            .await;
    }

    // Three invocations at once, one record each (S3's test event aside).
    let mut singles = Vec::new();
    while let Some(event) = receive(&stack.sqs, &stack.inbound_url, 10).await {
        for record in event.records {
            let mut single = SqsEvent::default();
            single.records.push(record);
            singles.push(single);
        }
    }
    let handlers: Vec<_> = (0..singles.len())
        .map(|_| stack.ingest_handler(&[]).0)
        .collect();
    let responses = futures_util::future::join_all(
        handlers
            .iter()
            .zip(&singles)
            .map(|(handler, event)| handler.handle_sqs(event.clone())),
    )
    .await;
    for (event, response) in singles.iter().zip(&responses) {
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        settle(&stack.sqs, &stack.inbound_url, event, response).await;
    }

    let fake = FakeZendesk::start();
    let (writer, _) = stack.writer_with(fake.backend());
    let drained = drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;
    assert_eq!(drained.failures, 0);

    let tickets = fake.tickets();
    assert_eq!(tickets.len(), 1, "one ticket for the case");
    let public = tickets[0].public_comments();
    assert_eq!(public.len(), 3, "the description and two comments");
    // Every entry names its own mail's date, once: the thread is readable in
    // date order whichever mail arrived first.
    let shown: BTreeSet<String> = public
        .iter()
        .map(|c| {
            let lines: Vec<&str> = c
                .body
                .lines()
                .filter_map(|l| l.strip_prefix("Date: "))
                .collect();
            assert_eq!(lines.len(), 1, "one date per entry: {}", c.body);
            lines[0].trim().to_string()
        })
        .collect();
    assert_eq!(shown, dates);
}
