//! The webhook backend's requests against a mock receiver: the documented JSON,
//! the idempotency keys, the bearer token and an HMAC signature checked here
//! independently of the client's code, and throttling, failures, slowness and a
//! refused credential.

use hmac::{Hmac, Mac};
use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_pipeline::{AttachmentContent, NewComment, NewTicket, TicketAttachment, TicketSink};
use rootmail_tickets::{HttpClient, RetryPolicy, Webhook, WebhookCredentials};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "webhook-bearer-token";
const KEY: &str = "webhook-hmac-key";

fn webhook(server: &MockServer, timeout: Duration, attempts: u32) -> Webhook {
    let http = HttpClient::new(
        "webhook",
        timeout,
        RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        },
    )
    .expect("client");
    let credentials: WebhookCredentials =
        serde_json::from_value(json!({"token": TOKEN, "hmac_key": KEY})).expect("credentials");
    Webhook::new(http, &format!("{}/hook", server.uri()), credentials)
}

fn new_ticket() -> NewTicket {
    let key = ThreadKey::message("alarm-1@aws.example");
    NewTicket {
        idempotency_key: rootmail_pipeline::idempotency_key(&key),
        thread_key: key,
        subject: "ALARM: CPU".into(),
        body: "The alarm fired".into(),
        priority: Priority::High,
        kind: Kind::CloudwatchAlarm,
        account_id: Some("111122223333".into()),
        customer: Some("Acme".into()),
        message: ContentHash::of(b"first"),
        internal_note: "Authentication: spf=pass".into(),
        attachments: vec![TicketAttachment {
            name: "graph.png".into(),
            content_type: "image/png".into(),
            size: 3,
            content: AttachmentContent::Upload(vec![1, 2, 3]),
        }],
        found_absent: false,
    }
}

/// Recomputes `X-Rootmail-Signature` over what was received.
fn signature_valid(request: &Request) -> bool {
    let Some(header) = request.headers.get("X-Rootmail-Signature") else {
        return false;
    };
    let header = header.to_str().unwrap_or_default();
    let Some((t, v1)) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let signed: Vec<u8> = if request.method.as_str() == "GET" {
        match request.url.query() {
            Some(q) => format!("{}?{q}", request.url.path()).into_bytes(),
            None => request.url.path().as_bytes().to_vec(),
        }
    } else {
        request.body.clone()
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&signed);
    hex::encode(mac.finalize().into_bytes()) == v1
}

#[tokio::test]
async fn create_posts_the_documented_json_signed_and_keyed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook/tickets"))
        .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 41})))
        .expect(1)
        .mount(&server)
        .await;
    let ticket = new_ticket();
    let id = webhook(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("created");
    assert_eq!(id, "41", "numeric ids are read as text");
    let requests = server.received_requests().await.unwrap();
    let request = &requests[0];
    assert!(signature_valid(request), "the HMAC signature verifies");
    assert_eq!(
        request.headers.get("Idempotency-Key").unwrap(),
        ticket.idempotency_key.as_str()
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["thread_key"], "msg:alarm-1@aws.example");
    assert_eq!(body["internal_note"], "Authentication: spf=pass");
    assert_eq!(body["priority"], "high");
    assert_eq!(body["attachments"][0]["content"]["upload"], "AQID");
}

#[tokio::test]
async fn find_and_comment_are_signed_too() {
    let server = MockServer::start().await;
    let key = ThreadKey::message("alarm-1@aws.example");
    let first = ContentHash::of(b"first");
    Mock::given(method("GET"))
        .and(path("/hook/tickets"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"tickets": [{"id": "T-1", "created_from": first}]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook/tickets/T-1/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "C-9"})))
        .mount(&server)
        .await;
    let sink = webhook(&server, Duration::from_secs(5), 3);
    let found = sink.find(&key).await.unwrap().expect("found");
    assert_eq!((found.id.as_str(), &found.created_from), ("T-1", &first));
    let comment = NewComment {
        message: ContentHash::of(b"second"),
        body: "again".into(),
        priority: Priority::Normal,
        kind: Kind::CloudwatchAlarm,
        internal_note: String::new(),
        attachments: Vec::new(),
    };
    let posted = sink.comment("T-1", &comment).await.unwrap();
    assert_eq!(
        (posted.ticket_id.as_str(), posted.comment_id.as_str()),
        ("T-1", "C-9")
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(signature_valid));
    assert_eq!(
        requests[0].url.query(),
        Some("thread_key=msg%3Aalarm-1%40aws.example")
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_with_the_same_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "7"})))
        .mount(&server)
        .await;
    let id = webhook(&server, Duration::from_secs(5), 3)
        .create(&new_ticket())
        .await
        .expect("third attempt");
    assert_eq!(id, "7");
    let keys: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["Idempotency-Key"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "the receiver can deduplicate"
    );
}

#[tokio::test]
async fn a_slow_receiver_is_a_transient_failure() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let error = webhook(&server, Duration::from_millis(200), 2)
        .create(&new_ticket())
        .await
        .expect_err("times out");
    assert!(error.is_transient(), "{error}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_refused_credential_is_one_request_and_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let error = webhook(&server, Duration::from_secs(5), 4)
        .create(&new_ticket())
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(!error.is_transient(), "{text}");
    assert!(
        text.contains("webhook rejected rootmail's credentials (HTTP 401"),
        "{text}"
    );
    assert!(!text.contains(TOKEN) && !text.contains(KEY));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
