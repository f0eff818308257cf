//! The AWS pipeline end to end against real local AWS (moto): mail in the bucket,
//! S3 notifications on the inbound queue, `mail-ingest` and `ticket-writer` driven
//! with what the queues deliver, tickets in a webhook receiver.

use aws_lambda_events::sqs::SqsEvent;
use rootmail_pipeline::{LedgerRow, LedgerStatus};
use rootmail_tests::aws::Stack;
use rootmail_tests::lambda::{drain, queue_depth, receive, settle};
use rootmail_tests::memory_sink::MemorySink;
use rootmail_tests::webhook_server::{FakeTicket, WebhookServer};
use rootmail_tests::{
    captured_logs, corpus_dir, design_corpus, eml_files, known_secrets, relative,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the corpus' golden files say the pipeline must produce.
struct Expected {
    messages: usize,
    threads: BTreeSet<String>,
    operations: usize,
    by_disposition: BTreeMap<String, usize>,
}

fn expected(files: &[std::path::PathBuf]) -> Expected {
    let mut e = Expected {
        messages: files.len(),
        threads: BTreeSet::new(),
        operations: 0,
        by_disposition: BTreeMap::new(),
    };
    for file in files {
        let golden: Value = serde_json::from_slice(
            &std::fs::read(file.with_extension("json")).expect("golden file"),
        )
        .expect("golden json");
        *e.by_disposition
            .entry(
                golden["disposition"]
                    .as_str()
                    .expect("disposition")
                    .to_string(),
            )
            .or_default() += 1;
        if !golden["ticket"].is_null() {
            e.operations += 1;
            e.threads
                .insert(golden["thread_key"].as_str().expect("thread").to_string());
        }
    }
    e
}

/// Object keys as SES would write them (the setup notification under its fixed
/// name), with a space so URL-decoding is exercised.
fn key_for(file: &Path) -> String {
    match file.file_stem().and_then(|s| s.to_str()) {
        Some(setup @ "AMAZON_SES_SETUP_NOTIFICATION") => format!("inbound/{setup}"),
        _ => format!("inbound/{}", relative(file).replace('/', " ")),
    }
}

pub(crate) async fn upload(stack: &Stack, files: &[std::path::PathBuf]) {
    for file in files {
        stack
            .put_mail(&key_for(file), std::fs::read(file).expect("fixture"))
            .await;
    }
}

fn comment_count(tickets: &[FakeTicket]) -> usize {
    tickets.iter().map(|t| t.comments.len()).sum()
}

fn dispositions(rows: &[LedgerRow]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        let d = row.disposition.map_or("none", |d| d.as_str());
        *counts.entry(d.to_string()).or_default() += 1;
    }
    counts
}

fn assert_no_secret_in(what: &str, text: &str) {
    for (file, secret) in known_secrets() {
        assert!(
            !rootmail_tests::leaks::contains_secret(text, &secret),
            "a secret of {file} reached the {what}"
        );
    }
}

/// Everything the corpus holds, once each: ledger rows, tickets per thread,
/// comments for the rest, archive and quarantine counts; no secret anywhere.
/// Whether the object at `key` carries the `rootmail-sealed=true` tag.
async fn is_sealed(stack: &Stack, key: &str) -> bool {
    let tags = (stack.s3.get_object_tagging().bucket(&stack.bucket))
        .key(key)
        .send()
        .await
        .expect("object tags");
    tags.tag_set()
        .iter()
        .any(|t| t.key() == rootmail_aws::SEALED_TAG && t.value() == "true")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_corpus_goes_through_the_pipeline_exactly_once() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let files = eml_files(&corpus_dir());
    let want = expected(&files);
    upload(&stack, &files).await;

    let webhook = WebhookServer::start();
    let (ingest, ingest_metrics) = stack.ingest_handler(&[]);
    let (writer, writer_metrics) = stack.writer_handler(&webhook.url, &[]).await;

    let started = std::time::Instant::now();
    let inbound = drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
    let ops = drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;
    let elapsed = started.elapsed();
    eprintln!(
        "{} messages through ingest+writer against moto in {:.2} s: {:.1} messages/s",
        want.messages,
        elapsed.as_secs_f64(),
        want.messages as f64 / elapsed.as_secs_f64()
    );

    assert_eq!(inbound.failures, 0, "no ingest record failed");
    assert_eq!(ops.failures, 0, "no ticket operation failed");
    assert_eq!(
        ops.records, want.operations,
        "one operation per ticketed mail"
    );

    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), want.messages, "one ledger row per object");
    assert!(rows.iter().all(|r| r.status == LedgerStatus::Done));
    assert!(rows.iter().all(|r| r.source.starts_with("s3://")));
    assert_eq!(dispositions(&rows), want.by_disposition);

    let tickets = webhook.tickets();
    let threads: BTreeSet<String> = tickets.iter().map(|t| t.thread_key.clone()).collect();
    assert_eq!(threads, want.threads, "one ticket per thread");
    assert_eq!(tickets.len(), want.threads.len());
    assert_eq!(
        comment_count(&tickets),
        want.operations - want.threads.len(),
        "a comment for every other ticketed mail"
    );
    for ticket in &tickets {
        assert_no_secret_in("ticket subject", &ticket.subject);
        assert_no_secret_in("ticket body", &ticket.body);
        assert_no_secret_in("internal note", &ticket.internal_note);
        for (name, bytes) in &ticket.attachments {
            assert_no_secret_in(name, &String::from_utf8_lossy(bytes));
        }
        for comment in &ticket.comments {
            assert_no_secret_in("ticket comment", &comment.body);
        }
        // Authentication details and the S3 location are internal only.
        assert!(ticket.internal_note.contains("Original message: s3://"));
        assert!(!ticket.body.contains("Authentication:"), "{}", ticket.body);
    }
    assert_eq!(
        webhook.unsigned(),
        0,
        "every request carried a valid HMAC signature"
    );
    // The abuse report's evidence file was read back from S3 and uploaded whole.
    let evidence = tickets
        .iter()
        .flat_map(|t| &t.attachments)
        .find(|(name, _)| name == "abuse-evidence.txt")
        .expect("the abuse evidence is attached");
    assert_eq!(evidence.1.len(), 289);

    // Originals that hold a code or link, or whose text is withheld (they
    // may hold one unfound), are tagged so the ticket writer's role cannot
    // read them (issue 13, point 10); the others are not.
    for file in &files {
        let golden: Value =
            serde_json::from_slice(&std::fs::read(file.with_extension("json")).unwrap()).unwrap();
        let holds_secret = golden["secrets"].as_array().is_some_and(|s| !s.is_empty());
        assert!(
            !holds_secret || golden["sealed"] == true,
            "{}",
            relative(file)
        );
        let holds_secret = golden["sealed"] == true;
        let sealed = is_sealed(&stack, &key_for(file)).await;
        assert_eq!(sealed, holds_secret, "{}", relative(file));
    }

    let counted =
        |lines: &[Value], name: &str| lines.iter().filter(|l| l.get(name).is_some()).count();
    let ingest_lines = ingest_metrics.lines();
    let writer_lines = writer_metrics.lines();
    assert_eq!(counted(&ingest_lines, "Messages"), want.messages);
    // AWS's mail the rules do not know is counted, so they can be extended.
    let unclassified = files
        .iter()
        .filter(|f| {
            let golden: Value =
                serde_json::from_slice(&std::fs::read(f.with_extension("json")).unwrap()).unwrap();
            golden["kind"] == "aws.unclassified"
        })
        .count();
    assert!(unclassified > 0);
    assert_eq!(counted(&ingest_lines, "UnclassifiedAwsMail"), unclassified);
    assert_eq!(counted(&writer_lines, "TicketsCreated"), want.threads.len());
    assert_eq!(
        counted(&writer_lines, "CommentsAdded"),
        want.operations - want.threads.len()
    );
    assert!(counted(&writer_lines, "EndToEndLatency") > 0);
    // The lines' text: names and dimension values. Their numbers (a 13-digit
    // timestamp, latencies) hold any six digits by chance, a code among them
    // (CI once found "207731" in a timestamp), and a number holds no text.
    for line in ingest_lines.iter().chain(&writer_lines) {
        let mut text = Vec::new();
        rootmail_tests::leaks::collect_strings(line, &mut text);
        assert_no_secret_in("metrics", &text.join("\n"));
    }
    assert_eq!(queue_depth(&stack.sqs, &stack.inbound_dlq_url).await, 0);
    assert_eq!(queue_depth(&stack.sqs, &stack.ticket_ops_dlq_url).await, 0);

    // One log line per message with its span (key, kind), never a secret.
    let log_lines = captured_logs().lines();
    let ours = format!("s3://{}/", stack.bucket);
    let triaged: Vec<&Value> = log_lines
        .iter()
        .filter(|l| l["fields"]["message"] == "triaged")
        .filter(|l| {
            l["span"]["message_key"]
                .as_str()
                .is_some_and(|k| k.starts_with(&ours))
        })
        .collect();
    assert_eq!(triaged.len(), want.messages);
    assert!(triaged.iter().all(|l| {
        l["span"]["message_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("s3://"))
            && l["span"]["kind"].is_string()
            && l["span"]["thread_key"].is_string()
    }));
    // Without the time each line is stamped with: its six digits of
    // microseconds match some code now and then.
    for line in &log_lines {
        let mut text = line.clone();
        if let Some(fields) = text.as_object_mut() {
            fields.remove("timestamp");
        }
        assert_no_secret_in("logs", &text.to_string());
    }
}

/// The corpus mails whose golden thread is `thread`.
pub(crate) fn thread_files(thread: &str) -> Vec<std::path::PathBuf> {
    eml_files(&corpus_dir())
        .into_iter()
        .filter(|file| {
            let golden: Value = serde_json::from_slice(
                &std::fs::read(file.with_extension("json")).expect("golden"),
            )
            .expect("golden json");
            golden["thread_key"] == thread
        })
        .collect()
}

/// The same S3 event three times, then two instances on one batch at once:
/// one ticket per thread, one comment per further mail.
#[tokio::test(flavor = "multi_thread")]
async fn redelivered_and_concurrent_batches_have_one_effect() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    // Three mails of one support case: one ticket, two comments.
    let files = thread_files("case:111122223333:177821827800850");
    assert_eq!(files.len(), 3);
    upload(&stack, &files).await;

    let (first, _) = stack.ingest_handler(&[]);
    let (second, _) = stack.ingest_handler(&[]);
    let batch = collect_all(&stack, &stack.inbound_url).await;
    assert_eq!(batch.records.len(), 4, "three mails and S3's test event");
    // Two instances on the same fresh batch at once: a message the other
    // instance holds is reported for retry, never dropped or done twice.
    let (a, b) = tokio::join!(
        first.handle_sqs(batch.clone()),
        second.handle_sqs(batch.clone())
    );
    let failed = a.batch_item_failures.len() + b.batch_item_failures.len();
    assert!(failed <= 3, "at most one instance backs off per message");
    // Then the whole batch again, three times (S3's duplicate event, Lambda retries).
    for _ in 0..3 {
        let response = first.handle_sqs(batch.clone()).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    settle(&stack.sqs, &stack.inbound_url, &batch, &Default::default()).await;

    let memory = MemorySink::default();
    let (writer_a, metrics_a) = stack.writer_with(&memory);
    let (writer_b, metrics_b) = stack.writer_with(&memory);
    let ops = collect_all(&stack, &stack.ticket_ops_url).await;
    assert_eq!(
        ops.records.len(),
        3,
        "FIFO deduplication: one operation per mail"
    );
    for _ in 0..2 {
        let (a, b) = tokio::join!(
            writer_a.handle_sqs(ops.clone()),
            writer_b.handle_sqs(ops.clone())
        );
        assert!(a.batch_item_failures.is_empty() && b.batch_item_failures.is_empty());
    }
    let tickets = memory.tickets();
    assert_eq!(tickets.len(), 1, "one ticket for the case");
    assert_eq!(tickets[0].comments.len(), 2, "one comment per further mail");
    // The second round found every operation done: counted as repeats, not as
    // new tickets or comments.
    let lines: Vec<Value> = metrics_a
        .lines()
        .into_iter()
        .chain(metrics_b.lines())
        .collect();
    let count = |name: &str| lines.iter().filter(|l| l.get(name).is_some()).count();
    assert_eq!(
        count("TicketsCreated") + count("CommentsAdded") + count("RepeatedOperations"),
        12
    );
    assert!(count("RepeatedOperations") >= 6, "{lines:?}");
    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.status == LedgerStatus::Done
        && r.ticket_id.as_deref() == Some(tickets[0].id.as_str())));
}

/// Receives everything a queue holds as one event (FIFO: per group in order).
async fn collect_all(stack: &Stack, url: &str) -> SqsEvent {
    let mut all = SqsEvent::default();
    while let Some(event) = receive(&stack.sqs, url, 10).await {
        all.records.extend(event.records);
    }
    all
}

/// A ticket API that fails 30% of requests (500 before or after doing the work,
/// 429 with `Retry-After`): after retries, everything lands exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_flaky_ticket_api_still_gets_everything_exactly_once() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let files = design_corpus(&corpus_dir());
    let want = expected(&files);
    upload(&stack, &files).await;
    let webhook = WebhookServer::flaky(30, 0x5eed);
    let (ingest, _) = stack.ingest_handler(&[]);
    // Two attempts per delivery, so some operations also go back to the queue.
    let (writer, writer_metrics) = stack
        .writer_handler(&webhook.url, &[("HTTP_MAX_ATTEMPTS", "2".to_string())])
        .await;

    drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
    let ops = drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;

    let (requests, failed) = webhook.counts();
    eprintln!(
        "flaky API: {failed} of {requests} requests failed on purpose; \
         {} operation deliveries for {} operations",
        ops.records, want.operations
    );
    assert!(failed * 100 >= requests * 20, "the faults were injected");
    let tickets = webhook.tickets();
    let threads: BTreeSet<String> = tickets.iter().map(|t| t.thread_key.clone()).collect();
    assert_eq!(threads, want.threads, "one ticket per thread, none twice");
    assert_eq!(tickets.len(), want.threads.len());
    assert_eq!(
        comment_count(&tickets),
        want.operations - want.threads.len()
    );
    for ticket in &tickets {
        let messages: BTreeSet<&str> = ticket.comments.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(messages.len(), ticket.comments.len(), "no comment twice");
        assert!(!messages.contains(ticket.created_from.as_str()));
    }
    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), want.messages);
    assert!(rows.iter().all(|r| r.status == LedgerStatus::Done));
    assert_eq!(queue_depth(&stack.sqs, &stack.ticket_ops_dlq_url).await, 0);
    let retries = writer_metrics
        .lines()
        .iter()
        .filter(|l| l["Stage"] == "writer" && l.get("Retries").is_some())
        .count();
    eprintln!("flaky API: {retries} operations went back to the queue");
    assert!(retries > 0, "the queue's redelivery was exercised too");
}

/// A mail with an attachment of `size` bytes (base64 in the message).
fn mail_with_attachment(to: &str, size: usize) -> Vec<u8> {
    let mut raw = format!(
        "Received: from a48-1.smtp-out.amazonses.com (a48-1.smtp-out.amazonses.com [54.240.48.1]) by inbound-smtp.us-east-1.amazonaws.com with SMTP id bigmail0001 for {to};\r\n\
         From: Amazon Web Services <no-reply@amazonaws.com>\r\n\
         To: {to}\r\n\
         Subject: Your AWS usage report\r\n\
         Message-ID: <big-{size}@amazonaws.com>\r\n\
         Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nThe usage report is attached.\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"usage.csv\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"usage.csv\"\r\n\r\n"
    )
    .into_bytes();
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n";
    while raw.len() < size {
        raw.extend_from_slice(line);
    }
    raw.extend_from_slice(b"--b1--\r\n");
    raw
}

/// Runs `ingest-one` on an object; returns its outcome and peak RSS in KiB.
fn ingest_in_own_process(stack: &Stack, key: &str) -> (String, u64) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ingest-one"))
        .args([&stack.bucket, key])
        .envs(rootmail_tests::aws::process_env())
        .envs(stack.function_env())
        .output()
        .expect("ingest-one runs");
    assert!(
        output.status.success(),
        "ingest-one failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("ingest-one report");
    (
        report["outcome"].as_str().unwrap_or_default().to_string(),
        report["peak_rss_kib"].as_u64().expect("peak"),
    )
}

/// A 35 MB message is ingested, in one copy: the peak memory above a small
/// message's stays within a small multiple of the message.
#[tokio::test(flavor = "multi_thread")]
async fn a_35_mb_message_is_ingested_without_extra_copies() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let to = "root+a7f3k9q2@root.example-msp.com";
    const BIG: usize = 35 * 1024 * 1024;
    stack
        .put_mail("inbound/small", mail_with_attachment(to, 4096))
        .await;
    stack
        .put_mail("inbound/big", mail_with_attachment(to, BIG))
        .await;

    let (small_outcome, small_peak) = ingest_in_own_process(&stack, "inbound/small");
    let (big_outcome, big_peak) = ingest_in_own_process(&stack, "inbound/big");
    eprintln!(
        "mail-ingest peak RSS: {} MiB for a 35 MiB message, {} MiB for a 4 KiB one",
        big_peak / 1024,
        small_peak / 1024
    );
    assert!(small_outcome.starts_with("Triaged"), "{small_outcome}");
    assert!(big_outcome.starts_with("Triaged"), "{big_outcome}");
    let extra_mib = big_peak.saturating_sub(small_peak) / 1024;
    // The raw bytes once, plus the decoded attachment and parser state.
    assert!(
        extra_mib < 3 * 35,
        "{extra_mib} MiB above baseline for a 35 MiB message"
    );
    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.status == LedgerStatus::Queued && r.failure.is_none())
    );
}

/// An object deleted before it is read, and one larger than the limit: each is a
/// quarantine row that says why, and a ticket so a person sees it.
#[tokio::test(flavor = "multi_thread")]
async fn unreadable_objects_end_as_quarantine_rows_with_the_reason() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let to = "root+a7f3k9q2@root.example-msp.com";
    stack
        .put_mail("inbound/gone", mail_with_attachment(to, 2048))
        .await;
    stack
        .s3
        .delete_object()
        .bucket(&stack.bucket)
        .key("inbound/gone")
        .send()
        .await
        .expect("delete");
    stack
        .put_mail("inbound/huge", mail_with_attachment(to, 64 * 1024))
        .await;

    let (ingest, metrics) = stack.ingest_handler(&[("MAX_MESSAGE_BYTES", "50000".to_string())]);
    let inbound = drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
    assert_eq!(inbound.failures, 0, "permanent failures are not retried");
    let webhook = WebhookServer::start();
    let (writer, _) = stack.writer_handler(&webhook.url, &[]).await;
    drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;

    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), 2);
    let row_for = |key: &str| {
        rows.iter()
            .find(|r| r.source.ends_with(key))
            .unwrap_or_else(|| panic!("no ledger row for {key}: {rows:?}"))
    };
    let gone = row_for("/inbound/gone");
    assert_eq!(gone.disposition.map(|d| d.as_str()), Some("quarantine"));
    let reason = gone.failure.as_deref().unwrap_or_default();
    assert!(reason.contains("does not exist"), "{reason}");
    let huge = row_for("/inbound/huge");
    let reason = huge.failure.as_deref().unwrap_or_default();
    assert!(
        reason.contains("more than the 50000-byte limit"),
        "{reason}"
    );
    // Never searched: sealed, as mail holding a secret is.
    assert!(is_sealed(&stack, "inbound/huge").await);
    assert!(rows.iter().all(|r| r.status == LedgerStatus::Done));

    let tickets = webhook.tickets();
    assert_eq!(tickets.len(), 2);
    assert!(tickets.iter().all(|t| {
        t.subject
            .starts_with("[quarantine] Unreadable message s3://")
    }));
    let reasons: Vec<Value> = metrics
        .lines()
        .into_iter()
        .filter(|l| l.get("Quarantines").is_some())
        .map(|l| l["Reason"].clone())
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons.contains(&Value::from("missing")) && reasons.contains(&Value::from("oversized"))
    );

    // Seen again (a redelivered event), nothing changes.
    let again = ingest
        .ingest_one(&mail_ingest::events::MailRef {
            location: rootmail_aws::MailLocation {
                bucket: stack.bucket.clone(),
                key: "inbound/gone".to_string(),
            },
            arrived_ms: None,
        })
        .await
        .expect("ingest again");
    assert!(matches!(again, mail_ingest::Outcome::Unreadable { .. }));
    assert_eq!(stack.ledger_rows().await.len(), 2);
    assert_eq!(queue_depth(&stack.sqs, &stack.ticket_ops_url).await, 0);
}

/// The other two triggers: a direct S3 event and the SES Lambda action; and S3's
/// test event, which is ignored.
#[tokio::test(flavor = "multi_thread")]
async fn direct_s3_and_ses_events_are_ingested() {
    use lambda_runtime::{Context, LambdaEvent};
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let files = thread_files("case:111122223333:177821827800850");
    let raw = |i: usize| std::fs::read(&files[i]).expect("fixture");
    stack.put_mail("inbound/direct one", raw(0)).await;
    stack.put_mail("inbound/0a1b2c3d4e5f", raw(1)).await;
    let (ingest, _) = stack.ingest_handler(&[]);
    let call = |payload: Value| ingest.handle(LambdaEvent::new(payload, Context::default()));

    let direct = serde_json::json!({"Records": [{
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-28T10:00:00.000Z",
        "s3": {"bucket": {"name": stack.bucket}, "object": {"key": "inbound/direct+one"}}}]});
    call(direct).await.expect("direct S3 event");
    let ses = serde_json::json!({"Records": [{
        "eventSource": "aws:ses", "eventVersion": "1.0",
        "ses": {"mail": {"messageId": "0a1b2c3d4e5f", "timestamp": "2026-11-28T10:00:00.000Z"},
                "receipt": {"recipients": ["root+a7f3k9q2@root.example-msp.com"]}}}]});
    let answer = call(ses).await.expect("SES event");
    assert_eq!(answer["disposition"], "CONTINUE");
    let test_event = serde_json::json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": stack.bucket});
    assert_eq!(call(test_event).await.expect("test event"), Value::Null);
    assert!(
        call(serde_json::json!({"hello": 1})).await.is_err(),
        "unknown events are errors"
    );

    let sources: BTreeSet<String> = stack
        .ledger_rows()
        .await
        .into_iter()
        .map(|r| r.source)
        .collect();
    let want: BTreeSet<String> = ["inbound/direct one", "inbound/0a1b2c3d4e5f"]
        .iter()
        .map(|k| format!("s3://{}/{k}", stack.bucket))
        .collect();
    assert_eq!(sources, want);
}

/// An operation that can never succeed goes to the dead-letter queue with its
/// reason, and its ledger row says so; garbage on the queue does too.
#[tokio::test(flavor = "multi_thread")]
async fn permanently_failing_operations_go_to_the_dlq_with_the_reason() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let files = thread_files("case:111122223333:177821827800850");
    stack
        .put_mail("inbound/case", std::fs::read(&files[0]).expect("fixture"))
        .await;
    let (ingest, _) = stack.ingest_handler(&[]);
    drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
    stack
        .sqs
        .send_message()
        .queue_url(&stack.ticket_ops_url)
        .message_body("this is not an operation")
        .message_group_id("garbage")
        .message_deduplication_id("garbage")
        .send()
        .await
        .expect("send garbage");

    // A receiver that answers 404 to everything: the backend is misconfigured.
    let webhook = WebhookServer::start();
    let wrong_url = webhook.url.replace("/hook", "/not-the-hook");
    let (writer, _) = stack.writer_handler(&wrong_url, &[]).await;
    let ops = drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;
    assert_eq!(ops.failures, 0, "permanent failures are not retried");

    let reasons = dead_letter_reasons(&stack).await;
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons.iter().any(|r| r.contains("not a ticket operation")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("404")), "{reasons:?}");
    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, LedgerStatus::Queued, "still owed a ticket");
    assert!(
        rows[0]
            .failure
            .as_deref()
            .unwrap_or_default()
            .contains("dead-lettered")
    );
}

/// A wrong webhook key: the receiver answers 401 once per operation (the
/// writer reads its secret again, which holds the same key), and the
/// operation goes to the dead-letter queue with a reason naming the backend
/// and the status; nothing is retried.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_credential_is_one_clear_error_not_a_retry_storm() {
    let stack = one_case_mail_queued().await;

    let wrong = webhook_key_secret(&stack, "not-the-receivers-key-though-32-bytes-long").await;
    let webhook = WebhookServer::start();
    let (writer, _) = stack
        .writer_handler(&webhook.url, &[("TICKET_CREDENTIALS_SECRET_ARN", wrong)])
        .await;
    let ops = drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;
    assert_eq!(ops.failures, 0, "not returned to the queue to fail again");
    assert_eq!(webhook.unsigned(), 1, "one request, refused, never retried");
    assert_eq!(webhook.counts().0, 0, "no other request got through");
    assert!(webhook.tickets().is_empty());
    let reasons = dead_letter_reasons(&stack).await;
    assert_eq!(reasons.len(), 1);
    let reason = &reasons[0];
    assert!(
        reason.contains("webhook rejected rootmail's credentials (HTTP 401"),
        "{reason}"
    );
    assert!(!reason.contains("not-the-receivers-key"), "{reason}");
}

/// A credentials secret holding a webhook HMAC key; its ARN.
async fn webhook_key_secret(stack: &Stack, key: &str) -> String {
    aws_sdk_secretsmanager::Client::new(&stack.aws)
        .create_secret()
        .name(rootmail_tests::aws::unique("webhook-key"))
        .secret_string(serde_json::json!({ "hmac_key": key }).to_string())
        .send()
        .await
        .expect("secret")
        .arn
        .expect("arn")
}

/// The `reason` attribute of each message in the ticket-ops dead-letter queue.
async fn dead_letter_reasons(stack: &Stack) -> Vec<String> {
    let dead = stack
        .sqs
        .receive_message()
        .queue_url(&stack.ticket_ops_dlq_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive dead letters")
        .messages
        .unwrap_or_default();
    dead.iter()
        .map(|m| {
            m.message_attributes
                .as_ref()
                .and_then(|a| a.get("reason"))
                .and_then(|r| r.string_value.clone())
                .expect("a reason")
        })
        .collect()
}

/// A stack whose ticket-ops queue holds one support case's operation.
async fn one_case_mail_queued() -> Stack {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let files = eml_files(&corpus_dir().join("support.case"));
    stack
        .put_mail("inbound/case", std::fs::read(&files[0]).expect("fixture"))
        .await;
    let (ingest, _) = stack.ingest_handler(&[]);
    drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
    stack
}

/// The webhook key rotated in Secrets Manager after the writer started (the
/// receiver already has the new one): the first refusal makes the writer
/// read its secret again and leave the operation to the queue, whose next
/// delivery writes the ticket with the new key; nothing dead-letters.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotated_in_the_secret_is_used_by_a_warm_writer() {
    let stack = one_case_mail_queued().await;

    let rotated = webhook_key_secret(&stack, "the-key-before-rotation-32-bytes-long").await;
    let webhook = WebhookServer::start();
    let (writer, _) = stack
        .writer_handler(
            &webhook.url,
            &[("TICKET_CREDENTIALS_SECRET_ARN", rotated.clone())],
        )
        .await;
    let new_key = serde_json::json!({"hmac_key": rootmail_tests::aws::WEBHOOK_HMAC_KEY});
    aws_sdk_secretsmanager::Client::new(&stack.aws)
        .put_secret_value()
        .secret_id(&rotated)
        .secret_string(new_key.to_string())
        .send()
        .await
        .expect("rotate");
    let ops = drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;
    assert_eq!(ops.failures, 1, "returned to the queue once");
    assert_eq!(webhook.unsigned(), 1, "refused once, with the old key");
    assert_eq!(webhook.tickets().len(), 1, "written with the new key");
    assert_eq!(queue_depth(&stack.sqs, &stack.ticket_ops_dlq_url).await, 0);
}

/// Mail built to hurt: thousands of recipients and references, an id longer
/// than any store key, a 1 MB header. Each is processed (bounded lookups, hashed
/// keys), never stuck in retries.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_mail_is_processed_not_stuck() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let root = "root+a7f3k9q2@root.example-msp.com";
    let recipients: Vec<String> = (0..5_000).map(|i| format!("user{i}@example.org")).collect();
    let references: Vec<String> = (0..10_000)
        .map(|i| format!("<ref{i}@example.org>"))
        .collect();
    let mails = [
        format!(
            "From: x@h.example\r\nTo: {}, {root}\r\nSubject: many\r\n\r\nbody",
            recipients.join(", ")
        ),
        format!(
            "From: x@h.example\r\nTo: {root}\r\nMessage-ID: <{}@x>\r\nSubject: long id\r\n\r\nbody",
            "é".repeat(2_000)
        ),
        format!(
            "From: x@h.example\r\nTo: {root}\r\nReferences: {}\r\nSubject: refs\r\n\r\nbody",
            references.join(" ")
        ),
        format!(
            "From: x@h.example\r\nTo: {root}\r\nX-Long: {}\r\nSubject: long header\r\n\r\nbody",
            "a".repeat(1_000_000)
        ),
    ];
    for (i, mail) in mails.iter().enumerate() {
        stack
            .put_mail(&format!("inbound/hostile-{i}"), mail.clone().into_bytes())
            .await;
    }
    let (ingest, _) = stack.ingest_handler(&[]);
    let webhook = WebhookServer::start();
    let (writer, _) = stack.writer_handler(&webhook.url, &[]).await;
    let inbound = drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
    let ops = drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;
    assert_eq!(inbound.failures, 0);
    assert_eq!(ops.failures, 0);
    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), mails.len());
    assert!(
        rows.iter().all(|r| r.status == LedgerStatus::Done),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .all(|r| r.account_id.as_deref() == Some("111122223333")),
        "the root address is found even after 5,000 others: {rows:#?}"
    );
    assert_eq!(webhook.tickets().len(), mails.len());
    assert_eq!(queue_depth(&stack.sqs, &stack.ticket_ops_dlq_url).await, 0);
}

/// An event that names an object in another bucket (forged on the inbound
/// queue, or a bucket misrouted to it) is not read: a readable object there
/// would be taken for mail SES delivered, a missing one would open a
/// quarantine ticket in the event's words. It is logged and counted, never
/// retried. (Objects of the stack's own bucket under another prefix are
/// read: `rootmail replay` re-drives mail restored there.)
#[tokio::test(flavor = "multi_thread")]
async fn an_event_naming_another_bucket_is_not_read() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let other = format!("{}-other", stack.bucket);
    stack
        .s3
        .create_bucket()
        .bucket(&other)
        .send()
        .await
        .expect("a second bucket");
    let forged = format!(
        "{}From: no-reply@signin.aws\r\nTo: root+a7f3k9q2@root.example-msp.com\r\n\
         Subject: Verify your identity\r\n\r\nVerification code: 615274\r\n",
        "X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n"
    );
    stack
        .s3
        .put_object()
        .bucket(&other)
        .key("inbound/forged")
        .body(forged.into_bytes().into())
        .send()
        .await
        .expect("put");
    let (ingest, metrics) = stack.ingest_handler(&[]);
    for bucket in [other, "no-such-bucket".to_string()] {
        let outcome = ingest
            .ingest_one(&mail_ingest::events::MailRef {
                location: rootmail_aws::MailLocation {
                    bucket: bucket.clone(),
                    key: "inbound/forged".to_string(),
                },
                arrived_ms: None,
            })
            .await
            .expect("not retried");
        assert!(
            matches!(outcome, mail_ingest::Outcome::Foreign),
            "{bucket}: {outcome:?}"
        );
    }
    assert!(stack.ledger_rows().await.is_empty());
    assert_eq!(queue_depth(&stack.sqs, &stack.ticket_ops_url).await, 0);
    let foreign = metrics
        .lines()
        .into_iter()
        .filter(|l| l.get("ForeignEvents").is_some())
        .count();
    assert_eq!(foreign, 2);
}

/// S3 that answers nothing: every read hangs, as a stalled connection
/// retried four times would for longer than the function's timeout.
struct StalledS3;

impl mail_ingest::MailReader for StalledS3 {
    async fn read(
        &self,
        _: &rootmail_aws::MailLocation,
        _: u64,
    ) -> Result<Vec<u8>, rootmail_aws::ReadError> {
        std::future::pending().await
    }

    async fn seal(&self, _: &rootmail_aws::MailLocation) -> rootmail_pipeline::PortResult<()> {
        Ok(())
    }
}

/// A batch whose reads stall is reported at the invocation's deadline, each
/// record failed (SQS retries them alone), instead of the function timing
/// out and SQS sending the whole batch back with no answer.
#[tokio::test(flavor = "multi_thread")]
async fn records_still_running_at_the_deadline_are_reported_failed() {
    let stack = Stack::create().await;
    let (aws, _) = stack.ingest_handler(&[]);
    let ingest = mail_ingest::Ingest {
        mail: StalledS3,
        ledger: aws.ledger,
        threads: aws.threads,
        accounts: aws.accounts,
        queue: aws.queue,
        handoffs: aws.handoffs,
        rules: aws.rules,
        metrics: aws.metrics,
        config: aws.config,
    };
    let record = |i: usize| {
        let notification = serde_json::json!({"Records": [{
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": stack.bucket}, "object": {"key": format!("inbound/m{i}")}},
        }]});
        serde_json::json!({"messageId": format!("m{i}"), "body": notification.to_string()})
    };
    let batch: SqsEvent =
        serde_json::from_value(serde_json::json!({"Records": [record(1), record(2), record(3)]}))
            .unwrap();
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        ingest.handle_sqs_until(batch, Some(until)),
    )
    .await
    .expect("answered at the deadline, not hung");
    let mut failed: Vec<String> = answered
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    failed.sort();
    assert_eq!(failed, ["m1", "m2", "m3"]);

    // Lambda's deadline is milliseconds since the epoch; the margin is kept.
    let now = 1_700_000_000_000;
    let by = rootmail_aws::finish_by(now + 120_000, now).expect("a deadline");
    let left = by - tokio::time::Instant::now();
    assert!(left <= std::time::Duration::from_secs(115), "{left:?}");
    assert!(left > std::time::Duration::from_secs(100), "{left:?}");
    assert_eq!(rootmail_aws::finish_by(0, now), None);
}

/// A ticketing system that answers nothing.
struct StalledTickets;

impl rootmail_pipeline::TicketSink for StalledTickets {
    fn name(&self) -> &'static str {
        "stalled"
    }

    async fn find(
        &self,
        _: &rootmail_domain::ThreadKey,
    ) -> rootmail_pipeline::PortResult<Option<rootmail_pipeline::FoundTicket>> {
        std::future::pending().await
    }

    async fn create(
        &self,
        _: &rootmail_pipeline::NewTicket,
    ) -> rootmail_pipeline::PortResult<String> {
        std::future::pending().await
    }

    async fn comment(
        &self,
        _: &str,
        _: &rootmail_pipeline::NewComment,
    ) -> rootmail_pipeline::PortResult<rootmail_pipeline::PostedComment> {
        std::future::pending().await
    }
}

/// The writer too answers its batch at the deadline when the ticketing
/// system stalls: every operation failed, to be retried, none lost.
#[tokio::test(flavor = "multi_thread")]
async fn the_writer_answers_at_the_deadline_when_the_ticket_api_stalls() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    upload(&stack, &thread_files("case:111122223333:177821827800850")).await;
    let (ingest, _) = stack.ingest_handler(&[]);
    drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
    let ops = receive(&stack.sqs, &stack.ticket_ops_url, 10)
        .await
        .expect("operations");
    assert!(!ops.records.is_empty());
    let (writer, _) = stack.writer_with(StalledTickets);
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        writer.handle_sqs_until(ops.clone(), Some(until)),
    )
    .await
    .expect("answered at the deadline, not hung");
    assert_eq!(answered.batch_item_failures.len(), ops.records.len());
}

/// SES delivers at least once: each delivery of a message is an object of
/// its own. Delivered again while its operation waits on the queue, and
/// again once its ticket is written, a sign-in code's mail makes one ticket,
/// no comment, one ledger row, and every copy of the code is sealed.
#[tokio::test(flavor = "multi_thread")]
async fn each_ses_delivery_of_a_mail_has_one_effect_and_every_copy_is_sealed() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let raw = std::fs::read(corpus_dir().join("security.signin_otp/01-plain.eml")).unwrap();
    let webhook = WebhookServer::start();
    let (ingest, ingest_metrics) = stack.ingest_handler(&[]);
    let (writer, _) = stack.writer_handler(&webhook.url, &[]).await;
    let deliveries = [
        raw.clone(),
        rootmail_tests::another_ses_delivery(&raw, 2),
        rootmail_tests::another_ses_delivery(&raw, 3),
    ];
    let ingest_one = async |n: usize| {
        let key = format!("inbound/delivery-{n}");
        stack.put_mail(&key, deliveries[n].clone()).await;
        let inbound = drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
        assert_eq!(inbound.failures, 0);
        key
    };
    let mut keys = vec![ingest_one(0).await, ingest_one(1).await];
    let ops = drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;
    assert_eq!(ops.failures, 0);
    keys.push(ingest_one(2).await);

    let tickets = webhook.tickets();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert_eq!(comment_count(&tickets), 0, "{tickets:?}");
    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].status == LedgerStatus::Done && rows[0].sealed);
    let duplicates = ingest_metrics.lines();
    let duplicates = duplicates.iter().filter(|l| l.get("Duplicates").is_some());
    assert_eq!(duplicates.count(), 1);
    for key in &keys {
        let tags = stack
            .s3
            .get_object_tagging()
            .bucket(&stack.bucket)
            .key(key)
            .send()
            .await
            .expect("object tags");
        let sealed = (tags.tag_set().iter())
            .any(|t| t.key() == rootmail_aws::SEALED_TAG && t.value() == "true");
        assert!(sealed, "{key} is not sealed");
    }
}
