//! The Jira Service Management backend's requests, checked against a mock
//! server: shape (auth, JSON, labels, temporary attachments), the checks that
//! stand in for idempotency keys, and throttling, failures, slowness and a
//! refused credential.

use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_pipeline::{
    AttachmentContent, NewComment, NewTicket, PortError, TicketAttachment, TicketSink,
};
use rootmail_tickets::common::{message_marker, thread_token};
use rootmail_tickets::{HttpClient, Jira, JiraCredentials, JiraOptions, RetryPolicy};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{basic_auth, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EMAIL: &str = "agent@example-msp.com";
const TOKEN: &str = "jira-api-token-456";

fn jira(server: &MockServer, timeout: Duration, attempts: u32) -> Jira {
    let http = HttpClient::new(
        "jira",
        timeout,
        RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        },
    )
    .expect("client");
    let credentials: JiraCredentials =
        serde_json::from_value(json!({"email": EMAIL, "token": TOKEN})).expect("credentials");
    let mut options = JiraOptions::new(&server.uri(), "7", "42");
    options.set_priority = true;
    Jira::new(http, options, credentials)
}

fn auth() -> impl wiremock::Match {
    basic_auth(EMAIL, TOKEN)
}

fn attachment(name: &str, bytes: &[u8]) -> TicketAttachment {
    TicketAttachment {
        name: name.into(),
        content_type: "text/plain".into(),
        size: bytes.len(),
        content: AttachmentContent::Upload(bytes.to_vec()),
    }
}

fn new_ticket() -> NewTicket {
    let key = ThreadKey::message("case-1@aws.example");
    NewTicket {
        idempotency_key: rootmail_pipeline::idempotency_key(&key),
        thread_key: key,
        subject: "Exposed access key".into(),
        body: "AKIA... was found on GitHub".into(),
        priority: Priority::Urgent,
        kind: Kind::ExposedKey,
        account_id: Some("111122223333".into()),
        customer: Some("Acme".into()),
        message: ContentHash::of(b"first"),
        internal_note: "Authentication: spf=pass. Original message: s3://mail/inbound/1".into(),
        attachments: vec![
            attachment("evidence.txt", b"evidence"),
            TicketAttachment {
                name: "huge.zip".into(),
                content_type: "application/zip".into(),
                size: 90_000_000,
                content: AttachmentContent::Listed {
                    reason: "not attached: larger than the 10 MiB limit".into(),
                    original: Some("s3://mail/inbound/1".into()),
                },
            },
        ],
    }
}

fn new_comment(message: &[u8]) -> NewComment {
    NewComment {
        message: ContentHash::of(message),
        body: "A reply from AWS support".into(),
        priority: Priority::High,
        kind: Kind::SupportCase,
        internal_note: "Authentication: spf=pass".into(),
        attachments: vec![attachment("log.txt", b"log")],
    }
}

/// An empty JQL search: no request is labelled for the thread yet.
async fn no_request_yet(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/rest/api/2/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": []})))
        .mount(server)
        .await;
}

fn no_comments() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"values": [], "isLastPage": true}))
}

async fn bodies(server: &MockServer, method_name: &str, path_suffix: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == method_name && r.url.path().ends_with(path_suffix))
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn create_sends_labels_priority_attachments_and_a_private_note() {
    let server = MockServer::start().await;
    no_request_yet(&server).await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request"))
        .and(auth())
        .and(body_partial_json(json!({
            "serviceDeskId": "7",
            "requestTypeId": "42",
            "requestFieldValues": {"summary": "Exposed access key", "priority": {"name": "Highest"}},
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"issueKey": "SD-9"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/servicedesk/7/attachTemporaryFile"))
        .and(header("X-Atlassian-Token", "no-check"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"temporaryAttachments": [{"temporaryAttachmentId": "tmp-1", "fileName": "evidence.txt"}]}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-9/attachment"))
        .and(body_partial_json(
            json!({"temporaryAttachmentIds": ["tmp-1"]}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .respond_with(no_comments())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "500"})))
        .expect(1)
        .mount(&server)
        .await;

    let ticket = new_ticket();
    let id = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("created");
    assert_eq!(id, "SD-9");

    let created = &bodies(&server, "POST", "/rest/servicedeskapi/request").await[0];
    let fields = &created["requestFieldValues"];
    let labels: Vec<&str> = fields["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(labels.contains(&thread_token(&ticket.thread_key).as_str()));
    assert!(labels.contains(&"rootmail"));
    let description = fields["description"].as_str().expect("description");
    assert!(description.ends_with(&message_marker(&ticket.message)));
    assert!(description.contains("huge.zip"), "listed, not uploaded");
    assert!(
        !description.contains("Authentication"),
        "the note is not public"
    );

    let note = &bodies(&server, "POST", "/SD-9/comment").await[0];
    assert_eq!(note["public"], json!(false));
    assert!(
        note["body"]
            .as_str()
            .unwrap()
            .contains("Authentication: spf=pass")
    );
}

#[tokio::test]
async fn find_reads_the_creating_message_from_the_labelled_request() {
    let server = MockServer::start().await;
    let key = ThreadKey::message("case-1@aws.example");
    let first = ContentHash::of(b"first");
    Mock::given(method("GET"))
        .and(path("/rest/api/2/search/jql"))
        .and(query_param(
            "jql",
            format!("labels = \"{}\" ORDER BY created ASC", thread_token(&key)),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": [
            {"key": "SD-9", "fields": {"description": format!("text\n\n{}", message_marker(&first))}}
        ]})))
        .mount(&server)
        .await;
    let found = jira(&server, Duration::from_secs(5), 3)
        .find(&key)
        .await
        .expect("searched")
        .expect("found");
    assert_eq!(found.id, "SD-9");
    assert_eq!(found.created_from, first);
}

#[tokio::test]
async fn a_comment_already_there_is_not_added_again() {
    let server = MockServer::start().await;
    let comment = new_comment(b"second");
    Mock::given(method("GET"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .and(query_param("public", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"id": 77, "body": format!("earlier\n\n{}", message_marker(&comment.message))}],
            "isLastPage": true
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .and(query_param("public", "false"))
        .respond_with(no_comments())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .and(body_partial_json(json!({"public": false})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 78})))
        .expect(1)
        .mount(&server)
        .await;
    let id = jira(&server, Duration::from_secs(5), 3)
        .comment("SD-9", &comment)
        .await
        .expect("commented");
    assert_eq!(id.comment_id, "77", "the existing comment's id");
    assert!(
        bodies(&server, "POST", "/attachTemporaryFile")
            .await
            .is_empty(),
        "no second upload for a comment already made"
    );
    let public: Vec<Value> = bodies(&server, "POST", "/SD-9/comment")
        .await
        .into_iter()
        .filter(|b| b["public"] == json!(true))
        .collect();
    assert!(public.is_empty(), "no second public comment: {public:?}");
}

#[tokio::test]
async fn create_completes_a_request_it_made_before_instead_of_a_second_one() {
    let server = MockServer::start().await;
    let ticket = new_ticket();
    Mock::given(method("GET"))
        .and(path("/rest/api/2/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": [
            {"key": "SD-9", "fields": {"description": message_marker(&ticket.message)}}
        ]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .respond_with(no_comments())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .and(body_partial_json(json!({"public": false})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 501})))
        .expect(1)
        .mount(&server)
        .await;
    let id = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("completed");
    assert_eq!(id, "SD-9");
    assert!(
        bodies(&server, "POST", "/rest/servicedeskapi/request")
            .await
            .is_empty(),
        "no second request"
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/search/jql"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/search/jql"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": []})))
        .mount(&server)
        .await;
    let found = jira(&server, Duration::from_secs(5), 3)
        .find(&ThreadKey::message("x@y"))
        .await
        .expect("third attempt answers");
    assert_eq!(found, None);
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_slow_server_is_a_transient_failure() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let error = jira(&server, Duration::from_millis(200), 2)
        .find(&ThreadKey::message("x@y"))
        .await
        .expect_err("times out");
    assert!(matches!(error, PortError::Transient { .. }), "{error}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_refused_credential_is_one_request_and_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(401).set_body_string("Unauthorized"))
        .mount(&server)
        .await;
    let error = jira(&server, Duration::from_secs(5), 4)
        .create(&new_ticket())
        .await
        .expect_err("refused");
    assert!(matches!(error, PortError::Permanent { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("jira rejected rootmail's credentials (HTTP 401"),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
