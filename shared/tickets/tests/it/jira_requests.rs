//! The Jira Service Management backend's requests, checked against a fake
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

use crate::fixtures::{self, bodies, count, marker_key, message_marker, too_large, upload};
use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_fake_http::{FakeHttp, Received, Reply, in_turn};
use rootmail_pipeline::{NewComment, NewTicket, TicketAttachment, TicketSink};
use rootmail_tickets::ticket_text::thread_token;
use rootmail_tickets::{Jira, JiraCredentials, JiraOptions};
use serde_json::{Value, json};
use std::time::Duration;

const EMAIL: &str = "agent@example-msp.com";
const TOKEN: &str = "jira-api-token-456";

fn jira(server: &FakeHttp, timeout: Duration, attempts: u32) -> Jira {
    let credentials: JiraCredentials =
        serde_json::from_value(json!({"email": EMAIL, "token": TOKEN})).expect("credentials");
    let mut options = JiraOptions::new(&server.url(), "7", "42");
    options.set_priority = true;
    // Search lags behind writes in the stateful fake by searches, not time.
    options.settle = vec![Duration::from_millis(10); 3];
    options.project = Some("SD".into());
    Jira::new(
        fixtures::http("jira", timeout, attempts),
        options,
        credentials,
        marker_key(),
    )
}

/// Jira Cloud's API token auth: Basic with the email and the token.
fn auth() -> String {
    let pair = format!("{EMAIL}:{TOKEN}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn attachment(name: &str, bytes: &[u8]) -> TicketAttachment {
    upload(name, "text/plain", bytes)
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
            too_large("not attached: larger than the 10 MiB limit"),
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
        first_send: None,
    }
}

const SEARCH: &str = "/rest/api/2/search/jql";
const CREATE: &str = "/rest/servicedeskapi/request";
const UPLOAD: &str = "/rest/servicedeskapi/servicedesk/7/attachTemporaryFile";

/// An empty JQL search: no request is labelled for the thread yet.
fn no_request_yet() -> Reply {
    Reply::json(200, json!({"issues": []}))
}

fn no_comments() -> Reply {
    Reply::json(200, json!({"values": [], "isLastPage": true}))
}

fn uploaded() -> Reply {
    Reply::json(
        201,
        json!({"temporaryAttachments": [{"temporaryAttachmentId": "tmp-1"}]}),
    )
}

#[tokio::test]
async fn create_sends_labels_priority_attachments_and_a_private_note() {
    let server = FakeHttp::recording(
        Router::new()
            .route(SEARCH, get(no_request_yet()))
            .route(
                CREATE,
                post(Reply::json(201, json!({"issueKey": "SD-9"}))),
            )
            .route(
                UPLOAD,
                post(Reply::json(
                    201,
                    json!({"temporaryAttachments": [{"temporaryAttachmentId": "tmp-1", "fileName": "evidence.txt"}]}),
                )),
            )
            .route(
                "/rest/servicedeskapi/request/SD-9/attachment",
                post(Reply::json(201, json!({}))),
            )
            .route(
                "/rest/servicedeskapi/request/SD-9/comment",
                get(no_comments()).post(Reply::json(201, json!({"id": "500"}))),
            ),
    );

    let ticket = new_ticket();
    let id = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("created");
    assert_eq!(id, "SD-9");

    for route in [
        "POST /rest/servicedeskapi/request",
        "POST /rest/servicedeskapi/servicedesk/7/attachTemporaryFile",
        "POST /rest/servicedeskapi/request/SD-9/attachment",
        "POST /rest/servicedeskapi/request/SD-9/comment",
    ] {
        assert_eq!(count(&server, route), 1, "{route}");
    }
    // The lookup (the check for a twin is a POST); the new request's
    // comments are not searched for its note (nothing can be there yet).
    assert_eq!(count(&server, &format!("GET {SEARCH}")), 1);
    assert_eq!(
        count(&server, "GET /rest/servicedeskapi/request/SD-9/comment"),
        0
    );
    // When the writer's own lookup has just found nothing, it is not repeated.
    let mut after_lookup = ticket.clone();
    after_lookup.found_absent = true;
    jira(&server, Duration::from_secs(5), 3)
        .create(&after_lookup)
        .await
        .expect("created");
    assert_eq!(
        count(&server, &format!("GET {SEARCH}")),
        1,
        "no second lookup"
    );
    assert_eq!(count(&server, "POST /rest/servicedeskapi/request"), 2);
    let creates = fixtures::sent(&server, "POST", CREATE);
    assert_eq!(creates[0].header("authorization"), Some(auth().as_str()));
    let created = creates[0].json();
    assert_eq!(created["serviceDeskId"], "7");
    assert_eq!(created["requestTypeId"], "42");
    let fields = &created["requestFieldValues"];
    assert_eq!(fields["summary"], "Exposed access key");
    assert_eq!(fields["priority"]["name"], "Highest");
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
    let uploads = fixtures::sent(&server, "POST", UPLOAD);
    assert_eq!(uploads[0].header("X-Atlassian-Token"), Some("no-check"));
    let attached = &bodies(&server, "POST", "/SD-9/attachment")[0];
    assert_eq!(attached["temporaryAttachmentIds"], json!(["tmp-1"]));

    let note = &bodies(&server, "POST", "/SD-9/comment")[0];
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
    let key = ThreadKey::message("case-1@aws.example");
    let first = ContentHash::of(b"first");
    let server = FakeHttp::recording(Router::new().route(
        SEARCH,
        get(Reply::json(200, json!({"issues": [
            {"key": "SD-9", "fields": {"description": format!("text\n\n{}", message_marker(&first))}}
        ]}))),
    ));
    let found = jira(&server, Duration::from_secs(5), 3)
        .find(&key)
        .await
        .expect("searched")
        .expect("found");
    assert_eq!(found.id, "SD-9");
    assert_eq!(found.created_from, first);
    assert_eq!(
        server.requests()[0].query_param("jql"),
        Some(format!(
            "project = \"SD\" AND labels = \"{}\" ORDER BY created ASC",
            thread_token(&key)
        ))
    );
}

#[tokio::test]
async fn a_comment_already_there_is_not_added_again() {
    let comment = new_comment(b"second");
    let existing = Reply::json(
        200,
        json!({
            "values": [{"id": 77, "body": format!("earlier\n\n{}", message_marker(&comment.message))}],
            "isLastPage": true
        }),
    );
    // The public comments hold it; the private ones are empty.
    let listing = move |request: Received| {
        let existing = existing.clone();
        async move {
            match request.query_param("public").as_deref() {
                Some("true") => existing,
                _ => no_comments(),
            }
        }
    };
    let server = FakeHttp::recording(Router::new().route(
        "/rest/servicedeskapi/request/SD-9/comment",
        get(listing).post(Reply::json(201, json!({"id": 78}))),
    ));
    let id = jira(&server, Duration::from_secs(5), 3)
        .comment("SD-9", &comment)
        .await
        .expect("commented");
    assert_eq!(id.comment_id, "77", "the existing comment's id");
    for listed in fixtures::sent(&server, "GET", "/SD-9/comment") {
        let public = listed.query_param("public");
        assert!(
            matches!(public.as_deref(), Some("true" | "false")),
            "{public:?}"
        );
    }
    assert!(
        bodies(&server, "POST", "/attachTemporaryFile").is_empty(),
        "no second upload for a comment already made"
    );
    let posted = bodies(&server, "POST", "/SD-9/comment");
    let public: Vec<&Value> = posted
        .iter()
        .filter(|b| b["public"] == json!(true))
        .collect();
    assert!(public.is_empty(), "no second public comment: {public:?}");
    assert_eq!(posted.len(), 1, "the private note: {posted:?}");
    assert_eq!(posted[0]["public"], json!(false));
}

/// Issue 16, goal 6: nothing of a first send can be on the request, so
/// neither its comment nor its note is searched for: two requests, not four.
#[tokio::test]
async fn a_first_send_posts_the_comment_and_its_note_without_searching() {
    let mut comment = new_comment(b"first");
    comment.attachments.clear();
    comment.first_send = Some(rootmail_pipeline::FirstSend {
        earlier_messages: 1,
    });
    let server = FakeHttp::recording(Router::new().route(
        "/rest/servicedeskapi/request/SD-9/comment",
        get(no_comments()).post(Reply::json(201, json!({"id": 78}))),
    ));
    let posted = jira(&server, Duration::from_secs(5), 3)
        .comment("SD-9", &comment)
        .await
        .expect("commented");
    assert_eq!(posted.comment_id, "78");
    assert!(fixtures::sent(&server, "GET", "/SD-9/comment").is_empty());
    let written = bodies(&server, "POST", "/SD-9/comment");
    let public: Vec<&Value> = written.iter().map(|b| &b["public"]).collect();
    assert_eq!(public, [&json!(true), &json!(false)], "{written:?}");
}

/// The request this message made, found on a redelivery (the create's
/// answer was lost, or a step after it failed), with `on_request` already
/// attached to it and `comments` on it.
fn own_request_server(ticket: &NewTicket, on_request: Value, comments: Reply) -> FakeHttp {
    FakeHttp::recording(
        Router::new()
            .route(
                SEARCH,
                get(Reply::json(
                    200,
                    json!({"issues": [
                        {"key": "SD-9", "fields": {"description": message_marker(&ticket.message)}}
                    ]}),
                )),
            )
            .route(
                "/rest/servicedeskapi/request/SD-9/comment",
                get(comments).post(Reply::json(201, json!({"id": 501}))),
            )
            .route(UPLOAD, post(uploaded()))
            .route(
                "/rest/servicedeskapi/request/SD-9/attachment",
                get(Reply::json(
                    200,
                    json!({"values": on_request, "isLastPage": true}),
                ))
                .post(Reply::json(200, json!({}))),
            ),
    )
}

/// Its files are attached too: JSM takes files only after the create, and
/// the description does not list the files it attaches, so before, a lost
/// answer or a failed upload lost the mail's files without a trace.
#[tokio::test]
async fn create_completes_a_request_it_made_before_instead_of_a_second_one() {
    let ticket = new_ticket();
    let server = own_request_server(&ticket, json!([]), no_comments());
    let id = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("completed");
    assert_eq!(id, "SD-9");
    assert!(
        bodies(&server, "POST", CREATE).is_empty(),
        "no second request"
    );
    let attached = bodies(&server, "POST", "/SD-9/attachment");
    assert_eq!(attached.len(), 1, "the file the create left out");
    assert_eq!(attached[0]["temporaryAttachmentIds"], json!(["tmp-1"]));
    let notes = bodies(&server, "POST", "/SD-9/comment");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["public"], json!(false));
}

/// A file already on the request is not attached again, and a request
/// whose note is there (the create finished) gets nothing more.
#[tokio::test]
async fn completing_its_own_request_adds_only_what_is_missing() {
    let ticket = new_ticket();
    let there = json!([{"filename": "evidence.txt"}]);
    let server = own_request_server(&ticket, there, no_comments());
    jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("completed");
    assert!(fixtures::sent(&server, "POST", UPLOAD).is_empty());
    assert!(bodies(&server, "POST", "/SD-9/attachment").is_empty());
    assert_eq!(
        bodies(&server, "POST", "/SD-9/comment").len(),
        1,
        "the note"
    );

    let noted = Reply::json(
        200,
        json!({"values": [{"id": 9, "body": message_marker(&ticket.message)}], "isLastPage": true}),
    );
    let server = own_request_server(&ticket, json!([]), noted);
    jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("completed");
    assert!(fixtures::sent(&server, "GET", "/SD-9/attachment").is_empty());
    assert!(bodies(&server, "POST", "/SD-9/attachment").is_empty());
    assert!(bodies(&server, "POST", "/SD-9/comment").is_empty());
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let server = FakeHttp::recording(Router::new().route(
        SEARCH,
        get(in_turn([
            Reply::status(429).header("Retry-After", "0"),
            Reply::status(503),
            no_request_yet(),
        ])),
    ));
    let found = jira(&server, Duration::from_secs(5), 3)
        .find(&ThreadKey::message("x@y"))
        .await
        .expect("third attempt answers");
    assert_eq!(found, None);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_slow_server_is_a_transient_failure() {
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        Reply::status(200)
    };
    let server = FakeHttp::recording(Router::new().fallback(slow));
    let error = jira(&server, Duration::from_millis(200), 2)
        .find(&ThreadKey::message("x@y"))
        .await
        .expect_err("times out");
    assert!(error.is_transient(), "{error}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_refused_credential_is_one_request_and_a_clear_error() {
    let server = FakeHttp::recording(Router::new().fallback(Reply::text(401, "Unauthorized")));
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
    assert_eq!(server.requests().len(), 1);
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
    let server = FakeHttp::recording(
        Router::new()
            .route(SEARCH, get(no_request_yet()))
            .route(CREATE, post(Reply::json(201, json!({"issueKey": "SD-9"}))))
            .route(
                "/rest/servicedeskapi/request/SD-9/comment",
                get(no_comments()).post(Reply::json(201, json!({"id": "500"}))),
            ),
    );
    let hostile = "Click [here|https://evil.example] !img.png! {color:red}*bold*{color}\n{noformat}\nescaped? {NOFORMAT}";
    let mut ticket = new_ticket();
    ticket.body = hostile.into();
    ticket.attachments.clear();
    ticket.internal_note = format!("Authentication: spf=pass {hostile}");

    jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("created");

    let created = &bodies(&server, "POST", CREATE)[0];
    let description = created["requestFieldValues"]["description"]
        .as_str()
        .expect("description");
    let note = bodies(&server, "POST", "/SD-9/comment")[0]["body"]
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
    let comment = new_comment(b"victim");
    let server = FakeHttp::recording(
        Router::new()
            .route(
                "/rest/servicedeskapi/request/SD-9/comment",
                get(Reply::json(200, json!({
                    "values": [{"id": 70, "body": format!("a mail quoting\nrootmail-message: {}", comment.message)}],
                    "isLastPage": true
                })))
                .post(Reply::json(201, json!({"id": 71}))),
            )
            .fallback(Reply::json(
                201,
                json!({"temporaryAttachments": [{"temporaryAttachmentId": "tmp-1"}],
                       "comment": {"id": 71}}),
            )),
    );

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
    let server = FakeHttp::recording(
        Router::new()
            .route(SEARCH, get(no_request_yet()))
            .route(CREATE, post(Reply::status(503))),
    );
    let mut ticket = new_ticket();
    ticket.attachments.clear();

    let error = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect_err("503");

    assert!(error.is_transient(), "{error}");
    assert_eq!(
        bodies(&server, "POST", CREATE).len(),
        1,
        "the queue's redelivery decides, after looking"
    );
}

/// Issue 8, attachments: a lost answer to the attach call is not repeated with
/// temporary ids that are already spent.
#[tokio::test]
async fn an_attach_whose_answer_failed_is_sent_once() {
    let server = FakeHttp::recording(
        Router::new()
            .route(
                "/rest/servicedeskapi/request/SD-9/comment",
                get(no_comments()).post(Reply::json(201, json!({"id": 71}))),
            )
            .route(UPLOAD, post(uploaded()))
            .route(
                "/rest/servicedeskapi/request/SD-9/attachment",
                post(Reply::status(502)),
            ),
    );

    let error = jira(&server, Duration::from_secs(5), 3)
        .comment("SD-9", &new_comment(b"with a file"))
        .await
        .expect_err("502");

    assert!(error.is_transient(), "{error}");
    let attached = bodies(&server, "POST", "/SD-9/attachment");
    assert_eq!(attached.len(), 1);
    // The comment comes with its files in that one write, so the redelivery
    // finds both or neither.
    let comment = attached[0]["additionalComment"]["body"]
        .as_str()
        .expect("comment");
    assert!(comment.contains("A reply from AWS support"), "{comment}");
    let separate = bodies(&server, "POST", "/SD-9/comment");
    assert!(separate.is_empty(), "{separate:?}");
}

/// Issue 10. A thread whose request another message created gets this
/// message as a comment, as Zendesk does, instead of dropping it.
#[tokio::test]
async fn create_on_a_thread_another_message_opened_comments_there() {
    let ticket = new_ticket();
    let other = ContentHash::of(b"the other message");
    let server = FakeHttp::recording(
        Router::new()
            .route(
                SEARCH,
                get(Reply::json(
                    200,
                    json!({"issues": [
                        {"key": "SD-3", "fields": {"description": message_marker(&other)}}
                    ]}),
                )),
            )
            .route(
                "/rest/servicedeskapi/request/SD-3/comment",
                get(no_comments()).post(Reply::json(201, json!({"id": 30}))),
            )
            .route(UPLOAD, post(uploaded()))
            .route(
                "/rest/servicedeskapi/request/SD-3/attachment",
                post(Reply::json(200, json!({"comment": {"id": 31}}))),
            ),
    );

    let id = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("commented");

    assert_eq!(id, "SD-3");
    // The mail has a file: its comment travels with it, in one write.
    let attached = bodies(&server, "POST", "/SD-3/attachment");
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
    use axum::Router;
    use axum::extract::{Path, State};
    use axum::routing::{get, post, put};
    use rootmail_fake_http::{Received, Reply};
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Clone)]
    pub struct Issue {
        pub id: u64,
        pub key: String,
        /// Its project's key: the service desk's is `SD`.
        pub project: String,
        pub labels: Vec<String>,
        pub description: String,
        /// Searches that will not show it yet.
        pub hidden_for: usize,
        pub comments: Vec<Value>,
    }

    #[derive(Default)]
    pub struct JiraState {
        pub issues: Vec<Issue>,
        /// Searches a new request stays out of the index.
        pub hide_new_for: usize,
        /// Creates whose answer is lost (made, then a 500).
        pub lose_creates: usize,
        pub searches: usize,
        /// Reads of the service desk (`GET /rest/servicedeskapi/servicedesk/7`).
        pub desk_reads: usize,
    }

    #[derive(Clone, Default)]
    pub struct FakeJira(Arc<Mutex<JiraState>>);

    impl FakeJira {
        pub fn state(&self) -> std::sync::MutexGuard<'_, JiraState> {
            self.0.lock().unwrap()
        }

        /// The routes the backend uses, served from this state.
        pub fn router(&self) -> Router {
            Router::new()
                .route("/rest/servicedeskapi/request", post(create))
                .route("/rest/servicedeskapi/servicedesk/7", get(desk))
                .route("/rest/api/2/search/jql", get(search).post(search))
                .route("/rest/api/2/issue/{key}", put(update))
                .route(
                    "/rest/servicedeskapi/request/{key}/comment",
                    get(comments).post(comments),
                )
                .with_state(self.clone())
        }
    }

    /// The service desk: its project is `SD`.
    async fn desk(State(fake): State<FakeJira>) -> Reply {
        fake.state().desk_reads += 1;
        Reply::json(
            200,
            json!({"id": "7", "projectId": "10000", "projectKey": "SD", "projectName": "Service Desk"}),
        )
    }

    /// `PUT /rest/api/2/issue/{key}` with `update.labels` (add, remove).
    async fn update(
        State(fake): State<FakeJira>,
        Path(key): Path<String>,
        request: Received,
    ) -> Reply {
        let body = request.json();
        let mut state = fake.state();
        let Some(issue) = state.issues.iter_mut().find(|i| i.key == key) else {
            return Reply::status(404);
        };
        for change in body["update"]["labels"].as_array().into_iter().flatten() {
            if let Some(label) = change["remove"].as_str() {
                issue.labels.retain(|l| l != label);
            }
            if let Some(label) = change["add"].as_str() {
                issue.labels.push(label.to_string());
            }
        }
        Reply::status(204)
    }

    async fn create(State(fake): State<FakeJira>, request: Received) -> Reply {
        let body = request.json();
        let fields = &body["requestFieldValues"];
        // Jira's summary limit counts UTF-16 units (Java's string length).
        let summary = fields["summary"].as_str().unwrap_or_default();
        if summary.encode_utf16().count() > 255 {
            return Reply::json(
                400,
                json!({"errorMessage": "Summary must be less than 255 characters."}),
            );
        }
        let mut state = fake.state();
        let id = 10_000 + state.issues.len() as u64;
        let key = format!("SD-{id}");
        let hidden_for = state.hide_new_for;
        state.issues.push(Issue {
            id,
            key: key.clone(),
            project: "SD".into(),
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
            return Reply::status(500);
        }
        Reply::json(201, json!({"issueId": id.to_string(), "issueKey": key}))
    }

    async fn search(State(fake): State<FakeJira>, request: Received) -> Reply {
        let (jql, reconcile) = if request.method.as_str() == "POST" {
            let body = request.json();
            let ids: Vec<u64> = body["reconcileIssues"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            (body["jql"].as_str().unwrap_or_default().to_string(), ids)
        } else {
            (request.query_param("jql").unwrap_or_default(), Vec::new())
        };
        // `project = "P" AND labels = "L" ...`: the quoted value after each name.
        let value_of = |name: &str| {
            jql.split_once(&format!("{name} = \""))
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(value, _)| value.to_string())
        };
        let (project, label) = (value_of("project"), value_of("labels").unwrap_or_default());
        let mut state = fake.state();
        state.searches += 1;
        let mut found = Vec::new();
        for issue in state.issues.iter_mut() {
            let visible = issue.hidden_for == 0 || reconcile.contains(&issue.id);
            issue.hidden_for = issue.hidden_for.saturating_sub(1);
            let in_project = project.as_ref().is_none_or(|p| *p == issue.project);
            if visible && in_project && issue.labels.contains(&label) {
                found.push(json!({"id": issue.id.to_string(), "key": issue.key,
                                  "fields": {"description": issue.description}}));
            }
        }
        Reply::json(200, json!({"issues": found}))
    }

    async fn comments(
        State(fake): State<FakeJira>,
        Path(key): Path<String>,
        request: Received,
    ) -> Reply {
        let mut state = fake.state();
        let Some(issue) = state.issues.iter_mut().find(|i| i.key == key) else {
            return Reply::status(404);
        };
        if request.method.as_str() == "GET" {
            return Reply::json(200, json!({"values": issue.comments, "isLastPage": true}));
        }
        let mut body = request.json();
        let id = 500 + issue.comments.len();
        body["id"] = json!(id);
        issue.comments.push(body.clone());
        Reply::json(201, body)
    }
}

fn stateful_jira() -> (FakeHttp, stateful::FakeJira) {
    let fake = stateful::FakeJira::default();
    (FakeHttp::start(fake.router()), fake)
}

/// Issue 9. The create's answer is lost and Jira's search does not show the
/// new request for a while: the operation, and its redelivery, still end with
/// one request for the thread.
#[tokio::test]
async fn a_lost_create_that_search_does_not_show_yet_is_not_made_twice() {
    let (server, fake) = stateful_jira();
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

/// A label is anyone's to set on any issue of the site: an issue in
/// another project labelled for a thread before its request exists took the
/// thread (every AWS mail of it went there as a comment). Searches keep to
/// the service desk's project, read once from the service desk.
#[tokio::test]
async fn a_thread_is_searched_only_in_the_service_desks_project() {
    let (server, fake) = stateful_jira();
    let mut ticket = new_ticket();
    ticket.attachments.clear();
    fake.state().issues.push(stateful::Issue {
        id: 1,
        key: "OPS-1".into(),
        project: "OPS".into(),
        labels: vec![thread_token(&ticket.thread_key)],
        description: String::new(),
        hidden_for: 0,
        comments: Vec::new(),
    });
    let mut options = JiraOptions::new(&server.url(), "7", "42");
    options.settle = vec![Duration::from_millis(10); 3];
    let sink = Jira::new(
        fixtures::http("jira", Duration::from_secs(5), 3),
        options,
        serde_json::from_value(json!({"email": EMAIL, "token": TOKEN})).expect("credentials"),
        marker_key(),
    );
    let id = sink.create(&ticket).await.expect("created");
    assert_ne!(id, "OPS-1");
    assert!(
        fake.state().issues[0].comments.is_empty(),
        "nothing written elsewhere"
    );
    assert_eq!(
        sink.find(&ticket.thread_key)
            .await
            .expect("found")
            .map(|f| f.id),
        Some(id)
    );
    assert_eq!(fake.state().desk_reads, 1, "the project is read once");
}

/// A subject of emoji within rootmail's 250 characters is over Jira's 255
/// UTF-16 units: the request was refused for good. It is cut to fit.
#[tokio::test]
async fn a_subject_of_emoji_still_makes_a_request() {
    let (server, fake) = stateful_jira();
    let mut ticket = new_ticket();
    ticket.attachments.clear();
    ticket.subject = format!("[Acme / 111122223333] {}", "\u{1F600}".repeat(228));
    let id = jira(&server, Duration::from_secs(5), 3)
        .create(&ticket)
        .await
        .expect("created");
    assert_eq!(fake.state().issues.len(), 1);
    assert_eq!(id, fake.state().issues[0].key);
}

/// Issue 13. The instance's attachment limit is read once from
/// `GET /rest/api/3/attachment/meta` (`uploadLimit`, bytes:
/// https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-attachments/#api-rest-api-3-attachment-meta-get);
/// a file over it is listed, not uploaded and refused.
#[tokio::test]
async fn the_attachment_limit_is_the_instances_read_once() {
    let server = FakeHttp::recording(
        Router::new()
            .route(
                "/rest/api/3/attachment/meta",
                get(Reply::json(200, json!({"enabled": true, "uploadLimit": 5}))),
            )
            .route(
                "/rest/servicedeskapi/request/SD-9/comment",
                get(no_comments()).post(Reply::json(201, json!({"id": 71}))),
            )
            .route(UPLOAD, post(uploaded()))
            .route(
                "/rest/servicedeskapi/request/SD-9/attachment",
                post(Reply::json(200, json!({"comment": {"id": 70}}))),
            ),
    );
    let sink = jira(&server, Duration::from_secs(5), 3);
    let mut first = new_comment(b"small file");
    first.attachments = vec![attachment("a.txt", b"1234")];
    let mut second = new_comment(b"large file");
    second.attachments = vec![attachment("big.txt", b"123456789")];

    sink.comment("SD-9", &first).await.expect("first");
    sink.comment("SD-9", &second).await.expect("second");

    assert_eq!(sink.max_attachment_bytes(), 5);
    let settings = fixtures::sent(&server, "GET", "/rest/api/3/attachment/meta");
    assert_eq!(settings.len(), 1, "read once");
    assert_eq!(settings[0].header("authorization"), Some(auth().as_str()));
    assert_eq!(
        bodies(&server, "POST", "/attachTemporaryFile").len(),
        1,
        "only the file within the limit is uploaded"
    );
    let texts: Vec<String> = bodies(&server, "POST", "/SD-9/comment")
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
    let any_post = Reply::json(
        201,
        json!({"id": 71, "temporaryAttachments": [{"temporaryAttachmentId": "tmp-1"}], "comment": {"id": 71}}),
    );
    let server = FakeHttp::recording(
        Router::new()
            .route("/rest/api/3/attachment/meta", get(Reply::status(403)))
            .route(
                "/rest/servicedeskapi/request/SD-9/comment",
                get(no_comments()).post(any_post.clone()),
            )
            .fallback(any_post),
    );
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
    assert_eq!(count(&server, "GET /rest/api/3/attachment/meta"), 1);
}

/// Issue 9, reconciled afterwards: a writer that has no record of the lost
/// create (another instance) makes a second request; its own search, with the
/// new request reconciled, shows the first, so the second is taken out of the
/// thread and the thread goes on on the first.
#[tokio::test]
async fn a_twin_made_by_another_writer_is_taken_out_of_the_thread() {
    let (server, fake) = stateful_jira();
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
