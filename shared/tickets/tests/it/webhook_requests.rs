//! The webhook backend's requests against a fake receiver: the documented JSON,
//! the idempotency keys, the bearer token and an HMAC signature checked here
//! independently of the client's code, and throttling, failures, slowness and a
//! refused credential.

use crate::fixtures::{self, upload};
use axum::Router;
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_fake_http::{FakeHttp, Received, Reply, in_turn};
use rootmail_pipeline::{NewTicket, TicketSink};
use rootmail_tickets::{Webhook, WebhookCredentials};
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "webhook-bearer-token";
const KEY: &str = "webhook-hmac-key-of-thirty-two-bytes";

fn webhook(server: &FakeHttp, timeout: Duration, attempts: u32) -> Webhook {
    let credentials: WebhookCredentials =
        serde_json::from_value(json!({"token": TOKEN, "hmac_key": KEY})).expect("credentials");
    Webhook::new(
        fixtures::http("webhook", timeout, attempts),
        &format!("{}/hook", server.url()),
        credentials,
    )
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
        attachments: vec![upload("graph.png", "image/png", &[1, 2, 3])],
        found_absent: false,
    }
}

/// Recomputes `X-Rootmail-Signature` over what was received.
fn signature_valid(request: &Received) -> bool {
    let Some(header) = request.header("X-Rootmail-Signature") else {
        return false;
    };
    let Some((t, v2)) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v2=")?)))
    else {
        return false;
    };
    let Ok(claimed) = hex::decode(v2) else {
        return false;
    };
    // The method, the path and query, the idempotency key and the body.
    let key = request.header("Idempotency-Key").unwrap_or_default();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{t}\n{}\n{}\n{key}\n", request.method, request.target()).as_bytes());
    mac.update(&request.body);
    mac.verify_slice(&claimed).is_ok()
}

#[tokio::test]
async fn create_posts_the_documented_json_signed_and_keyed() {
    let server = FakeHttp::recording(
        Router::new().route("/hook/tickets", post(Reply::json(201, json!({"id": 41})))),
    );
    let ticket = new_ticket();
    let id = webhook(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("created");
    assert_eq!(id, "41", "numeric ids are read as text");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.route(), "POST /hook/tickets");
    assert_eq!(
        request.header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(signature_valid(request), "the HMAC signature verifies");
    assert_eq!(
        request.headers.get("Idempotency-Key").unwrap(),
        ticket.idempotency_key.as_str()
    );
    let body = request.json();
    assert_eq!(body["thread_key"], "msg:alarm-1@aws.example");
    assert_eq!(body["internal_note"], "Authentication: spf=pass");
    assert_eq!(body["priority"], "high");
    assert_eq!(body["attachments"][0]["content"]["upload"], "AQID");
}

#[tokio::test]
async fn find_and_comment_are_signed_too() {
    let key = ThreadKey::message("alarm-1@aws.example");
    let first = ContentHash::of(b"first");
    let server = FakeHttp::recording(
        Router::new()
            .route(
                "/hook/tickets",
                get(Reply::json(
                    200,
                    json!({"tickets": [{"id": "T-1", "created_from": first}]}),
                )),
            )
            .route(
                "/hook/tickets/T-1/comments",
                post(Reply::json(201, json!({"id": "C-9"}))),
            ),
    );
    let sink = webhook(&server, Duration::from_secs(5), 3);
    let found = sink.find(&key).await.unwrap().expect("found");
    assert_eq!((found.id.as_str(), &found.created_from), ("T-1", &first));
    let comment = fixtures::follow_up(b"second");
    let posted = sink.comment("T-1", &comment).await.unwrap();
    assert_eq!(
        (posted.ticket_id.as_str(), posted.comment_id.as_str()),
        ("T-1", "C-9")
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(signature_valid));
    assert_eq!(
        requests[0].query.as_deref(),
        Some("thread_key=msg%3Aalarm-1%40aws.example")
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_with_the_same_key() {
    let server = FakeHttp::recording(Router::new().route(
        "/hook/tickets",
        post(in_turn([
            Reply::status(429).header("Retry-After", "0"),
            Reply::status(502),
            Reply::json(201, json!({"id": "7"})),
        ])),
    ));
    let id = webhook(&server, Duration::from_secs(5), 3)
        .create(&new_ticket())
        .await
        .expect("third attempt");
    assert_eq!(id, "7");
    let keys: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.header("Idempotency-Key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "the receiver can deduplicate"
    );
}

#[tokio::test]
async fn a_slow_receiver_is_a_transient_failure() {
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        Reply::status(201)
    };
    let server = FakeHttp::recording(Router::new().route("/hook/tickets", post(slow)));
    let error = webhook(&server, Duration::from_millis(200), 2)
        .create(&new_ticket())
        .await
        .expect_err("times out");
    assert!(error.is_transient(), "{error}");
    assert_eq!(server.requests().len(), 2);
}

/// A 409 to a keyed POST means the first request with that key is still
/// being processed (the IETF Idempotency-Key draft; the contract asks
/// receivers for it): transient, left to the queue, which looks first. It
/// was permanent, and the operation was dead-lettered while the first try
/// went on to make the ticket. Another refusal (422) stays permanent.
#[tokio::test]
async fn a_key_still_in_progress_is_transient_and_a_refusal_is_not() {
    let busy = Reply::json(
        409,
        json!({"error": "a request with this key is in progress"}),
    );
    let server = FakeHttp::recording(Router::new().route("/hook/tickets", post(busy)));
    let error = webhook(&server, Duration::from_secs(5), 4)
        .create(&new_ticket())
        .await
        .expect_err("409");
    assert!(error.is_transient(), "{error}");
    assert_eq!(
        server.requests().len(),
        1,
        "left to the queue, not hammered"
    );

    let refused = Reply::json(422, json!({"error": "no such queue"}));
    let server = FakeHttp::recording(Router::new().route("/hook/tickets", post(refused)));
    let error = webhook(&server, Duration::from_secs(5), 4)
        .create(&new_ticket())
        .await
        .expect_err("422");
    assert!(!error.is_transient(), "{error}");
}

#[tokio::test]
async fn a_refused_credential_is_one_request_and_a_clear_error() {
    let server =
        FakeHttp::recording(Router::new().route("/hook/tickets", post(Reply::status(401))));
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
    assert_eq!(server.requests().len(), 1);
}

/// A receiver (or whatever answers in its place) that redirects elsewhere
/// does not get the body sent on: a 307 would carry the mail text and note
/// to another host. A redirect within the receiver's own origin is followed.
#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let elsewhere = FakeHttp::recording(
        Router::new().route("/collect", post(Reply::json(201, json!({"id": 1})))),
    );
    let server = FakeHttp::recording(
        Router::new()
            .route(
                "/hook/tickets",
                post(
                    Reply::status(307).header("location", &format!("{}/collect", elsewhere.url())),
                ),
            )
            .route(
                "/moved/tickets",
                post(Reply::status(308).header("location", "/hook2/tickets")),
            )
            .route("/hook2/tickets", post(Reply::json(201, json!({"id": 7})))),
    );
    let refused = webhook(&server, Duration::from_secs(5), 1)
        .create(&new_ticket())
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(elsewhere.requests().is_empty(), "the body went elsewhere");

    let credentials: WebhookCredentials =
        serde_json::from_value(json!({"token": TOKEN, "hmac_key": KEY})).expect("credentials");
    let moved = Webhook::new(
        fixtures::http("webhook", Duration::from_secs(5), 1),
        &format!("{}/moved", server.url()),
        credentials,
    );
    assert_eq!(moved.create(&new_ticket()).await.expect("followed"), "7");
}

/// The ticket id is the receiver's word (any string): it is one path
/// segment, percent-encoded, so an id with `/`, `?` or `#` comments on that
/// ticket and on no other path of the receiver.
#[tokio::test]
async fn a_ticket_id_is_one_path_segment_whatever_it_holds() {
    let server = FakeHttp::recording(Router::new().route(
        "/hook/tickets/{id}/comments",
        post(Reply::json(201, json!({"id": "C-1"}))),
    ));
    let sink = webhook(&server, Duration::from_secs(5), 3);
    let comment = fixtures::follow_up(b"second");
    let id = "../admin?x=1#T/2 é";
    let posted = sink.comment(id, &comment).await.expect("comment");
    assert_eq!(posted.ticket_id, id);
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        1,
        "{:?}",
        requests.iter().map(|r| r.target()).collect::<Vec<_>>()
    );
    assert_eq!(
        requests[0].target(),
        "/hook/tickets/..%2Fadmin%3Fx=1%23T%2F2%20%C3%A9/comments"
    );
    assert!(signature_valid(&requests[0]));
}
