//! The DynamoDB adapters' own promises, against moto: the ledger's conditional
//! claim (fresh claims block, stale ones are taken over, finished rows are seen),
//! the thread map's first-wins message index, and account lookups.

use rootmail_aws::queue::SqsRedelivery;
use rootmail_aws::{DynamoAccounts, DynamoLedger, DynamoThreadMap};
use rootmail_domain::{Account, AccountId, AccountStatus, ContentHash, EmailAddress, ThreadKey};
use rootmail_pipeline::{AccountLookup, Claim, Ledger, LedgerStatus, ThreadMap, ThreadRecord};
use rootmail_tests::aws::Stack;
use rootmail_tests::flaky::{FailsOnce, ThreadCall};

#[tokio::test(flavor = "multi_thread")]
async fn ledger_claims_are_exclusive_until_stale() {
    let stack = Stack::create().await;
    let ledger = DynamoLedger::new(stack.dynamodb.clone(), &stack.ledger_table);
    let hash = ContentHash::of(b"a message");
    let stale = 900;

    let Claim::Owned(mut row) = ledger.claim(&hash, "s3://b/k", 1_000, stale).await.unwrap() else {
        panic!("a new message is owned by its first claimant");
    };
    assert_eq!(
        ledger.claim(&hash, "s3://b/k", 1_500, stale).await.unwrap(),
        Claim::Busy,
        "a fresh claim blocks a second run"
    );
    assert!(
        matches!(ledger.claim(&hash, "s3://b/k", 1_901, stale).await.unwrap(), Claim::Owned(r) if r.claimed_at == 1_901),
        "a claim older than the timeout is taken over (its run crashed)"
    );
    row.status = LedgerStatus::Done;
    row.ticket_id = Some("42".into());
    ledger.record(&row).await.unwrap();
    match ledger.claim(&hash, "s3://b/k", 9_999, stale).await.unwrap() {
        Claim::Seen(seen) => assert_eq!(seen.ticket_id.as_deref(), Some("42")),
        other => panic!("a finished message is seen, not claimed: {other:?}"),
    }
    assert_eq!(ledger.get(&hash).await.unwrap(), Some(row.clone()));
    // A copy triaged again meanwhile writes `queued`: the finished row stays
    // as it was (found by the soak: the row stayed `queued` for ever).
    let mut late = row.clone();
    late.status = LedgerStatus::Queued;
    late.ticket_id = None;
    ledger.record(&late).await.unwrap();
    assert_eq!(ledger.get(&hash).await.unwrap(), Some(row));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_racing_for_one_message_get_one_owner() {
    let stack = Stack::create().await;
    let ledger = DynamoLedger::new(stack.dynamodb.clone(), &stack.ledger_table);
    let hash = ContentHash::of(b"raced");
    let claims = racing_claims(&ledger, &hash).await;
    let owners = claims
        .iter()
        .filter(|c| matches!(c, Claim::Owned(_)))
        .count();
    assert_eq!(owners, 1, "{claims:?}");
}

async fn racing_claims(ledger: &DynamoLedger, hash: &ContentHash) -> Vec<Claim> {
    let (a, b, c, d) = tokio::join!(
        ledger.claim(hash, "x", 10, 900),
        ledger.claim(hash, "x", 10, 900),
        ledger.claim(hash, "x", 10, 900),
        ledger.claim(hash, "x", 10, 900),
    );
    vec![a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()]
}

#[tokio::test(flavor = "multi_thread")]
async fn thread_map_keeps_the_first_thread_of_a_message_id() {
    let stack = Stack::create().await;
    let threads = DynamoThreadMap::new(stack.dynamodb.clone(), &stack.threads_table);
    let first = ThreadKey::message("original@x");
    let later = ThreadKey::message("other@x");
    threads.remember_message("m1@x", &first).await.unwrap();
    threads.remember_message("m1@x", &later).await.unwrap();
    assert_eq!(
        threads.thread_of_message("m1@x").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(threads.thread_of_message("unknown@x").await.unwrap(), None);

    let long_id = "é".repeat(900);
    threads.remember_message(&long_id, &first).await.unwrap();
    assert_eq!(
        threads.thread_of_message(&long_id).await.unwrap(),
        Some(first.clone())
    );

    let record = ThreadRecord {
        thread_key: first.clone(),
        ticket_id: "7".into(),
        backend: "webhook".into(),
        created_from: ContentHash::of(b"original"),
        messages: 3,
        last_activity: 1_000,
    };
    threads.save(&record).await.unwrap();
    assert_eq!(threads.ticket_of(&first).await.unwrap(), Some(record));
    assert_eq!(threads.ticket_of(&later).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_are_found_by_address_and_by_current_id() {
    let stack = Stack::create().await;
    let accounts = DynamoAccounts::new(stack.dynamodb.clone(), &stack.accounts_table);
    let account = |email: &str, status| Account {
        root_email: EmailAddress::parse(email).unwrap(),
        account_id: AccountId::parse("123456789012").unwrap(),
        customer: "Acme".into(),
        status,
        payer: None,
    };
    // The account's address was changed: the old one is released.
    accounts
        .upsert(&account("old@root.example.com", AccountStatus::Released))
        .await
        .unwrap();
    accounts
        .upsert(&account("new@root.example.com", AccountStatus::Active))
        .await
        .unwrap();

    let id = AccountId::parse("123456789012").unwrap();
    let current = accounts.by_id(&id).await.unwrap().expect("found by id");
    assert_eq!(current.root_email.as_str(), "new@root.example.com");
    let old = EmailAddress::parse("OLD@root.example.com").unwrap();
    assert_eq!(
        accounts.by_email(&old).await.unwrap().map(|a| a.status),
        Some(AccountStatus::Released)
    );
    let many: Vec<EmailAddress> = (0..250)
        .map(|i| EmailAddress::parse(&format!("nobody{i}@example.org")).unwrap())
        .chain([old.clone()])
        .collect();
    let found = accounts.by_emails(&many).await.unwrap();
    assert_eq!(found.len(), 1, "one of 251 addresses is ours");
}

struct NoArchive;
impl rootmail_pipeline::MailArchive for NoArchive {
    async fn put(&self, _: &ContentHash, _: &[u8]) -> rootmail_pipeline::PortResult<String> {
        Ok("s3://bucket/inbound/x".into())
    }
}

/// A run that fails after claiming releases its claim, so the retry proceeds at
/// once instead of waiting 15 minutes for the claim to go stale.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_releases_its_claim_for_the_retry() {
    use rootmail_pipeline::{IngestPorts, Ingested, Knowledge, ingest};
    let stack = Stack::create().await;
    let ledger = DynamoLedger::new(stack.dynamodb.clone(), &stack.ledger_table);
    // Its first lookup fails, as DynamoDB does when throttled.
    let threads = FailsOnce::new(
        DynamoThreadMap::new(stack.dynamodb.clone(), &stack.threads_table),
        ThreadCall::ThreadOfMessage,
    );
    let directory = rootmail_tests::directory();
    let rules = rootmail_domain::Rules::built_in();
    let knowledge = Knowledge::new(&rules, &rootmail_pipeline::NoHandoffs);
    let raw = b"From: a@b.example\r\nIn-Reply-To: <earlier@b.example>\r\nSubject: hi\r\n\r\nbody";
    let ports = IngestPorts {
        archive: &NoArchive,
        ledger: &ledger,
        threads: &threads,
        accounts: &directory,
    };
    let first = ingest(ports, &knowledge, raw, "s3://bucket/inbound/x", 1_000).await;
    assert!(first.unwrap_err().is_transient());
    let retry = ingest(ports, &knowledge, raw, "s3://bucket/inbound/x", 1_001).await;
    assert!(matches!(retry, Ok(Ingested::Triaged { .. })), "{retry:?}");
}

/// DynamoDB reads are eventually consistent unless asked (the Developer
/// Guide's "Read consistency"); moto's always are. The account a take-over
/// has just registered decides whether AWS's code mail is handed over, so
/// the lookups of mail-ingest ask for strongly consistent reads: what is
/// sent, seen by a DynamoDB that records it.
#[tokio::test]
async fn account_lookups_ask_for_strongly_consistent_reads() {
    use axum::routing::post;
    let dynamodb = rootmail_fake_http::FakeHttp::recording(axum::Router::new().route(
        "/",
        post(|headers: axum::http::HeaderMap| async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = match target.as_str() {
                "DynamoDB_20120810.BatchGetItem" => r#"{"Responses":{"accounts":[]}}"#,
                _ => "{}",
            };
            (
                [("content-type", "application/x-amz-json-1.0")],
                body.to_string(),
            )
        }),
    ));
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(dynamodb.url())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"),
            ),
        )
        .http_client(rootmail_aws::https_client())
        .build();
    let accounts = DynamoAccounts::new(aws_sdk_dynamodb::Client::new(&config), "accounts");
    let email = EmailAddress::parse("root+new@msp.example").unwrap();
    assert_eq!(accounts.by_email(&email).await.unwrap(), None);
    assert!(accounts.by_emails(&[email]).await.unwrap().is_empty());
    let bodies: Vec<serde_json::Value> = dynamodb
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["ConsistentRead"], true, "GetItem: {}", bodies[0]);
    assert_eq!(
        bodies[1]["RequestItems"]["accounts"]["ConsistentRead"], true,
        "BatchGetItem: {}",
        bodies[1]
    );
}

/// A failed operation told when to try again (a `Retry-After`) is delivered
/// again then, not after the queue's visibility timeout: SQS's own answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delivery_comes_back_when_the_failure_said() {
    let stack = Stack::create().await;
    stack
        .sqs
        .send_message()
        .queue_url(&stack.ticket_ops_url)
        .message_body("{}")
        .message_group_id("thread")
        .message_deduplication_id("op-1")
        .send()
        .await
        .expect("send");
    let receive = |visibility: i32| {
        stack
            .sqs
            .receive_message()
            .queue_url(&stack.ticket_ops_url)
            .visibility_timeout(visibility)
            .send()
    };
    let first = receive(900)
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    let handle = first[0].receipt_handle.clone().expect("receipt handle");
    SqsRedelivery::new(stack.sqs.clone(), &stack.ticket_ops_url)
        .redeliver_after(&[(handle, std::time::Duration::from_secs(2))])
        .await
        .expect("visibility changed");
    let early = receive(900)
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert!(early.is_empty(), "not before the time said: {early:?}");
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let again = receive(900)
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(again.len(), 1, "delivered again after 2 s, not 900");
}
