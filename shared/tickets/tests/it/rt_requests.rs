//! The Request Tracker backend's requests, checked against a mock server: their
//! shape (auth, TicketSQL, JSON bodies) and what happens when RT throttles,
//! fails, is slow or refuses the credentials. The real RT runs in
//! tests/tests/it/rt_end_to_end.rs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_pipeline::{AttachmentContent, NewComment, NewTicket, TicketAttachment, TicketSink};
use rootmail_tickets::MarkerKey;
use rootmail_tickets::{HttpClient, RetryPolicy, Rt, RtCredentials, RtOptions};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The marker key these tests pass explicitly (no default exists).
fn marker_key() -> MarkerKey {
    MarkerKey::new(b"rootmail-test-marker-key-0123456789abcdef").expect("key")
}

fn message_marker(message: &ContentHash) -> String {
    marker_key().marker(message)
}

const USER: &str = "rootmail";
const PASSWORD: &str = "rt-password-123";
const FIELD: &str = "RootmailThread";

fn http(timeout: Duration, attempts: u32) -> HttpClient {
    HttpClient::new(
        "rt",
        timeout,
        RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        },
    )
    .expect("client")
}

fn basic() -> RtCredentials {
    serde_json::from_value(json!({"user": USER, "password": PASSWORD})).expect("credentials")
}

fn sink_with(server: &MockServer, http: HttpClient, credentials: RtCredentials) -> Rt {
    let mut options = RtOptions::new(&server.uri());
    options.queue = "AWS root mail".into();
    Rt::new(http, options, credentials, marker_key())
}

fn sink(server: &MockServer) -> Rt {
    sink_with(server, http(Duration::from_secs(5), 3), basic())
}

fn basic_header() -> String {
    format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")))
}

fn new_ticket() -> NewTicket {
    let key = ThreadKey::message("budget-1@aws.example");
    NewTicket {
        idempotency_key: rootmail_pipeline::idempotency_key(&key),
        thread_key: key,
        subject: "AWS Budgets: Monthly budget has exceeded 80%".into(),
        body: "Your budget Monthly is at 85%.".into(),
        priority: Priority::Urgent,
        kind: Kind::BudgetAlert,
        account_id: Some("123456789012".into()),
        customer: Some("Example Corp".into()),
        message: ContentHash::of(b"the first mail"),
        internal_note: "Authentication: DKIM pass. Original: s3://mail/inbound/1".into(),
        attachments: vec![
            TicketAttachment {
                name: "usage report.csv".into(),
                content_type: "text/csv".into(),
                size: 8,
                content: AttachmentContent::Upload(b"a,b\n1,2\n".to_vec()),
            },
            TicketAttachment {
                name: "huge.zip".into(),
                content_type: "application/zip".into(),
                size: 90_000_000,
                content: AttachmentContent::Listed {
                    reason: "not attached: too large".into(),
                    original: Some("s3://mail/inbound/1".into()),
                },
            },
        ],
        found_absent: false,
    }
}

fn new_comment(message: &[u8], priority: Priority) -> NewComment {
    NewComment {
        message: ContentHash::of(message),
        body: "Another alert.".into(),
        priority,
        kind: Kind::BudgetAlert,
        internal_note: "Original: s3://mail/inbound/2".into(),
        attachments: vec![TicketAttachment {
            name: "statement.pdf".into(),
            content_type: "application/pdf".into(),
            size: 4,
            content: AttachmentContent::Upload(b"%PDF".to_vec()),
        }],
    }
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

fn json_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

fn route(request: &Request) -> String {
    format!("{} {}", request.method, request.url.path())
}

fn query(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn created(transaction: u64) -> ResponseTemplate {
    ResponseTemplate::new(201)
        .insert_header("location", format!("/REST/2.0/transaction/{transaction}"))
        .set_body_json(json!(["Message recorded"]))
}

fn page(items: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"items": items, "count": 0, "page": 1}))
}

/// RT's answers to the one-time check that the queue and the thread field exist.
async fn mount_setup(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/REST/2.0/queue/AWS%20root%20mail"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": 3, "Name": "AWS root mail"})),
        )
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/queue/3/customfields"))
        .respond_with(page(
            json!([{"id": "2", "Name": FIELD, "LookupType": "RT::Queue-RT::Ticket"}]),
        ))
        .mount(server)
        .await;
}

/// No ticket has the thread's key yet.
async fn mount_no_ticket(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/REST/2.0/tickets"))
        .respond_with(page(json!([])))
        .mount(server)
        .await;
}

#[tokio::test]
async fn create_posts_queue_subject_priority_thread_field_and_base64_attachments_then_a_private_note()
 {
    let server = MockServer::start().await;
    mount_setup(&server).await;
    mount_no_ticket(&server).await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"id": "7", "type": "ticket", "_url": "http://rt/REST/2.0/ticket/7"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/comment"))
        .respond_with(created(41))
        .expect(1)
        .mount(&server)
        .await;
    let ticket = new_ticket();

    let id = sink(&server).create(&ticket).await.expect("create");

    assert_eq!(id, "7");
    let requests = received(&server).await;
    assert_eq!(
        requests.iter().map(route).collect::<Vec<_>>(),
        [
            "GET /REST/2.0/queue/AWS%20root%20mail",
            "POST /REST/2.0/queue/3/customfields",
            "GET /REST/2.0/tickets",
            "POST /REST/2.0/ticket",
            "POST /REST/2.0/ticket/7/comment",
        ]
    );
    for request in &requests {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap()),
            Some(basic_header().as_str()),
            "{}",
            route(request)
        );
    }
    assert_eq!(
        json_of(&requests[1]),
        json!([{"field": "Name", "value": FIELD}])
    );
    assert_eq!(
        query(&requests[2], "query").as_deref(),
        Some("Queue = 'AWS root mail' AND CF.{RootmailThread} = 'msg:budget-1@aws.example'")
    );

    let posted = json_of(&requests[3]);
    assert_eq!(posted["Queue"], "AWS root mail");
    assert_eq!(posted["Subject"], ticket.subject);
    assert_eq!(posted["ContentType"], "text/plain");
    assert_eq!(posted["Priority"], 100, "urgent");
    assert_eq!(
        posted["CustomFields"],
        json!({"RootmailThread": "msg:budget-1@aws.example"})
    );
    assert_eq!(
        posted["Attachments"],
        json!([{
            "FileName": "usage report.csv",
            "FileType": "text/csv",
            "FileContent": STANDARD.encode(b"a,b\n1,2\n"),
        }])
    );
    assert!(
        posted.get("Requestor").is_none(),
        "a customer name is no address"
    );
    let content = posted["Content"].as_str().expect("content");
    assert!(content.starts_with("Your budget Monthly is at 85%."));
    assert!(content.contains(
        "- huge.zip (application/zip, 90000000 bytes): not attached: too large; it is in the original message at s3://mail/inbound/1"
    ));
    assert!(
        !content.contains("usage report.csv"),
        "uploaded, not listed"
    );
    assert!(content.ends_with(&message_marker(&ticket.message)));

    let note = json_of(&requests[4]);
    assert_eq!(note["ContentType"], "text/plain");
    assert_eq!(
        note["Content"],
        format!(
            "{}\n\n{}",
            ticket.internal_note,
            message_marker(&ticket.message)
        )
    );
    assert!(note.get("Attachments").is_none());
}

#[tokio::test]
async fn a_token_is_sent_as_rts_token_authorization() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/tickets"))
        .and(header("authorization", "token 1-23-abcdef"))
        .respond_with(page(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    let credentials: RtCredentials =
        serde_json::from_value(json!({"token": "1-23-abcdef"})).expect("credentials");
    let rt = sink_with(&server, http(Duration::from_secs(5), 3), credentials);

    let found = rt
        .find(&ThreadKey::message("x@example"))
        .await
        .expect("find");

    assert_eq!(found, None);
}

#[tokio::test]
async fn find_escapes_the_key_matches_it_exactly_and_reads_the_creating_message() {
    let server = MockServer::start().await;
    let key = ThreadKey::message(r"it's\odd@example");
    let creator = ContentHash::of(b"the creating mail");
    // RT compares custom field values without regard to case: ticket 4's key
    // differs from ours only in case and is not ours.
    Mock::given(method("GET"))
        .and(path("/REST/2.0/tickets"))
        .and(query_param(
            "query",
            r"Queue = 'AWS root mail' AND CF.{RootmailThread} = 'msg:it\'s\\odd@example'",
        ))
        .and(query_param("orderby", "id"))
        .respond_with(page(json!([
            {"id": "4", "CustomFields": [{"name": FIELD, "values": [r"msg:IT'S\odd@example"]}]},
            {"id": "9", "CustomFields": [{"name": FIELD, "values": [key.as_str()]}]},
        ])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/9/attachments"))
        .and(query_param("per_page", "1"))
        .and(body_partial_json(
            json!([{"field": "Content", "operator": "LIKE", "value": "rootmail-message: "}]),
        ))
        .respond_with(page(json!([{
            "id": "31",
            "TransactionId": "80",
            "Content": format!("The first mail.\n\n{}", message_marker(&creator)),
        }])))
        .expect(1)
        .mount(&server)
        .await;

    let found = sink(&server)
        .find(&key)
        .await
        .expect("find")
        .expect("found");

    assert_eq!(found.id, "9");
    assert_eq!(found.created_from, creator);
}

#[tokio::test]
async fn a_new_comment_is_a_correspondence_with_its_attachment_then_a_note_and_raises_priority() {
    let server = MockServer::start().await;
    let comment = new_comment(b"mail 2", Priority::High);
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/attachments"))
        .and(body_partial_json(json!([{
            "field": "Content",
            "operator": "LIKE",
            "value": message_marker(&comment.message),
        }])))
        .respond_with(page(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/correspond"))
        .respond_with(created(55))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/comment"))
        .respond_with(created(56))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/ticket/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7, "Priority": "50"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/REST/2.0/ticket/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(["Priority changed"])))
        .expect(1)
        .mount(&server)
        .await;

    let id = sink(&server).comment("7", &comment).await.expect("comment");

    assert_eq!(id.comment_id, "55", "the correspondence's transaction");
    let requests = received(&server).await;
    let reply = requests
        .iter()
        .find(|r| r.url.path().ends_with("/correspond"))
        .map(json_of)
        .expect("correspondence");
    assert_eq!(reply["ContentType"], "text/plain");
    assert_eq!(
        reply["Content"],
        format!("Another alert.\n\n{}", message_marker(&comment.message))
    );
    assert_eq!(
        reply["Attachments"],
        json!([{"FileName": "statement.pdf", "FileType": "application/pdf", "FileContent": "JVBERg=="}])
    );
    let put = requests
        .iter()
        .find(|r| r.method.as_str() == "PUT")
        .map(json_of)
        .expect("priority update");
    assert_eq!(put, json!({"Priority": 80}));
}

#[tokio::test]
async fn a_retried_comment_adds_only_the_missing_note_and_never_lowers_priority() {
    let server = MockServer::start().await;
    let comment = new_comment(b"mail 2", Priority::Low);
    // The correspondence went in before the crash; the note did not.
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/attachments"))
        .respond_with(page(json!([{"id": "90", "TransactionId": "55"}])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/transaction/55"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": 55, "Type": "Correspond"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/correspond"))
        .respond_with(created(99))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/comment"))
        .respond_with(created(60))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/ticket/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7, "Priority": "80"})))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/REST/2.0/ticket/7"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;

    let id = sink(&server).comment("7", &comment).await.expect("comment");

    assert_eq!(id.comment_id, "55");
}

#[tokio::test]
async fn a_429_on_a_write_is_retried_after_its_retry_after_with_the_same_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/attachments"))
        .respond_with(page(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/correspond"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/correspond"))
        .respond_with(created(55))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/comment"))
        .respond_with(created(56))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/ticket/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Priority": 50})))
        .mount(&server)
        .await;

    let started = Instant::now();
    let id = sink(&server)
        .comment("7", &new_comment(b"mail 2", Priority::Normal))
        .await
        .expect("comment");

    assert_eq!(id.comment_id, "55");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited for Retry-After: {:?}",
        started.elapsed()
    );
    let posts: Vec<Request> = received(&server)
        .await
        .into_iter()
        .filter(|r| r.url.path().ends_with("/correspond"))
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].body, posts[1].body);
}

#[tokio::test]
async fn a_429_on_a_read_is_retried_after_its_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/tickets"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_no_ticket(&server).await;

    let started = Instant::now();
    let found = sink(&server)
        .find(&ThreadKey::message("x@example"))
        .await
        .expect("find");

    assert_eq!(found, None);
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(received(&server).await.len(), 2);
}

#[tokio::test]
async fn a_5xx_on_a_read_is_retried_until_it_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/tickets"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_no_ticket(&server).await;

    let found = sink(&server)
        .find(&ThreadKey::message("x@example"))
        .await
        .expect("the third attempt answers");

    assert_eq!(found, None);
    assert_eq!(received(&server).await.len(), 3);
}

#[tokio::test]
async fn a_5xx_on_a_write_is_not_sent_again_and_is_left_to_the_queue() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/attachments"))
        .respond_with(page(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/correspond"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;

    let error = sink(&server)
        .comment("7", &new_comment(b"mail 2", Priority::Normal))
        .await
        .expect_err("502");

    assert!(error.is_transient(), "{error}");
    let posts = received(&server)
        .await
        .into_iter()
        .filter(|r| r.url.path().ends_with("/correspond"))
        .count();
    assert_eq!(
        posts, 1,
        "RT may have applied it: the redelivery looks first"
    );
}

#[tokio::test]
async fn a_slow_rt_times_out_and_is_left_to_the_queue() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/tickets"))
        .respond_with(page(json!([])).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let rt = sink_with(&server, http(Duration::from_millis(200), 2), basic());

    let started = Instant::now();
    let error = rt
        .find(&ThreadKey::message("x@example"))
        .await
        .expect_err("too slow");

    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("after 2 attempt(s)"), "{error}");
    assert_eq!(received(&server).await.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn refused_credentials_cost_one_request_and_say_so() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_string("Unauthorized"))
        .mount(&server)
        .await;

    let error = sink(&server)
        .find(&ThreadKey::message("x@example"))
        .await
        .expect_err("401");

    assert!(!error.is_transient(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("rt rejected rootmail's credentials"),
        "{text}"
    );
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert_eq!(received(&server).await.len(), 1);
}

#[tokio::test]
async fn refused_credentials_on_a_write_are_permanent_after_one_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/attachments"))
        .respond_with(page(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/correspond"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"message": "Permission Denied"})),
        )
        .mount(&server)
        .await;

    let error = sink(&server)
        .comment("7", &new_comment(b"mail 2", Priority::Normal))
        .await
        .expect_err("403");

    assert!(!error.is_transient(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("rt rejected rootmail's credentials (HTTP 403"),
        "{text}"
    );
    assert!(text.contains("Permission Denied"), "{text}");
    assert_eq!(received(&server).await.len(), 2, "one search, one write");
}

#[tokio::test]
async fn a_missing_queue_or_thread_field_stops_before_any_ticket_is_created() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/queue/AWS%20root%20mail"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
        .await;
    let error = sink(&server)
        .create(&new_ticket())
        .await
        .expect_err("no queue");
    assert!(!error.is_transient());
    assert!(
        error
            .to_string()
            .contains("RT has no queue \"AWS root mail\""),
        "{error}"
    );

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/queue/AWS%20root%20mail"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 3})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/queue/3/customfields"))
        .respond_with(page(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "1"})))
        .expect(0)
        .mount(&server)
        .await;
    let error = sink(&server)
        .create(&new_ticket())
        .await
        .expect_err("no field");
    assert!(!error.is_transient());
    assert!(
        error
            .to_string()
            .contains("has no ticket custom field \"RootmailThread\""),
        "{error}"
    );
}

#[tokio::test]
async fn a_create_whose_ticket_exists_returns_it_and_adds_only_a_missing_note() {
    let server = MockServer::start().await;
    mount_setup(&server).await;
    let ticket = new_ticket();
    Mock::given(method("GET"))
        .and(path("/REST/2.0/tickets"))
        .respond_with(page(json!([
            {"id": "7", "CustomFields": [{"name": FIELD, "values": [ticket.thread_key.as_str()]}]}
        ])))
        .mount(&server)
        .await;
    // The create transaction carries the marker (found first), and no
    // transaction of type Comment does: the note is missing.
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/attachments"))
        .respond_with(page(json!([{
            "id": "2",
            "TransactionId": "32",
            "Content": format!("Body\n\n{}", message_marker(&ticket.message)),
        }])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/REST/2.0/transaction/32"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 32, "Type": "Create"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "8"})))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/REST/2.0/ticket/7/comment"))
        .respond_with(created(40))
        .expect(1)
        .mount(&server)
        .await;

    assert_eq!(sink(&server).create(&ticket).await.expect("create"), "7");
}
