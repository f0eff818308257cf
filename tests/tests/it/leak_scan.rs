//! The secret-leak scan: mail holding secrets (the corpus, and generated mail
//! of every secret-bearing kind) goes through every path, and every sink is
//! searched for every secret value ([`rootmail_tests::leaks`]): zero hits.
//!
//! - the AWS pipeline (moto, the real Zendesk backend against the fake):
//!   SQS bodies, DynamoDB items, log lines, metrics, every request the ticket
//!   API received (attachments included) and the tickets it holds;
//! - the CLI: `triage`, `run`, `tickets list|show` output, and every file of the
//!   local state except the archive of originals;
//! - Step Functions inputs and outputs, step outputs, the lifecycle tables and
//!   notice mail: `lifecycle_aws.rs` scans them with the same matcher after
//!   each take-over (`assert_nowhere`).
//!
//! Each scan also has a positive control: the stored originals, searched the
//! same way, hold every secret, so a clean result is not a blind matcher.

use aws_lambda_events::sqs::SqsEvent;
use rootmail_tests::aws::Stack;
use rootmail_tests::lambda::{drain, receive};
use rootmail_tests::leaks::{Scan, Secrets, dynamodb_items, files_under};
use rootmail_tests::zendesk_fake::FakeZendesk;
use rootmail_tests::{captured_logs, corpus_dir, eml_files, relative, rootmail_bin};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The corpus files that hold a secret, and everything else of the corpus.
fn corpus() -> Vec<PathBuf> {
    eml_files(&corpus_dir())
}

/// Generated mail with fresh secrets of every secret-bearing kind, as AWS
/// writes it, to the corpus' accounts: `(object name, raw, secret)`.
fn generated(n: usize) -> Vec<(String, Vec<u8>, String)> {
    rootmail_tests::secret_mail::generate(n, 0x5ec7)
        .into_iter()
        .map(|m| (m.name, m.raw, m.secret))
        .collect()
}

fn bodies(event: &SqsEvent) -> Vec<String> {
    event
        .records
        .iter()
        .filter_map(|r| r.body.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sink_of_the_aws_pipeline_holds_a_secret() {
    let mut secrets = Secrets::corpus();
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let mut originals = Vec::new();
    for file in corpus() {
        let raw = std::fs::read(&file).expect("fixture");
        let key = format!("inbound/{}", relative(&file).replace('/', "-"));
        stack.put_mail(&key, raw.clone()).await;
        originals.push(raw);
    }
    for (name, raw, secret) in generated(60) {
        secrets.add(&name, &secret);
        stack
            .put_mail(&format!("inbound/{name}"), raw.clone())
            .await;
        originals.push(raw);
    }

    let fake = FakeZendesk::start();
    let (ingest, ingest_metrics) = stack.ingest_handler(&[]);
    let (writer, writer_metrics) = stack.writer_with(fake.backend());
    let mut inbound = Vec::new();
    let mut ops = Vec::new();
    drain(&stack.sqs, &stack.inbound_url, |event| {
        inbound.extend(bodies(&event));
        ingest.handle_sqs(event)
    })
    .await;
    drain(&stack.sqs, &stack.ticket_ops_url, |event| {
        ops.extend(bodies(&event));
        writer.handle_sqs(event)
    })
    .await;
    assert!(fake.tickets().len() > 50, "the mail became tickets");

    let mut scan = Scan::new(&secrets);
    for body in &inbound {
        scan.text("sqs inbound", body);
    }
    for body in &ops {
        scan.json(
            "sqs ticket-ops",
            &serde_json::from_str(body).expect("op json"),
        );
    }
    for url in [&stack.inbound_dlq_url, &stack.ticket_ops_dlq_url] {
        while let Some(event) = receive(&stack.sqs, url, 10).await {
            for body in bodies(&event) {
                scan.text("sqs dead letters", &body);
            }
        }
    }
    for table in [
        &stack.ledger_table,
        &stack.threads_table,
        &stack.accounts_table,
    ] {
        for item in dynamodb_items(&stack.dynamodb, table).await {
            scan.text("dynamodb items", &item);
        }
    }
    for line in captured_logs().lines() {
        scan.record("log lines", &line);
    }
    for line in ingest_metrics.lines().iter().chain(&writer_metrics.lines()) {
        scan.record("metrics", line);
    }
    for request in fake.requests() {
        scan.text("ticket API requests", &request.path);
        scan.text("ticket API requests", &request.query);
        match &request.json {
            Some(json) => scan.json("ticket API requests", json),
            None => scan.bytes("ticket API requests (uploads)", &request.body),
        }
    }
    for ticket in fake.tickets() {
        scan.text("tickets", &ticket.subject);
        scan.text("tickets", &ticket.description);
        for comment in &ticket.comments {
            scan.text("tickets", &comment.body);
            for attachment in &comment.attachments {
                scan.bytes("tickets (attachments)", &attachment.bytes);
            }
        }
    }
    eprintln!(
        "searched for {} secret values:\n{}",
        secrets.len(),
        scan.report()
    );
    scan.assert_clean(&[
        "sqs inbound",
        "sqs ticket-ops",
        "dynamodb items",
        "log lines",
        "metrics",
        "ticket API requests",
        "tickets",
    ]);

    // The positive control: the originals hold the secrets the scan looked for.
    assert_originals_hold(&secrets, originals.iter().map(Vec::as_slice), 60 + 10);
}

/// The stored originals, searched the same way, hold at least `at_least` of
/// the secrets: a matcher blind to them would make every clean scan worthless.
fn assert_originals_hold<'a>(
    secrets: &Secrets,
    originals: impl Iterator<Item = &'a [u8]>,
    at_least: usize,
) {
    let mut control = Scan::new(secrets);
    for raw in originals {
        control.bytes("originals", raw);
    }
    let found: std::collections::BTreeSet<_> =
        control.hits().iter().map(|h| h.origin.as_str()).collect();
    assert!(
        found.len() >= at_least,
        "the originals hold {} of the secrets searched for, not {at_least}",
        found.len()
    );
}

#[test]
fn no_output_or_state_file_of_the_cli_holds_a_secret() {
    let mut secrets = Secrets::corpus();
    let mailbox = tempfile::tempdir().expect("tempdir");
    for file in corpus() {
        let target = mailbox.path().join(relative(&file).replace('/', "-"));
        std::fs::copy(&file, target).expect("copy fixture");
    }
    for (name, raw, secret) in generated(30) {
        secrets.add(&name, &secret);
        std::fs::write(mailbox.path().join(format!("{name}.eml")), raw).expect("write mail");
    }
    let state = tempfile::tempdir().expect("tempdir");
    let state_arg = state.path().to_str().expect("utf-8 path");
    let mailbox_arg = mailbox.path().to_str().expect("utf-8 path");
    let accounts = rootmail_tests::corpus_accounts();
    let accounts_arg = accounts.to_str().expect("utf-8 path");
    let mut scan = Scan::new(&secrets);
    let mut run = |sink: &str, args: &[&str]| -> String {
        let output = Command::new(rootmail_bin())
            .args(args)
            .env_remove("ROOTMAIL_VAULT_KEY")
            .output()
            .expect("rootmail runs");
        assert!(output.status.success(), "{args:?}: {output:?}");
        scan.bytes(sink, &output.stdout);
        scan.bytes(sink, &output.stderr);
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    for format in ["json", "table"] {
        run(
            "rootmail triage",
            &[
                "triage",
                "--accounts",
                accounts_arg,
                "--format",
                format,
                mailbox_arg,
            ],
        );
    }
    run(
        "rootmail run",
        &[
            "run",
            "--state",
            state_arg,
            "--accounts",
            accounts_arg,
            mailbox_arg,
        ],
    );
    let list = run(
        "rootmail tickets",
        &["tickets", "--state", state_arg, "list"],
    );
    let ids: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.trim_start_matches('#').parse::<u64>().is_ok())
        .map(|w| w.trim_start_matches('#').to_string())
        .collect();
    assert!(ids.len() > 50, "tickets were listed: {list}");
    for id in &ids {
        run(
            "rootmail tickets",
            &["tickets", "--state", state_arg, "show", id],
        );
    }
    // Every file the local pipeline wrote, except the originals it archives.
    // Every record of its database, and every file but the originals.
    let store = rootmail_local::LocalStore::open(state.path()).expect("state");
    let records = store.every_text().expect("database texts");
    drop(store);
    assert!(records.len() > 100, "{} records", records.len());
    for text in &records {
        scan.text("state database", text);
    }
    for (name, bytes) in &files_under(state.path(), &["archive"]) {
        scan.bytes(
            &format!("state file {}", name.split('/').next().unwrap_or(name)),
            bytes,
        );
    }
    eprintln!(
        "searched for {} secret values:\n{}",
        secrets.len(),
        scan.report()
    );
    scan.assert_clean(&[
        "rootmail triage",
        "rootmail run",
        "rootmail tickets",
        "state database",
        "state file rootmail.sqlite3",
    ]);

    let archive = files_under(&state.path().join("archive"), &[]);
    assert_originals_hold(&secrets, archive.iter().map(|(_, b)| b.as_slice()), 30 + 10);
}

/// The matcher finds what it must: a planted secret in a state file is a hit.
#[test]
fn a_planted_secret_is_found() {
    let (name, _, secret) = generated(1).remove(0);
    let mut secrets = Secrets::default();
    secrets.add(&name, &secret);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ledger.json"),
        serde_json::json!({ "note": format!("oops {secret}") }).to_string(),
    )
    .expect("write");
    let mut scan = Scan::new(&secrets);
    for (file, bytes) in files_under(dir.path(), &[]) {
        scan.bytes(&file, &bytes);
    }
    assert_eq!(scan.hits().len(), 1, "{:?}", scan.hits());
    let value: Value = serde_json::json!({ "secret": secret });
    let mut scan = Scan::new(&secrets);
    scan.json("json", &value);
    assert_eq!(scan.hits().len(), 1);
}
