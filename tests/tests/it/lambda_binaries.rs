//! The functions' real binaries, run as Lambda runs them: under a stand-in
//! Runtime API, configured only through the environment, talking to moto. This
//! covers what the handler tests cannot: `main.rs`, the SDK set-up from
//! `AWS_ENDPOINT_URL`, the event and answer formats, and the log and metric lines
//! on stdout.

use rootmail_pipeline::LedgerStatus;
use rootmail_tests::aws::Stack;
use rootmail_tests::lambda::{receive, settle};
use rootmail_tests::runtime_api::{Answer, RuntimeApi};
use rootmail_tests::webhook_server::WebhookServer;
use rootmail_tests::{corpus_dir, workspace_bin};
use serde_json::{Value, json};
use std::process::Child;
use std::time::Duration;

fn start(function: &str, runtime: &RuntimeApi, env: &[(&'static str, String)]) -> Child {
    runtime.spawn(&workspace_bin(function), function, env)
}

/// Waits for one answer, then stops the function (it would wait for the next
/// event forever) and returns the answer and its stdout lines.
fn one_invocation(function: &str, runtime: &RuntimeApi, mut child: Child) -> (Answer, Vec<Value>) {
    let answers = runtime.answers(1, Duration::from_secs(60));
    let _ = child.kill();
    let output = child.wait_with_output().expect("function output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer = answers.first().cloned().unwrap_or_else(|| {
        panic!(
            "{function} answered nothing; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("stdout line is not JSON: {l}")))
        .collect();
    (answer, lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_function_binaries_serve_events_through_the_runtime_api() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    let mail = corpus_dir().join("support.case/01-case-created.eml");
    stack
        .put_mail("inbound/case", std::fs::read(mail).expect("fixture"))
        .await;

    // mail-ingest: the inbound batch (the mail and S3's test event).
    let batch = receive(&stack.sqs, &stack.inbound_url, 10)
        .await
        .expect("inbound events");
    let runtime = RuntimeApi::start(vec![serde_json::to_value(&batch).expect("event")]);
    let child = start("mail-ingest", &runtime, &stack.function_env());
    let (answer, stdout) = one_invocation("mail-ingest", &runtime, child);
    assert_eq!(answer.kind, "response", "{answer:?}");
    assert_eq!(answer.body, json!({"batchItemFailures": []}));
    settle(&stack.sqs, &stack.inbound_url, &batch, &Default::default()).await;
    assert!(
        stdout
            .iter()
            .any(|l| l["fields"]["message"] == "triaged" && l["span"]["kind"] == "support.case"),
        "a JSON log line per message: {stdout:#?}"
    );
    assert!(
        stdout
            .iter()
            .any(|l| l["Messages"] == 1.0 && l["Kind"] == "support.case"),
        "an EMF line per message: {stdout:#?}"
    );
    let rows = stack.ledger_rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, LedgerStatus::Queued);

    // ticket-writer: the operation mail-ingest queued.
    let ops = receive(&stack.sqs, &stack.ticket_ops_url, 10)
        .await
        .expect("ticket operation");
    let webhook = WebhookServer::start();
    let runtime = RuntimeApi::start(vec![serde_json::to_value(&ops).expect("event")]);
    let mut env = stack.function_env();
    env.push(("TICKET_API_URL", webhook.url.clone()));
    let child = start("ticket-writer", &runtime, &env);
    let (answer, stdout) = one_invocation("ticket-writer", &runtime, child);
    assert_eq!(answer.body, json!({"batchItemFailures": []}), "{answer:?}");
    settle(&stack.sqs, &stack.ticket_ops_url, &ops, &Default::default()).await;
    assert!(stdout.iter().any(|l| l["TicketsCreated"] == 1.0));
    let tickets = webhook.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].thread_key, "case:111122223333:177821827800850");
    let rows = stack.ledger_rows().await;
    assert_eq!(rows[0].status, LedgerStatus::Done);
    assert_eq!(rows[0].ticket_id.as_deref(), Some(tickets[0].id.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_missing_a_setting_stops_at_cold_start_and_names_it() {
    let stack = Stack::create().await;
    let runtime = RuntimeApi::start(Vec::new());
    let mut env = stack.function_env();
    env.retain(|(name, _)| *name != "LEDGER_TABLE");
    let mut child = start("mail-ingest", &runtime, &env);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "mail-ingest kept running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("environment variable LEDGER_TABLE is not set"),
        "a readable log line names it: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LEDGER_TABLE"), "{stderr}");
}
