//! The Jira Service Management backend's requests, checked against a mock
//! server: shape (auth, JSON, labels, temporary attachments), the checks that
//! stand in for idempotency keys, and throttling, failures, slowness and a
//! refused credential.
//!
//! Request shapes checked against models generated from Atlassian's OpenAPI
//! descriptions (the specs themselves were out of reach here): Jira Service
//! Management `RequestCreateDTO` (serviceDeskId, requestTypeId,
//! requestFieldValues; `isAdfRequest` unset, so text fields are wiki markup)
//! and `AttachmentCreate` (temporaryAttachmentIds, public), as published in
//! atlassian_apis (pub.dev, latest) and jira.js `ServiceDeskModels`; the Jira
//! platform's `AttachmentSettings` (enabled, uploadLimit in bytes) from OpenAPI
//! document 1001.0.0-SNAPSHOT-af42c50d50804c2f1b8ad4bb80d52c53890867e2 (crate
//! jira_v3_openapi 1.6.1); the JQL search's `reconcileIssues` from
//! https://developer.atlassian.com/cloud/jira/platform/search-and-reconcile.

use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_pipeline::{AttachmentContent, NewComment, NewTicket, TicketAttachment, TicketSink};
use rootmail_tickets::MarkerKey;
use rootmail_tickets::common::thread_token;
use rootmail_tickets::{HttpClient, Jira, JiraCredentials, JiraOptions, RetryPolicy};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{basic_auth, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The marker key these tests pass explicitly (no default exists).
fn marker_key() -> MarkerKey {
    MarkerKey::new(b"rootmail-test-marker-key-0123456789abcdef").expect("key")
}

fn message_marker(message: &ContentHash) -> String {
    marker_key().marker(message)
}

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
    // Search lags behind writes in the stateful fake by searches, not time.
    options.settle = vec![Duration::from_millis(10); 3];
    Jira::new(http, options, credentials, marker_key())
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
        found_absent: false,
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
    assert!(error.is_transient(), "{error}");
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
    assert!(!error.is_transient(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("jira rejected rootmail's credentials (HTTP 401"),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// Issue A. Jira renders the wiki markup of request descriptions and comments;
/// the Noformat macro "displays a block of text in monospace font with no other
/// formatting" (https://confluence.atlassian.com/x/LPYB), and Jira Cloud's
/// wiki-markup parser takes `{noformat}` as a paired macro whose content stays
/// raw (@atlaskit/editor-wikimarkup-transformer 11.20.13,
/// parser/tokenize/noformat-macro.js). Mail text must not become links, images
/// or colour, and cannot close the block early.
#[tokio::test]
async fn mail_text_is_inert_wiki_markup() {
    let server = MockServer::start().await;
    no_request_yet(&server).await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"issueKey": "SD-9"})))
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
        .mount(&server)
        .await;
    let hostile = "Click [here|https://evil.example] !img.png! {color:red}*bold*{color}\n{noformat}\nescaped? {NOFORMAT}";
    let mut ticket = new_ticket();
    ticket.body = hostile.into();
    ticket.attachments.clear();
    ticket.internal_note = format!("Authentication: spf=pass {hostile}");

    jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("created");

    let created = &bodies(&server, "POST", "/rest/servicedeskapi/request").await[0];
    let description = created["requestFieldValues"]["description"]
        .as_str()
        .expect("description");
    let note = bodies(&server, "POST", "/SD-9/comment").await[0]["body"]
        .as_str()
        .expect("note")
        .to_string();
    for text in [description, note.as_str()] {
        let (block, after) = noformat_block(text);
        assert!(
            block.contains("[here|https://evil.example] !img.png!"),
            "{text}"
        );
        assert!(
            !block.to_ascii_lowercase().contains("{noformat"),
            "no block can be closed from inside: {block}"
        );
        assert!(
            after.starts_with("rootmail-message: "),
            "only the marker is outside: {text}"
        );
    }
}

/// The single `{noformat}` block a text starts with, and what follows it.
fn noformat_block(text: &str) -> (&str, &str) {
    let inner = text
        .strip_prefix("{noformat}\n")
        .unwrap_or_else(|| panic!("starts with a block: {text}"));
    let end = inner.find("\n{noformat}").expect("the block ends");
    (
        &inner[..end],
        inner[end + "\n{noformat}".len()..].trim_start(),
    )
}

/// Issue C. A mail that quotes or invents `rootmail-message: <hash>` does not
/// make rootmail believe that message was written.
#[tokio::test]
async fn a_forged_marker_in_a_comment_does_not_stop_the_real_comment() {
    let server = MockServer::start().await;
    let comment = new_comment(b"victim");
    Mock::given(method("GET"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"id": 70, "body": format!("a mail quoting\nrootmail-message: {}", comment.message)}],
            "isLastPage": true
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 71})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"temporaryAttachments": [{"temporaryAttachmentId": "tmp-1"}],
                       "comment": {"id": 71}}),
        ))
        .mount(&server)
        .await;

    let posted = jira(&server, Duration::from_secs(5), 3)
        .comment("SD-9", &comment)
        .await
        .expect("commented");

    assert_eq!(posted.comment_id, "71", "a new comment, not the forged one");
}

/// Issue 8. Jira has no idempotency key, so a write whose answer was lost is
/// not sent again by the HTTP client: a second POST could make a second
/// request (Atlassian documents no idempotency for
/// `POST /rest/servicedeskapi/request`:
/// https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/#api-rest-servicedeskapi-request-post).
#[tokio::test]
async fn a_create_whose_answer_failed_is_sent_once() {
    let server = MockServer::start().await;
    no_request_yet(&server).await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let mut ticket = new_ticket();
    ticket.attachments.clear();

    let error = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect_err("503");

    assert!(error.is_transient(), "{error}");
    assert_eq!(
        bodies(&server, "POST", "/rest/servicedeskapi/request")
            .await
            .len(),
        1,
        "the queue's redelivery decides, after looking"
    );
}

/// Issue 8, attachments: a lost answer to the attach call is not repeated with
/// temporary ids that are already spent.
#[tokio::test]
async fn an_attach_whose_answer_failed_is_sent_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .respond_with(no_comments())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 71})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/rest/servicedeskapi/servicedesk/7/attachTemporaryFile",
        ))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(
                json!({"temporaryAttachments": [{"temporaryAttachmentId": "tmp-1"}]}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-9/attachment"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;

    let error = jira(&server, Duration::from_secs(5), 3)
        .comment("SD-9", &new_comment(b"with a file"))
        .await
        .expect_err("502");

    assert!(error.is_transient(), "{error}");
    let attached = bodies(&server, "POST", "/SD-9/attachment").await;
    assert_eq!(attached.len(), 1);
    // The comment comes with its files in that one write, so the redelivery
    // finds both or neither.
    let comment = attached[0]["additionalComment"]["body"]
        .as_str()
        .expect("comment");
    assert!(comment.contains("A reply from AWS support"), "{comment}");
    let separate = bodies(&server, "POST", "/SD-9/comment").await;
    assert!(separate.is_empty(), "{separate:?}");
}

/// Issue 10. A thread whose request another message created gets this
/// message as a comment, as Zendesk does, instead of dropping it.
#[tokio::test]
async fn create_on_a_thread_another_message_opened_comments_there() {
    let server = MockServer::start().await;
    let ticket = new_ticket();
    let other = ContentHash::of(b"the other message");
    Mock::given(method("GET"))
        .and(path("/rest/api/2/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": [
            {"key": "SD-3", "fields": {"description": message_marker(&other)}}
        ]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/servicedeskapi/request/SD-3/comment"))
        .respond_with(no_comments())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-3/comment"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 30})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/rest/servicedeskapi/servicedesk/7/attachTemporaryFile",
        ))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(
                json!({"temporaryAttachments": [{"temporaryAttachmentId": "tmp-1"}]}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-3/attachment"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"comment": {"id": 31}})))
        .mount(&server)
        .await;

    let id = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("commented");

    assert_eq!(id, "SD-3");
    // The mail has a file: its comment travels with it, in one write.
    let attached = bodies(&server, "POST", "/SD-3/attachment").await;
    assert_eq!(attached.len(), 1, "the mail is on the request");
    assert!(
        attached[0]["additionalComment"]["body"]
            .as_str()
            .unwrap()
            .contains("AKIA... was found on GitHub")
    );
}

/// A small stateful Jira for issue 9: it keeps the requests it made, and its
/// search index, like Jira Cloud's, shows a new request only some searches
/// later ("The API doesn't provide read-after-write consistency by default";
/// https://developer.atlassian.com/cloud/jira/platform/search-and-reconcile),
/// unless the search names it in `reconcileIssues`.
mod stateful {
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};
    use wiremock::{Request, Respond, ResponseTemplate};

    #[derive(Debug, Clone)]
    pub struct Issue {
        pub id: u64,
        pub key: String,
        pub labels: Vec<String>,
        pub description: String,
        /// Searches that will not show it yet.
        pub hidden_for: usize,
        pub comments: Vec<Value>,
    }

    #[derive(Default)]
    pub struct State {
        pub issues: Vec<Issue>,
        /// Searches a new request stays out of the index.
        pub hide_new_for: usize,
        /// Creates whose answer is lost (made, then a 500).
        pub lose_creates: usize,
        pub searches: usize,
    }

    #[derive(Clone, Default)]
    pub struct FakeJira(pub Arc<Mutex<State>>);

    impl FakeJira {
        pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.0.lock().unwrap()
        }
    }

    pub struct Create(pub FakeJira);
    pub struct Search(pub FakeJira);
    pub struct Comments(pub FakeJira);
    pub struct Update(pub FakeJira);

    /// `PUT /rest/api/2/issue/{key}` with `update.labels` (add, remove).
    impl Respond for Update {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let key = request
                .url
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let mut state = self.0.state();
            let Some(issue) = state.issues.iter_mut().find(|i| i.key == key) else {
                return ResponseTemplate::new(404);
            };
            for change in body["update"]["labels"].as_array().into_iter().flatten() {
                if let Some(label) = change["remove"].as_str() {
                    issue.labels.retain(|l| l != label);
                }
                if let Some(label) = change["add"].as_str() {
                    issue.labels.push(label.to_string());
                }
            }
            ResponseTemplate::new(204)
        }
    }

    impl Respond for Create {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let fields = &body["requestFieldValues"];
            let mut state = self.0.state();
            let id = 10_000 + state.issues.len() as u64;
            let key = format!("SD-{id}");
            let hidden_for = state.hide_new_for;
            state.issues.push(Issue {
                id,
                key: key.clone(),
                labels: fields["labels"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|l| l.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                description: fields["description"].as_str().unwrap_or_default().into(),
                hidden_for,
                comments: Vec::new(),
            });
            if state.lose_creates > 0 {
                state.lose_creates -= 1;
                return ResponseTemplate::new(500);
            }
            ResponseTemplate::new(201)
                .set_body_json(json!({"issueId": id.to_string(), "issueKey": key}))
        }
    }

    impl Respond for Search {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let (jql, reconcile) = if request.method.as_str() == "POST" {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                let ids: Vec<u64> = body["reconcileIssues"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                (body["jql"].as_str().unwrap_or_default().to_string(), ids)
            } else {
                let jql = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "jql")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                (jql, Vec::new())
            };
            let label = jql.split('"').nth(1).unwrap_or_default().to_string();
            let mut state = self.0.state();
            state.searches += 1;
            let mut found = Vec::new();
            for issue in state.issues.iter_mut() {
                let visible = issue.hidden_for == 0 || reconcile.contains(&issue.id);
                issue.hidden_for = issue.hidden_for.saturating_sub(1);
                if visible && issue.labels.contains(&label) {
                    found.push(json!({"id": issue.id.to_string(), "key": issue.key,
                                      "fields": {"description": issue.description}}));
                }
            }
            ResponseTemplate::new(200).set_body_json(json!({"issues": found}))
        }
    }

    impl Respond for Comments {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let key = request
                .url
                .path()
                .split('/')
                .nth(4)
                .unwrap_or_default()
                .to_string();
            let mut state = self.0.state();
            let Some(issue) = state.issues.iter_mut().find(|i| i.key == key) else {
                return ResponseTemplate::new(404);
            };
            if request.method.as_str() == "GET" {
                return ResponseTemplate::new(200)
                    .set_body_json(json!({"values": issue.comments, "isLastPage": true}));
            }
            let mut body: Value = serde_json::from_slice(&request.body).unwrap();
            let id = 500 + issue.comments.len();
            body["id"] = json!(id);
            issue.comments.push(body.clone());
            ResponseTemplate::new(201).set_body_json(body)
        }
    }
}

async fn stateful_jira(server: &MockServer) -> stateful::FakeJira {
    let fake = stateful::FakeJira::default();
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request"))
        .respond_with(stateful::Create(fake.clone()))
        .mount(server)
        .await;
    Mock::given(path("/rest/api/2/search/jql"))
        .respond_with(stateful::Search(fake.clone()))
        .mount(server)
        .await;
    Mock::given(method("PUT"))
        .and(wiremock::matchers::path_regex(r"^/rest/api/2/issue/[^/]+$"))
        .respond_with(stateful::Update(fake.clone()))
        .mount(server)
        .await;
    Mock::given(wiremock::matchers::path_regex(
        r"^/rest/servicedeskapi/request/[^/]+/comment$",
    ))
    .respond_with(stateful::Comments(fake.clone()))
    .mount(server)
    .await;
    fake
}

/// Issue 9. The create's answer is lost and Jira's search does not show the
/// new request for a while: the operation, and its redelivery, still end with
/// one request for the thread.
#[tokio::test]
async fn a_lost_create_that_search_does_not_show_yet_is_not_made_twice() {
    let server = MockServer::start().await;
    let fake = stateful_jira(&server).await;
    {
        let mut state = fake.state();
        state.hide_new_for = 3;
        state.lose_creates = 1;
    }
    let mut ticket = new_ticket();
    ticket.attachments.clear();
    let sink = jira(&server, Duration::from_secs(5), 3);

    let mut written = sink.create(&ticket).await;
    for _ in 0..3 {
        if written.is_ok() {
            break;
        }
        // The queue redelivers the operation.
        written = sink.create(&ticket).await;
    }

    let id = written.expect("written in the end");
    let state = fake.state();
    assert_eq!(state.issues.len(), 1, "one request: {:?}", state.issues);
    assert_eq!(id, state.issues[0].key);
}

/// Issue 13. The instance's attachment limit is read once from
/// `GET /rest/api/3/attachment/meta` (`uploadLimit`, bytes:
/// https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-attachments/#api-rest-api-3-attachment-meta-get);
/// a file over it is listed, not uploaded and refused.
#[tokio::test]
async fn the_attachment_limit_is_the_instances_read_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/attachment/meta"))
        .and(auth())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"enabled": true, "uploadLimit": 5})),
        )
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
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 71})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/rest/servicedeskapi/servicedesk/7/attachTemporaryFile",
        ))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(
                json!({"temporaryAttachments": [{"temporaryAttachmentId": "tmp-1"}]}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/servicedeskapi/request/SD-9/attachment"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"comment": {"id": 70}})))
        .mount(&server)
        .await;
    let sink = jira(&server, Duration::from_secs(5), 3);
    let mut first = new_comment(b"small file");
    first.attachments = vec![attachment("a.txt", b"1234")];
    let mut second = new_comment(b"large file");
    second.attachments = vec![attachment("big.txt", b"123456789")];

    sink.comment("SD-9", &first).await.expect("first");
    sink.comment("SD-9", &second).await.expect("second");

    assert_eq!(sink.max_attachment_bytes(), 5);
    assert_eq!(
        bodies(&server, "POST", "/attachTemporaryFile").await.len(),
        1,
        "only the file within the limit is uploaded"
    );
    let texts: Vec<String> = bodies(&server, "POST", "/SD-9/comment")
        .await
        .iter()
        .filter(|c| c["public"] == json!(true))
        .map(|c| c["body"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        texts[0].contains("big.txt (text/plain, 9 bytes): not attached: larger than"),
        "{texts:?}"
    );
}

/// Issue 13: without an answer from the settings, the documented default stays.
#[tokio::test]
async fn without_the_settings_the_default_limit_stays() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/attachment/meta"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/servicedeskapi/request/SD-9/comment"))
        .respond_with(no_comments())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"id": 71, "temporaryAttachments": [{"temporaryAttachmentId": "tmp-1"}], "comment": {"id": 71}}),
        ))
        .mount(&server)
        .await;
    let sink = jira(&server, Duration::from_secs(5), 3);

    sink.comment("SD-9", &new_comment(b"one"))
        .await
        .expect("one");
    sink.comment("SD-9", &new_comment(b"two"))
        .await
        .expect("two");

    assert_eq!(
        sink.max_attachment_bytes(),
        rootmail_tickets::jira::DEFAULT_MAX_ATTACHMENT_BYTES
    );
}

/// Issue 9, reconciled afterwards: a writer that has no record of the lost
/// create (another instance) makes a second request; its own search, with the
/// new request reconciled, shows the first, so the second is taken out of the
/// thread and the thread goes on on the first.
#[tokio::test]
async fn a_twin_made_by_another_writer_is_taken_out_of_the_thread() {
    let server = MockServer::start().await;
    let fake = stateful_jira(&server).await;
    {
        let mut state = fake.state();
        state.hide_new_for = 4;
        state.lose_creates = 1;
    }
    let mut ticket = new_ticket();
    ticket.attachments.clear();

    let lost = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await;
    assert!(lost.expect_err("not found in time").is_transient());
    let id = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("redelivered elsewhere");

    let state = fake.state();
    assert_eq!(state.issues.len(), 2, "the second writer could not know");
    let (first, twin) = (&state.issues[0], &state.issues[1]);
    assert_eq!(id, first.key, "the thread goes on on the first");
    let token = thread_token(&ticket.thread_key);
    assert!(first.labels.contains(&token));
    assert!(!twin.labels.contains(&token), "{:?}", twin.labels);
    assert!(twin.labels.contains(&"rootmail-duplicate".to_string()));
    assert!(
        twin.comments[0]["body"]
            .as_str()
            .unwrap()
            .contains(&first.key),
        "{:?}",
        twin.comments
    );
    assert_eq!(twin.comments[0]["public"], json!(false));
}
