//! A stateful stand-in for the part of Zendesk's ticket API rootmail uses, served
//! over real HTTP on 127.0.0.1 inside the test process (nothing real can run
//! here). It keeps what design.md says Zendesk keeps:
//!
//! - `POST /api/v2/tickets` with `Idempotency-Key`: a key lives 2 hours; a repeat
//!   with the same body replays the answer (`x-idempotency-lookup: hit`), a repeat
//!   with another body is refused with 400 `IdempotentRequestError`;
//! - `PUT /api/v2/tickets/{id}` with `ticket.comment` (`body`, `public`, `uploads`)
//!   and `priority`, answering the ticket as it left it and the audit,
//!   which has no idempotency; at most 30 updates per ticket in 10 minutes (429
//!   with `Retry-After`), at most 5,000 comments (422), no update of a closed ticket (422);
//! - `POST /api/v2/uploads?filename=` (a token lives 60 minutes and is used once);
//! - `GET /api/v2/tickets?external_id=`, `GET /api/v2/tickets/{id}`,
//!   `GET /api/v2/tickets/{id}/comments` (cursor pagination, newest first with
//!   `sort=-created_at`; `sort_order` is offset pagination's and is ignored);
//! - a comment body over 64 KB is cut there without an error, as Zendesk does;
//! - users: the API user (an agent, id [`API_USER`]) submits every ticket; a
//!   `requester` given inline becomes an end user in no organization;
//!   `POST /api/v2/users/create_or_update` makes or updates one (by email) with
//!   its `organization_id`; a ticket whose `organization_id` is not its
//!   requester's organization is refused with 422 (the wording is this fake's);
//! - Basic auth `{email}/token:{token}`, else 401;
//! - optionally, the account's rate limit ([`FakeZendesk::set_rate_limit`]): at
//!   most N requests accepted in any sliding 60-second window, the rest answered
//!   429 with `Retry-After` (whole seconds until the window frees a place).
//!
//! Faults are injected per kind of call: throttling (429 before anything is
//! done), a status (before), or a lost answer (the change is made, then 500).
//! [`FakeZendesk::fail_randomly`] adds server errors on a fraction of all
//! requests, drawn from a seeded generator: half before doing anything (500/503),
//! half after a write was done with its answer lost (500), as real failures are.
//! [`FakeZendesk::traffic`] counts what it saw. The wording of the 422 answers is
//! this fake's own: Zendesk documents the status, not the text.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rootmail_fake_http::FakeHttp;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::XorShift;

pub const EMAIL: &str = "rootmail-bot@example-msp.com";
pub const TOKEN: &str = "fake-zendesk-api-token";
pub const IDEMPOTENCY_KEY_LIFETIME: Duration = Duration::from_secs(2 * 3600);
pub const UPLOAD_LIFETIME: Duration = Duration::from_secs(3600);
/// The window of the account's rate limit.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Zendesk keeps this much of a comment's body and drops the rest silently.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The user the API token belongs to (an agent).
pub const API_USER: u64 = 1;

/// The key the tests' backends sign markers with (a deployment has its own).
pub fn marker_key() -> rootmail_tickets::MarkerKey {
    rootmail_tickets::MarkerKey::new(b"rootmail-tests-zendesk-fake-marker-key-0123")
        .expect("a long enough key")
}

/// The kinds of call, for faults and for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    Create,
    Update,
    Upload,
    ListTickets,
    ShowTicket,
    ListComments,
    /// `POST /api/v2/users/create_or_update`.
    CreateOrUpdateUser,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub call: Call,
    pub path: String,
    pub query: String,
    pub authorized: bool,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    pub json: Option<Value>,
    pub body: Vec<u8>,
    pub status: u16,
}

#[derive(Debug, Clone)]
pub struct Ticket {
    pub id: u64,
    pub external_id: Option<String>,
    pub subject: String,
    pub description: String,
    pub priority: Option<String>,
    pub status: String,
    pub tags: Vec<String>,
    pub custom_fields: Value,
    pub organization_id: Option<u64>,
    pub requester: Option<Value>,
    pub requester_id: Option<u64>,
    pub submitter_id: u64,
    pub via_followup_source_id: Option<u64>,
    pub comments: Vec<Comment>,
    /// When each update was made (fake clock).
    pub updates: Vec<Duration>,
}

impl Ticket {
    pub fn public_comments(&self) -> Vec<&Comment> {
        self.comments.iter().filter(|c| c.public).collect()
    }

    pub fn private_comments(&self) -> Vec<&Comment> {
        self.comments.iter().filter(|c| !c.public).collect()
    }
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub body: String,
    pub public: bool,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub organization_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

enum Fault {
    /// 429 with this `Retry-After`, nothing done.
    Throttle(String),
    /// This status, nothing done.
    Status(u16),
    /// The change is made, the answer is a 500.
    LoseAnswer,
    /// Let this call through untouched (to reach a later one of its kind).
    Pass,
    /// This status with these words, nothing done.
    Said(u16, String),
}

/// What the fake saw, for a soak's reconciliation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Every request received (answered or not).
    pub requests: usize,
    /// Requests the rate limit let through.
    pub accepted: usize,
    /// The most requests accepted in any 60-second window.
    pub peak_per_window: usize,
    /// The most requests sent in any 60-second window, refused ones included:
    /// what a client that keeps to the limit holds at or under it.
    pub peak_sent_per_window: usize,
    /// Requests refused with 429 by the account's rate limit.
    pub rate_limited: usize,
    /// Updates refused with 429 by the limit of 30 per ticket in 10 minutes.
    pub update_limited: usize,
    /// Random server errors answered before doing anything.
    pub failed_before: usize,
    /// Random server errors answered after a write was done (answer lost).
    pub failed_after: usize,
}

/// Server errors on a fraction of requests, from a seeded generator.
struct RandomFaults {
    /// Out of 1,000,000 requests.
    per_million: u64,
    rng: XorShift,
}

struct Upload {
    attachment: Attachment,
    expires: Duration,
    used: bool,
}

struct StoredCreate {
    request: Value,
    answer: Value,
    at: Duration,
}

struct Inner {
    base_url: String,
    started: Instant,
    skipped: Duration,
    next_ticket: u64,
    next_comment: u64,
    next_audit: u64,
    next_upload: u64,
    tickets: Vec<Ticket>,
    users: Vec<User>,
    next_user: u64,
    uploads: HashMap<String, Upload>,
    keys: HashMap<String, StoredCreate>,
    faults: HashMap<Call, VecDeque<Fault>>,
    requests: Vec<Recorded>,
    comment_limit: usize,
    update_limit: usize,
    update_window: Duration,
    /// Requests accepted per 60-second window at most (`None`: no limit).
    rate_limit: Option<usize>,
    /// When the requests of the last 60 seconds were accepted.
    window: VecDeque<Duration>,
    /// When the requests of the last 60 seconds were sent (accepted or not).
    sent: VecDeque<Duration>,
    random_faults: Option<RandomFaults>,
    traffic: Traffic,
    /// Whether recorded requests keep their bodies (a long soak does not).
    keep_bodies: bool,
}

impl Inner {
    fn now(&self) -> Duration {
        self.started.elapsed() + self.skipped
    }

    fn ticket_mut(&mut self, id: u64) -> Option<&mut Ticket> {
        self.tickets.iter_mut().find(|t| t.id == id)
    }

    fn take_fault(&mut self, call: Call) -> Option<Fault> {
        self.faults.get_mut(&call)?.pop_front()
    }

    /// Admits a request into the sliding window, or says how long to wait.
    fn rate_limited(&mut self) -> Option<Duration> {
        let now = self.now();
        for window in [&mut self.window, &mut self.sent] {
            while window.front().is_some_and(|at| *at + RATE_WINDOW <= now) {
                window.pop_front();
            }
        }
        self.sent.push_back(now);
        self.traffic.peak_sent_per_window = self.traffic.peak_sent_per_window.max(self.sent.len());
        if let Some(limit) = self.rate_limit
            && self.window.len() >= limit
        {
            let oldest = self.window.front().copied().unwrap_or(now);
            return Some((oldest + RATE_WINDOW).saturating_sub(now));
        }
        self.window.push_back(now);
        self.traffic.accepted += 1;
        self.traffic.peak_per_window = self.traffic.peak_per_window.max(self.window.len());
        None
    }

    /// A random server error for this request, if one is drawn. Reads have no
    /// effect to lose, so theirs always come before.
    fn random_fault(&mut self, call: Call) -> Option<Fault> {
        let faults = self.random_faults.as_mut()?;
        if faults.rng.next_u64() % 1_000_000 >= faults.per_million {
            return None;
        }
        let after = faults.rng.next_u64() % 2 == 0;
        let write = matches!(
            call,
            Call::Create | Call::Update | Call::Upload | Call::CreateOrUpdateUser
        );
        if after && write {
            self.traffic.failed_after += 1;
            Some(Fault::LoseAnswer)
        } else {
            self.traffic.failed_before += 1;
            let status = if faults.rng.next_u64() % 2 == 0 {
                500
            } else {
                503
            };
            Some(Fault::Status(status))
        }
    }
}

type Shared = Arc<Mutex<Inner>>;

/// The running fake. Dropping it stops the server.
pub struct FakeZendesk {
    pub base_url: String,
    inner: Shared,
    _server: FakeHttp,
}

impl FakeZendesk {
    /// rootmail's real Zendesk backend pointed at this fake, retrying fast.
    pub fn backend(&self) -> rootmail_tickets::Zendesk {
        self.backend_with(|_| {})
    }

    /// [`Self::backend`] with its options adjusted.
    pub fn backend_with(
        &self,
        options: impl FnOnce(&mut rootmail_tickets::ZendeskOptions),
    ) -> rootmail_tickets::Zendesk {
        let http = rootmail_tickets::HttpClient::new(
            "zendesk",
            Duration::from_secs(5),
            rootmail_tickets::RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_secs(2),
            },
        )
        .expect("client");
        let mut settings = rootmail_tickets::ZendeskOptions::new(&self.base_url);
        options(&mut settings);
        rootmail_tickets::Zendesk::new(http, settings, credentials(), marker_key())
    }
    /// Starts the fake on a free loopback port, with no tickets and no users.
    pub fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            base_url: String::new(),
            started: Instant::now(),
            skipped: Duration::ZERO,
            next_ticket: 1001,
            next_comment: 5_000_001,
            next_audit: 9_000_001,
            next_upload: 1,
            tickets: Vec::new(),
            users: Vec::new(),
            next_user: API_USER + 1000,
            uploads: HashMap::new(),
            keys: HashMap::new(),
            faults: HashMap::new(),
            requests: Vec::new(),
            comment_limit: 5000,
            update_limit: 30,
            update_window: Duration::from_secs(600),
            rate_limit: None,
            window: VecDeque::new(),
            sent: VecDeque::new(),
            random_faults: None,
            traffic: Traffic::default(),
            keep_bodies: true,
        }));
        let app = Router::new()
            .route("/api/v2/tickets", post(create).get(list_tickets))
            .route("/api/v2/tickets/{id}", get(show_ticket).put(update))
            .route("/api/v2/tickets/{id}/comments", get(list_comments))
            .route("/api/v2/uploads", post(upload))
            .route(
                "/api/v2/users/create_or_update",
                post(create_or_update_user),
            )
            .with_state(inner.clone());
        let server = FakeHttp::start(app);
        let base_url = server.url();
        inner.lock().expect("fake state").base_url = base_url.clone();
        Self {
            base_url,
            inner,
            _server: server,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake state")
    }

    pub fn users(&self) -> Vec<User> {
        self.lock().users.clone()
    }

    pub fn tickets(&self) -> Vec<Ticket> {
        self.lock().tickets.clone()
    }

    pub fn ticket(&self, id: &str) -> Ticket {
        let id: u64 = id.parse().expect("a numeric ticket id");
        self.lock()
            .tickets
            .iter()
            .find(|t| t.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no ticket {id} in the fake"))
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub fn calls(&self, call: Call) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.call == call)
            .collect()
    }

    /// The next `n` calls of this kind answer 429 with `Retry-After: retry_after`.
    pub fn throttle(&self, call: Call, n: usize, retry_after: &str) {
        let mut inner = self.lock();
        let queue = inner.faults.entry(call).or_default();
        queue.extend((0..n).map(|_| Fault::Throttle(retry_after.to_string())));
    }

    /// The next `n` calls of this kind answer `status` without doing anything.
    pub fn fail(&self, call: Call, n: usize, status: u16) {
        let mut inner = self.lock();
        let queue = inner.faults.entry(call).or_default();
        queue.extend((0..n).map(|_| Fault::Status(status)));
    }

    /// The call of this kind after the next `skip` answers `status` with
    /// `description` as Zendesk's words, without doing anything.
    pub fn fail_saying(&self, call: Call, skip: usize, status: u16, description: &str) {
        let mut inner = self.lock();
        let queue = inner.faults.entry(call).or_default();
        queue.extend((0..skip).map(|_| Fault::Pass));
        queue.push_back(Fault::Said(status, description.to_string()));
    }

    /// The next `n` calls of this kind are carried out, then answered with a 500.
    pub fn lose_answers(&self, call: Call, n: usize) {
        let mut inner = self.lock();
        let queue = inner.faults.entry(call).or_default();
        queue.extend((0..n).map(|_| Fault::LoseAnswer));
    }

    /// Moves the fake's clock on (idempotency keys, upload tokens, update limits).
    pub fn advance(&self, by: Duration) {
        self.lock().skipped += by;
    }

    pub fn set_comment_limit(&self, limit: usize) {
        self.lock().comment_limit = limit;
    }

    /// The account's rate limit: at most `per_minute` requests accepted in any
    /// sliding 60-second window; the others are answered 429 with `Retry-After`
    /// and do nothing.
    pub fn set_rate_limit(&self, per_minute: usize) {
        self.lock().rate_limit = Some(per_minute);
    }

    /// A server error on `fraction` (0.0 to 1.0) of all requests, drawn from a
    /// generator seeded with `seed`: half before anything is done, half (of the
    /// writes) after the change was made, with the answer lost.
    pub fn fail_randomly(&self, fraction: f64, seed: u64) {
        self.lock().random_faults = Some(RandomFaults {
            per_million: (fraction.clamp(0.0, 1.0) * 1_000_000.0).round() as u64,
            rng: XorShift::new(seed),
        });
    }

    /// Keep (default) or drop the bodies of recorded requests: a long soak
    /// records tens of thousands of requests and reads only their status.
    pub fn keep_request_bodies(&self, keep: bool) {
        self.lock().keep_bodies = keep;
    }

    /// What the fake saw so far.
    pub fn traffic(&self) -> Traffic {
        self.lock().traffic
    }

    pub fn close(&self, id: &str) {
        let id: u64 = id.parse().expect("a numeric ticket id");
        self.lock().ticket_mut(id).expect("ticket").status = "closed".into();
    }

    /// An agent deletes ticket `id` (or marks it as spam): Zendesk answers
    /// 404 for it from then on, and its searches no longer list it.
    pub fn delete(&self, id: &str) {
        let id: u64 = id.parse().expect("a numeric ticket id");
        self.lock().tickets.retain(|t| t.id != id);
    }

    /// `n` public replies by agents on ticket `id` (no update limit applies).
    pub fn add_comments(&self, id: &str, n: usize) {
        let id: u64 = id.parse().expect("a numeric ticket id");
        let mut inner = self.lock();
        let first = inner.next_comment;
        inner.next_comment += n as u64;
        let ticket = inner.ticket_mut(id).expect("ticket");
        ticket.comments.extend((0..n as u64).map(|i| Comment {
            id: first + i,
            body: format!("An agent's reply {i}"),
            public: true,
            attachments: Vec::new(),
        }));
    }

    /// A ticket made by hand in Zendesk (not through rootmail).
    pub fn insert_ticket(&self, external_id: &str, description: &str) -> String {
        let mut inner = self.lock();
        let id = inner.next_ticket;
        inner.next_ticket += 1;
        let comment = Comment {
            id: inner.next_comment,
            body: description.to_string(),
            public: true,
            attachments: Vec::new(),
        };
        inner.next_comment += 1;
        inner.tickets.push(Ticket {
            id,
            external_id: Some(external_id.to_string()),
            subject: "typed by hand".into(),
            description: description.to_string(),
            priority: None,
            status: "open".into(),
            tags: Vec::new(),
            custom_fields: json!([]),
            organization_id: None,
            requester: None,
            requester_id: Some(API_USER),
            submitter_id: API_USER,
            via_followup_source_id: None,
            comments: vec![comment],
            updates: Vec::new(),
        });
        id.to_string()
    }
}

/// Standard base64 (the fake checks Basic auth byte for byte).
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn expected_authorization() -> String {
    format!(
        "Basic {}",
        base64(format!("{EMAIL}/token:{TOKEN}").as_bytes())
    )
}

fn error(status: u16, error: &str, description: &str) -> Response {
    answer(status, json!({"error": error, "description": description}))
}

fn answer(status: u16, body: Value) -> Response {
    rootmail_fake_http::Reply::json(status, body).into_response()
}

fn query_pairs(raw: &Option<String>) -> HashMap<String, String> {
    form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Records the request and applies auth and injected faults. `Err` is the
/// answer to send now; `Ok(lose)` says whether to lose the answer after acting.
fn admit(
    inner: &mut Inner,
    call: Call,
    path: &str,
    raw_query: &Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<bool, Box<Response>> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let authorized = header("authorization").as_deref() == Some(expected_authorization().as_str());
    let keep = inner.keep_bodies;
    inner.requests.push(Recorded {
        call,
        path: path.to_string(),
        query: raw_query.clone().unwrap_or_default(),
        authorized,
        idempotency_key: header("idempotency-key"),
        content_type: header("content-type"),
        json: if keep {
            serde_json::from_slice(body).ok()
        } else {
            None
        },
        body: if keep { body.to_vec() } else { Vec::new() },
        status: 0,
    });
    inner.traffic.requests += 1;
    if !authorized {
        return Err(Box::new(error(
            401,
            "Couldn't authenticate you",
            "Unauthorized",
        )));
    }
    if let Some(wait) = inner.rate_limited() {
        inner.traffic.rate_limited += 1;
        // Whole seconds, rounded up, as Zendesk sends them.
        let seconds = wait.as_millis().div_ceil(1000).max(1);
        let mut response = error(429, "TooManyRequests", "API rate limit exceeded");
        response.headers_mut().insert(
            "retry-after",
            seconds.to_string().parse().expect("a header value"),
        );
        return Err(Box::new(response));
    }
    let fault = inner.take_fault(call).or_else(|| inner.random_fault(call));
    match fault {
        None | Some(Fault::Pass) => Ok(false),
        Some(Fault::LoseAnswer) => Ok(true),
        Some(Fault::Said(status, words)) => Err(Box::new(error(status, "RecordInvalid", &words))),
        Some(Fault::Status(status)) => Err(Box::new(error(status, "Injected", "injected failure"))),
        Some(Fault::Throttle(retry_after)) => {
            let mut response = error(429, "TooManyRequests", "Rate limited");
            response
                .headers_mut()
                .insert("retry-after", retry_after.parse().expect("a header value"));
            Err(Box::new(response))
        }
    }
}

/// Notes the status answered on the last recorded request.
fn finish(inner: &mut Inner, response: Response) -> Response {
    if let Some(last) = inner.requests.last_mut() {
        last.status = response.status().as_u16();
    }
    response
}

fn ticket_json(t: &Ticket) -> Value {
    json!({
        "id": t.id,
        "url": format!("/api/v2/tickets/{}.json", t.id),
        "external_id": t.external_id,
        "subject": t.subject,
        "raw_subject": t.subject,
        "description": t.description,
        "priority": t.priority,
        "status": t.status,
        "tags": t.tags,
        "custom_fields": t.custom_fields,
        "organization_id": t.organization_id,
        "requester_id": t.requester_id,
        "submitter_id": t.submitter_id,
    })
}

fn comment_json(c: &Comment) -> Value {
    json!({
        "id": c.id,
        "type": "Comment",
        "body": c.body,
        "plain_body": c.body,
        "public": c.public,
        "attachments": c.attachments.iter().map(|a| json!({
            "file_name": a.file_name,
            "content_type": a.content_type,
            "size": a.bytes.len(),
        })).collect::<Vec<_>>(),
    })
}

/// Takes the uploads a comment names: each must exist, be unexpired and unused.
fn take_uploads(inner: &mut Inner, comment: &Value) -> Result<Vec<Attachment>, Box<Response>> {
    let now = inner.now();
    let tokens: Vec<String> = comment["uploads"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for token in &tokens {
        match inner.uploads.get(token) {
            Some(upload) if !upload.used && upload.expires > now => {}
            _ => {
                return Err(Box::new(answer(
                    422,
                    json!({"error": "RecordInvalid", "description": "Record validation errors",
                           "details": {"base": [{"description": format!("upload token {token} is unknown, used or expired")}]}}),
                )));
            }
        }
    }
    Ok(tokens
        .iter()
        .map(|token| {
            let upload = inner.uploads.get_mut(token).expect("checked above");
            upload.used = true;
            upload.attachment.clone()
        })
        .collect())
}

fn new_comment(inner: &mut Inner, comment: &Value, attachments: Vec<Attachment>) -> Comment {
    let id = inner.next_comment;
    inner.next_comment += 1;
    Comment {
        id,
        body: cut_to(comment["body"].as_str().unwrap_or_default(), MAX_BODY_BYTES),
        public: comment["public"].as_bool().unwrap_or(true),
        attachments,
    }
}

fn audit(inner: &mut Inner, ticket: &Ticket, comment: Option<&Comment>) -> Value {
    let id = inner.next_audit;
    inner.next_audit += 1;
    let events: Vec<Value> = comment
        .map(|c| vec![json!({"id": c.id, "type": "Comment", "body": c.body, "public": c.public})])
        .unwrap_or_default();
    json!({"ticket": ticket_json(ticket), "audit": {"id": id, "ticket_id": ticket.id, "events": events}})
}

async fn create(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock().expect("fake state");
    let response = create_locked(&mut inner, &query, &headers, &body);
    finish(&mut inner, response)
}

fn create_locked(
    inner: &mut Inner,
    query: &Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let lose = match admit(inner, Call::Create, "/api/v2/tickets", query, headers, body) {
        Ok(lose) => lose,
        Err(response) => return *response,
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(400, "InvalidJSON", "the body is not JSON");
    };
    let now = inner.now();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(key) = &key
        && let Some(stored) = inner.keys.get(key)
        && now < stored.at + IDEMPOTENCY_KEY_LIFETIME
    {
        if stored.request != request {
            return error(
                400,
                "IdempotentRequestError",
                "Idempotency key was used with a different request body",
            );
        }
        let mut response = answer(201, stored.answer.clone());
        response
            .headers_mut()
            .insert("x-idempotency-lookup", "hit".parse().expect("header"));
        return response;
    }
    let fields = &request["ticket"];
    let comment = &fields["comment"];
    if comment["body"].as_str().unwrap_or_default().is_empty() {
        return answer(
            422,
            json!({"error": "RecordInvalid", "description": "Record validation errors",
                   "details": {"description": [{"description": "Description: cannot be blank"}]}}),
        );
    }
    let requester_id = match requester_of(inner, fields) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let attachments = match take_uploads(inner, comment) {
        Ok(attachments) => attachments,
        Err(response) => return *response,
    };
    let first = new_comment(inner, comment, attachments);
    let id = inner.next_ticket;
    inner.next_ticket += 1;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ticket = Ticket {
        id,
        external_id: fields["external_id"].as_str().map(str::to_string),
        subject: fields["subject"].as_str().unwrap_or_default().to_string(),
        description: first.body.clone(),
        priority: fields["priority"].as_str().map(str::to_string),
        status: "new".into(),
        tags: strings(&fields["tags"]),
        custom_fields: fields
            .get("custom_fields")
            .cloned()
            .unwrap_or_else(|| json!([])),
        organization_id: fields["organization_id"].as_u64(),
        requester: fields.get("requester").cloned(),
        requester_id: Some(requester_id),
        submitter_id: API_USER,
        via_followup_source_id: fields["via_followup_source_id"].as_u64(),
        comments: vec![first.clone()],
        updates: Vec::new(),
    };
    let body = audit(inner, &ticket, Some(&first));
    inner.tickets.push(ticket);
    if let Some(key) = key {
        inner.keys.insert(
            key,
            StoredCreate {
                request,
                answer: body.clone(),
                at: now,
            },
        );
    }
    if lose {
        return error(500, "InternalError", "lost answer (the ticket was created)");
    }
    let mut response = answer(201, body);
    response
        .headers_mut()
        .insert("x-idempotency-lookup", "miss".parse().expect("header"));
    response
}

async fn update(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock().expect("fake state");
    let response = update_locked(&mut inner, id, &query, &headers, &body);
    finish(&mut inner, response)
}

fn update_locked(
    inner: &mut Inner,
    id: u64,
    query: &Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let path = format!("/api/v2/tickets/{id}");
    let lose = match admit(inner, Call::Update, &path, query, headers, body) {
        Ok(lose) => lose,
        Err(response) => return *response,
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(400, "InvalidJSON", "the body is not JSON");
    };
    let now = inner.now();
    let (limit, window, comment_limit) =
        (inner.update_limit, inner.update_window, inner.comment_limit);
    let Some(ticket) = inner.ticket_mut(id) else {
        return error(404, "RecordNotFound", "Not found");
    };
    let recent: Vec<Duration> = ticket
        .updates
        .iter()
        .copied()
        .filter(|at| now < *at + window)
        .collect();
    if recent.len() >= limit {
        let free_at = recent.iter().min().copied().unwrap_or(now) + window;
        let wait = (free_at.saturating_sub(now)).as_secs() + 1;
        inner.traffic.update_limited += 1;
        let mut response = error(
            429,
            "TooManyRequests",
            "Ticket update limit: 30 updates per 10 minutes",
        );
        response
            .headers_mut()
            .insert("retry-after", wait.to_string().parse().expect("header"));
        return response;
    }
    let fields = &request["ticket"];
    let comment = fields.get("comment").cloned();
    // A closed ticket takes no update at all, a comment or not.
    if ticket.status == "closed" {
        return answer(
            422,
            json!({"error": "RecordInvalid", "description": "Record validation errors",
                   "details": {"status": [{"description": "Status: closed prevents ticket update"}]}}),
        );
    }
    if comment.is_some() && ticket.comments.len() >= comment_limit {
        return answer(
            422,
            json!({"error": "RecordInvalid", "description": "Record validation errors",
                   "details": {"base": [{"description": format!("Comments: this ticket has reached the limit of {comment_limit} comments")}]}}),
        );
    }
    let added = match &comment {
        Some(comment) => {
            let attachments = match take_uploads(inner, comment) {
                Ok(attachments) => attachments,
                Err(response) => return *response,
            };
            Some(new_comment(inner, comment, attachments))
        }
        None => None,
    };
    let ticket = inner.ticket_mut(id).expect("found above");
    if let Some(comment) = &added {
        ticket.comments.push(comment.clone());
    }
    if let Some(priority) = fields["priority"].as_str() {
        ticket.priority = Some(priority.to_string());
    }
    if ticket.status == "new" {
        ticket.status = "open".into();
    }
    ticket.updates.push(now);
    let ticket = ticket.clone();
    let body = audit(inner, &ticket, added.as_ref());
    if lose {
        return error(500, "InternalError", "lost answer (the update was made)");
    }
    answer(200, body)
}

async fn list_tickets(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock().expect("fake state");
    let response = match admit(
        &mut inner,
        Call::ListTickets,
        "/api/v2/tickets",
        &query,
        &headers,
        &Bytes::new(),
    ) {
        Err(response) => *response,
        Ok(_) => {
            let pairs = query_pairs(&query);
            let wanted = pairs.get("external_id");
            let tickets: Vec<Value> = inner
                .tickets
                .iter()
                // Zendesk documents external ids as not case sensitive (on
                // users); the fake lists tickets so too, the looser reading.
                .filter(|t| {
                    wanted.is_none_or(|w| {
                        t.external_id
                            .as_ref()
                            .is_some_and(|id| id.eq_ignore_ascii_case(w))
                    })
                })
                .map(ticket_json)
                .collect();
            let count = tickets.len();
            answer(
                200,
                json!({"tickets": tickets, "next_page": null, "previous_page": null, "count": count}),
            )
        }
    };
    finish(&mut inner, response)
}

async fn show_ticket(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock().expect("fake state");
    let path = format!("/api/v2/tickets/{id}");
    let response = match admit(
        &mut inner,
        Call::ShowTicket,
        &path,
        &query,
        &headers,
        &Bytes::new(),
    ) {
        Err(response) => *response,
        Ok(_) => match inner.tickets.iter().find(|t| t.id == id) {
            Some(ticket) => answer(200, json!({"ticket": ticket_json(ticket)})),
            None => error(404, "RecordNotFound", "Not found"),
        },
    };
    finish(&mut inner, response)
}

async fn list_comments(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock().expect("fake state");
    let path = format!("/api/v2/tickets/{id}/comments");
    let response = match admit(
        &mut inner,
        Call::ListComments,
        &path,
        &query,
        &headers,
        &Bytes::new(),
    ) {
        Err(response) => *response,
        Ok(_) => match inner.tickets.iter().find(|t| t.id == id) {
            None => error(404, "RecordNotFound", "Not found"),
            Some(ticket) => {
                let pairs = query_pairs(&query);
                let size: usize = pairs
                    .get("page[size]")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(100)
                    .clamp(1, 100);
                let descending = pairs.get("sort").map(String::as_str) == Some("-created_at");
                let after: usize = pairs
                    .get("page[after]")
                    .and_then(|c| c.strip_prefix('c'))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let mut ordered: Vec<&Comment> = ticket.comments.iter().collect();
                if descending {
                    ordered.reverse();
                }
                let page: Vec<Value> = ordered
                    .iter()
                    .skip(after)
                    .take(size)
                    .map(|c| comment_json(c))
                    .collect();
                let end = after + page.len();
                let has_more = end < ordered.len();
                let next = has_more.then(|| {
                    format!(
                        "{}{path}?page%5Bsize%5D={size}&sort={}&page%5Bafter%5D=c{end}",
                        inner.base_url,
                        if descending {
                            "-created_at"
                        } else {
                            "created_at"
                        }
                    )
                });
                answer(
                    200,
                    json!({
                        "comments": page,
                        "meta": {"has_more": has_more, "after_cursor": has_more.then(|| format!("c{end}")), "before_cursor": null},
                        "links": {"next": next, "prev": null},
                    }),
                )
            }
        },
    };
    finish(&mut inner, response)
}

async fn upload(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock().expect("fake state");
    let response = match admit(
        &mut inner,
        Call::Upload,
        "/api/v2/uploads",
        &query,
        &headers,
        &body,
    ) {
        Err(response) => *response,
        Ok(lose) => {
            let pairs = query_pairs(&query);
            match pairs.get("filename").filter(|f| !f.is_empty()) {
                None => error(400, "InvalidParameter", "filename is required"),
                Some(file_name) => {
                    let token = format!("upload-token-{}", inner.next_upload);
                    inner.next_upload += 1;
                    let attachment = Attachment {
                        file_name: file_name.clone(),
                        content_type: headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("application/binary")
                            .to_string(),
                        bytes: body.to_vec(),
                    };
                    let expires = inner.now() + UPLOAD_LIFETIME;
                    let described = json!({
                        "file_name": attachment.file_name,
                        "content_type": attachment.content_type,
                        "size": attachment.bytes.len(),
                    });
                    inner.uploads.insert(
                        token.clone(),
                        Upload {
                            attachment,
                            expires,
                            used: false,
                        },
                    );
                    if lose {
                        error(500, "InternalError", "lost answer (the upload was stored)")
                    } else {
                        answer(
                            201,
                            json!({"upload": {"token": token, "expires_at": format!("fake-clock+{}s", expires.as_secs()),
                                              "attachment": described, "attachments": [described]}}),
                        )
                    }
                }
            }
        }
    };
    finish(&mut inner, response)
}

/// The credentials the fake accepts.
pub fn credentials() -> rootmail_tickets::ZendeskCredentials {
    serde_json::from_value(json!({"email": EMAIL, "token": TOKEN})).expect("credentials")
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut_to(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The ticket's requester: `requester_id`, an inline `requester` (made an end
/// user in no organization when new), or the API user. A ticket's
/// `organization_id` must be its requester's organization.
fn requester_of(inner: &mut Inner, fields: &Value) -> Result<u64, Box<Response>> {
    let id = if let Some(id) = fields["requester_id"].as_u64() {
        id
    } else if let Some(email) = fields["requester"]["email"].as_str() {
        let name = fields["requester"]["name"].as_str().unwrap_or(email);
        upsert_user(inner, name, email, None)
    } else {
        API_USER
    };
    let belongs_to = inner
        .users
        .iter()
        .find(|u| u.id == id)
        .and_then(|u| u.organization_id);
    match fields["organization_id"].as_u64() {
        Some(organization) if belongs_to != Some(organization) => Err(Box::new(answer(
            422,
            json!({"error": "RecordInvalid", "description": "Record validation errors",
                   "details": {"organization_id": [{"description": format!(
                       "Organization: the requester is not a member of organization {organization}")}]}}),
        ))),
        _ => Ok(id),
    }
}

/// The user with this email, made or updated; `organization` replaces theirs
/// when given.
fn upsert_user(inner: &mut Inner, name: &str, email: &str, organization: Option<u64>) -> u64 {
    let email = email.to_ascii_lowercase();
    if let Some(user) = inner.users.iter_mut().find(|u| u.email == email) {
        if organization.is_some() {
            user.organization_id = organization;
        }
        return user.id;
    }
    let id = inner.next_user;
    inner.next_user += 1;
    inner.users.push(User {
        id,
        name: name.to_string(),
        email,
        organization_id: organization,
    });
    id
}

async fn create_or_update_user(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock().expect("fake state");
    let path = "/api/v2/users/create_or_update";
    let response = match admit(
        &mut inner,
        Call::CreateOrUpdateUser,
        path,
        &query,
        &headers,
        &body,
    ) {
        Err(response) => *response,
        Ok(lose) => match serde_json::from_slice::<Value>(&body) {
            Err(_) => error(400, "InvalidJSON", "the body is not JSON"),
            Ok(request) => {
                let user = &request["user"];
                match user["email"].as_str() {
                    None => error(422, "RecordInvalid", "email is required"),
                    Some(email) => {
                        let name = user["name"].as_str().unwrap_or(email);
                        let id =
                            upsert_user(&mut inner, name, email, user["organization_id"].as_u64());
                        let organization = inner
                            .users
                            .iter()
                            .find(|u| u.id == id)
                            .and_then(|u| u.organization_id);
                        if lose {
                            error(500, "InternalError", "lost answer (the user was saved)")
                        } else {
                            answer(
                                200,
                                json!({"user": {"id": id, "email": email, "role": "end-user", "organization_id": organization}}),
                            )
                        }
                    }
                }
            }
        },
    };
    finish(&mut inner, response)
}
