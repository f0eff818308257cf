//! The operator commands (`accounts import`, `replay`, `status`) against moto,
//! run as the real binary with the standard AWS settings in its environment.

use rootmail_aws::DynamoAccounts;
use rootmail_pipeline::{AccountLookup, LedgerStatus};
use rootmail_tests::aws::{Stack, process_env};
use rootmail_tests::lambda::{drain, queue_depth};
use rootmail_tests::webhook_server::WebhookServer;
use rootmail_tests::{corpus_accounts, corpus_dir, rootmail_bin};
use std::process::Output;

/// Runs `rootmail` with AWS settings pointing at moto.
fn rootmail_aws(stack: &Stack, args: &[&str]) -> Output {
    std::process::Command::new(rootmail_bin())
        .args(args)
        .envs(process_env())
        .envs(stack.function_env())
        .output()
        .expect("rootmail runs")
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "rootmail failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn importing_accounts_from_csv_is_idempotent_and_counts_changes() {
    let stack = Stack::create().await;
    let csv = corpus_accounts();
    let csv = csv.to_str().expect("path");
    let first = stdout_of(&rootmail_aws(&stack, &["accounts", "import", csv]));
    assert!(first.contains("8 added, 0 updated, 0 unchanged"), "{first}");
    let again = stdout_of(&rootmail_aws(&stack, &["accounts", "import", csv]));
    assert!(again.contains("0 added, 0 updated, 8 unchanged"), "{again}");

    let dir = tempfile::tempdir().expect("tempdir");
    let changed = dir.path().join("accounts.csv");
    let text = std::fs::read_to_string(corpus_accounts()).expect("csv");
    std::fs::write(&changed, text.replace("Acme Corp", "Acme Corporation")).expect("write");
    let changed = changed.to_str().expect("path");
    let updated = stdout_of(&rootmail_aws(&stack, &["accounts", "import", changed]));
    assert!(
        updated.contains("0 added, 1 updated, 7 unchanged"),
        "{updated}"
    );

    let table = DynamoAccounts::new(stack.dynamodb.clone(), &stack.accounts_table);
    let id = rootmail_domain::AccountId::parse("111122223333").expect("id");
    let acme = table.by_id(&id).await.expect("lookup").expect("found");
    assert_eq!(acme.customer, "Acme Corporation");

    std::fs::write(
        dir.path().join("bad.csv"),
        "root_email,account_id,customer,status\nnot-an-address,1,x,active\n",
    )
    .expect("write");
    let bad = rootmail_aws(
        &stack,
        &[
            "accounts",
            "import",
            dir.path().join("bad.csv").to_str().expect("path"),
        ],
    );
    assert!(!bad.status.success());
    let error = String::from_utf8_lossy(&bad.stderr);
    assert!(error.contains("line 2"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn importing_from_organizations_filters_by_email_and_tag() {
    let stack = Stack::create().await;
    let org = aws_sdk_organizations::Client::new(&stack.aws);
    let suffix = rootmail_tests::aws::unique("org");
    let mut ids = Vec::new();
    for (name, email) in [
        ("prod", format!("root+{suffix}-prod@root.example-msp.com")),
        ("dev", format!("root+{suffix}-dev@root.example-msp.com")),
        ("other", format!("{suffix}@elsewhere.example.com")),
    ] {
        ids.push(rootmail_tests::lifecycle::create_member_account(&org, name, &email).await);
    }
    org.tag_resource()
        .resource_id(&ids[0])
        .tags(
            aws_sdk_organizations::types::Tag::builder()
                .key("customer")
                .value("Umbrella Plc")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("tag account");

    let pattern = format!("^root\\+{suffix}-.*@root\\.example-msp\\.com$");
    let by_email = stdout_of(&rootmail_aws(
        &stack,
        &[
            "accounts",
            "import",
            "--organization",
            "--email-pattern",
            &pattern,
        ],
    ));
    assert!(
        by_email.contains("2 accounts") && by_email.contains("2 added"),
        "{by_email}"
    );

    let by_tag = stdout_of(&rootmail_aws(
        &stack,
        &[
            "accounts",
            "import",
            "--organization",
            "--email-pattern",
            &pattern,
            "--tag",
            "customer=Umbrella Plc",
            "--customer-tag",
            "customer",
        ],
    ));
    assert!(
        by_tag.contains("1 accounts") && by_tag.contains("1 updated"),
        "{by_tag}"
    );
    let table = DynamoAccounts::new(stack.dynamodb.clone(), &stack.accounts_table);
    let prod = table
        .by_id(&rootmail_domain::AccountId::parse(&ids[0]).expect("id"))
        .await
        .expect("lookup")
        .expect("imported");
    assert_eq!(prod.customer, "Umbrella Plc");
    let other = rootmail_domain::AccountId::parse(&ids[2]).expect("id");
    assert!(
        table.by_id(&other).await.expect("lookup").is_none(),
        "filtered out"
    );
}

/// Replaying the bucket re-drives mail the pipeline never saw and is a no-op for
/// mail it finished; replaying a DLQ puts each dead letter back where it belongs;
/// status counts what the ledger holds.
#[tokio::test(flavor = "multi_thread")]
async fn replay_and_status() {
    let stack = Stack::create().await;
    stack.load_corpus_accounts().await;
    // An alert and its repeat: one thread.
    let dir = corpus_dir().join("billing.budget_alert");
    let files = [
        dir.join("01-monthly-prod.eml"),
        dir.join("02-monthly-prod-repeat.eml"),
    ];
    // One mail arrives normally; one sits under a prefix without notifications.
    stack
        .put_mail("inbound/first", std::fs::read(&files[0]).expect("fixture"))
        .await;
    stack
        .put_mail(
            "restored/second",
            std::fs::read(&files[1]).expect("fixture"),
        )
        .await;
    let webhook = WebhookServer::start();
    let (ingest, _) = stack.ingest_handler(&[]);
    let (writer, _) = stack.writer_handler(&webhook.url, &[]).await;
    let run_pipeline = || async {
        drain(&stack.sqs, &stack.inbound_url, |e| ingest.handle_sqs(e)).await;
        drain(&stack.sqs, &stack.ticket_ops_url, |e| writer.handle_sqs(e)).await;
    };
    run_pipeline().await;
    assert_eq!(stack.ledger_rows().await.len(), 1);

    let restored = stdout_of(&rootmail_aws(
        &stack,
        &["replay", "--bucket", &stack.bucket, "--prefix", "restored/"],
    ));
    assert!(restored.contains("replayed 1 objects"), "{restored}");
    let everything = stdout_of(&rootmail_aws(
        &stack,
        &["replay", "--bucket", &stack.bucket, "--prefix", ""],
    ));
    assert!(everything.contains("replayed 2 objects"), "{everything}");
    run_pipeline().await;
    let rows = stack.ledger_rows().await;
    assert_eq!(
        rows.len(),
        2,
        "the restored mail was ingested once: {rows:#?}"
    );
    assert!(rows.iter().all(|r| r.status == LedgerStatus::Done));
    let tickets = webhook.tickets();
    assert_eq!(tickets.len(), 1, "the repeat budget alert is a comment");
    assert_eq!(
        tickets[0].comments.len(),
        1,
        "replaying twice added nothing"
    );

    // Dead letters of both kinds, and one that is neither.
    let op = serde_json::json!({
        "message": "ab".repeat(32), "thread_key": "msg:<replayed@example.com>",
        "kind": "unknown", "priority": "normal", "account_id": null, "customer": null,
        "subject": "A replayed operation", "body": "body", "quarantined": false,
    });
    let s3_event = rootmail_aws::mail::created_event(
        &rootmail_aws::MailLocation {
            bucket: stack.bucket.clone(),
            key: "inbound/first".into(),
        },
        1,
        "2026-11-28T10:00:00Z",
    );
    for (queue, body) in [
        (&stack.ticket_ops_dlq_url, op.to_string()),
        (&stack.inbound_dlq_url, s3_event.to_string()),
        (&stack.inbound_dlq_url, "neither".to_string()),
    ] {
        let mut send = stack.sqs.send_message().queue_url(queue).message_body(body);
        if queue.ends_with(".fifo") {
            send = send.message_group_id("g").message_deduplication_id("d");
        }
        send.send().await.expect("dead letter");
    }
    let ops_out = stdout_of(&rootmail_aws(
        &stack,
        &["replay", "--dlq", &stack.ticket_ops_dlq_url],
    ));
    assert!(
        ops_out.contains("replayed 1 ticket operations and 0 mail events"),
        "{ops_out}"
    );
    let inbound_out = stdout_of(&rootmail_aws(
        &stack,
        &["replay", "--dlq", &stack.inbound_dlq_url],
    ));
    assert!(
        inbound_out.contains("0 ticket operations and 1 mail events"),
        "{inbound_out}"
    );
    assert!(
        inbound_out.contains("1 not recognized, left in the DLQ"),
        "{inbound_out}"
    );
    assert_eq!(queue_depth(&stack.sqs, &stack.inbound_dlq_url).await, 1);
    run_pipeline().await;
    let tickets = webhook.tickets();
    assert_eq!(tickets.len(), 2, "the replayed operation made its ticket");
    assert!(tickets.iter().any(|t| t.subject == "A replayed operation"));

    let status = stdout_of(&rootmail_aws(
        &stack,
        &["status", "--since", "1h", "--format", "json"],
    ));
    let report: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(report["messages"], 2);
    assert_eq!(report["by_status"]["done"], 2);
    assert_eq!(report["by_kind"]["billing.budget_alert"], 2);
    assert_eq!(report["by_disposition"]["ticket"], 2);
    let human = stdout_of(&rootmail_aws(&stack, &["status"]));
    assert!(human.starts_with("2 messages since"), "{human}");
    assert!(human.contains("billing.budget_alert"), "{human}");
}

/// Issue 15, point 4: a provider's payer accounts are many organizations.
/// `accounts import --organization --role-arn` assumes a role in each payer
/// account (one per line of `--role-arns FILE`, or repeated) and tags every
/// imported account with its payer; a bad ARN is refused before any call.
#[tokio::test(flavor = "multi_thread")]
async fn importing_many_organizations_tags_each_account_with_its_payer() {
    let stack = Stack::create().await;
    let org = aws_sdk_organizations::Client::new(&stack.aws);
    let suffix = rootmail_tests::aws::unique("payer");
    let email = format!("root+{suffix}@root.example-msp.com");
    let id = rootmail_tests::lifecycle::create_member_account(&org, "payer-member", &email).await;
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("payer-roles.txt");
    std::fs::write(
        &roles,
        "# one role per payer account\narn:aws:iam::123456789012:role/rootmail-import\n",
    )
    .unwrap();
    let pattern = format!("^root\\+{suffix}@");
    let imported = stdout_of(&rootmail_aws(
        &stack,
        &[
            "accounts",
            "import",
            "--organization",
            "--email-pattern",
            &pattern,
            "--role-arns",
            roles.to_str().unwrap(),
        ],
    ));
    assert!(
        imported.contains("payer 123456789012: 1 accounts") && imported.contains("1 added"),
        "{imported}"
    );
    let table = DynamoAccounts::new(stack.dynamodb.clone(), &stack.accounts_table);
    let row = table
        .by_id(&rootmail_domain::AccountId::parse(&id).unwrap())
        .await
        .expect("lookup")
        .expect("imported");
    assert_eq!(
        row.payer.map(|p| p.to_string()).as_deref(),
        Some("123456789012")
    );

    let bad = rootmail_aws(
        &stack,
        &[
            "accounts",
            "import",
            "--organization",
            "--role-arn",
            "arn:aws:iam::123456789012:user/bob",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is not an IAM role ARN"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// An operation buried, replayed, and buried again within five minutes is
/// in the DLQ twice as buried, not dropped: SQS drops a FIFO message whose
/// deduplication id it saw in the last five minutes (while reporting
/// success), even one since deleted, and the id was the body's hash.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_operation_buried_twice_within_five_minutes_is_kept() {
    use rootmail_pipeline::DeadLetters;
    let stack = Stack::create().await;
    let dlq = rootmail_aws::queue::SqsDeadLetters::new(
        stack.sqs.clone(),
        stack.ticket_ops_dlq_url.clone(),
    );
    dlq.bury("the same operation", "refused").await.unwrap();
    dlq.bury("the same operation", "refused again")
        .await
        .unwrap();
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let received = stack
            .sqs
            .receive_message()
            .queue_url(&stack.ticket_ops_dlq_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        bodies.extend(
            received
                .messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_string)),
        );
        if bodies.len() >= 2 {
            break;
        }
    }
    assert_eq!(bodies, ["the same operation", "the same operation"]);
}

/// Dead letters of the FIFO queue each in a group of their own: `replay
/// --dlq` keeps an unrecognised one in flight, and SQS holds a group's later
/// messages while one is. With one group for all, the operations buried
/// after it were left in the DLQ and replay said it was done.
#[tokio::test(flavor = "multi_thread")]
async fn replay_takes_every_dead_letter_behind_an_unrecognised_one() {
    use rootmail_pipeline::DeadLetters;
    let stack = Stack::create().await;
    let dlq = rootmail_aws::queue::SqsDeadLetters::new(
        stack.sqs.clone(),
        stack.ticket_ops_dlq_url.clone(),
    );
    dlq.bury("neither", "not a ticket operation").await.unwrap();
    for n in 0..10 {
        let op = serde_json::json!({
            "message": format!("{n:02}").repeat(32), "thread_key": format!("msg:<dead-{n}@example.com>"),
            "kind": "unknown", "priority": "normal", "account_id": null, "customer": null,
            "subject": "A buried operation", "body": "body", "quarantined": false,
        });
        dlq.bury(&op.to_string(), "refused by the ticket API")
            .await
            .unwrap();
    }
    let out = stdout_of(&rootmail_aws(
        &stack,
        &["replay", "--dlq", &stack.ticket_ops_dlq_url],
    ));
    assert!(
        out.contains("replayed 10 ticket operations and 0 mail events"),
        "{out}"
    );
    assert!(out.contains("1 not recognized, left in the DLQ"), "{out}");
}
