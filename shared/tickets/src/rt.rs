//! Request Tracker 5 over REST 2.0: one ticket per thread in a queue, a
//! correspondence for each later mail of the thread, and every mail's internal
//! note as an RT comment (comments are for staff; correspondence is what
//! requestors see; rootmail sets no requestor, since it knows the customer's
//! name but not an address, so RT mails nobody).
//!
//! RT has no idempotency key, so every write is checked first:
//! - a ticket carries its thread key in a ticket custom field (`thread_field`,
//!   free-form, one value, applied to the queue or globally) and is found again
//!   by TicketSQL in the queue; its create transaction ends with the creating
//!   message's marker, which is where [`FoundTicket::created_from`] is read from
//!   (no second custom field to set up);
//! - the correspondence and the comment of a message both end with its marker,
//!   and carry it again as a small text part (`rootmail-marker.txt`), which RT
//!   stores as written where it stores a non-ASCII or long text encoded;
//!   one search of the ticket's attachments for the marker (a plain `LIKE` on the
//!   ticket's own attachments, so RT's full-text index is not needed) finds
//!   what is already there, and only the missing part is written. A retry after
//!   a crash between the two therefore adds just the note.
//!
//! Reads are retried by [`HttpClient`]; writes are sent once (see
//! `Rt::post_once`), since repeating one RT may have applied would write twice.
//!
//! Priorities are RT numbers: low 0, normal 50, high 80, urgent 100 (RT's own
//! `%PriorityAsString` example; with RT's default labels Low 0 / Medium 50 /
//! High 100, an admin adds `High => 80` or `Urgent => 100` to see names). A later,
//! more urgent mail raises the ticket's priority; nothing lowers it.

use crate::credential::Credential;
use crate::http::HttpClient;
use crate::marker::{MARKER_PREFIX, MarkerKey};
use crate::ticket_text::body_with_listing;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, LOCATION};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use rootmail_domain::{ContentHash, Priority, ThreadKey};
use rootmail_pipeline::{
    AttachmentContent, FoundTicket, NewComment, NewTicket, PortError, PortResult, PostedComment,
    TicketAttachment, TicketSink,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::OnceCell;

const PORT: &str = "rt";

/// RT's default `$MaxAttachmentSize`.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;
pub const DEFAULT_QUEUE: &str = "General";
pub const DEFAULT_THREAD_FIELD: &str = "RootmailThread";

#[derive(Debug, Clone)]
pub struct RtOptions {
    /// Where RT answers, e.g. `https://rt.example.com` (a trailing `/REST/2.0`
    /// is accepted too).
    pub base_url: String,
    pub queue: String,
    /// The ticket custom field holding the thread key.
    pub thread_field: String,
    pub max_attachment_bytes: usize,
}

impl RtOptions {
    pub fn new(base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/REST/2.0").unwrap_or(base);
        Self {
            base_url: base.to_string(),
            queue: DEFAULT_QUEUE.to_string(),
            thread_field: DEFAULT_THREAD_FIELD.to_string(),
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
        }
    }
}

/// The secret: `{"user": ..., "password": ...}` (HTTP Basic) or `{"token": ...}`
/// (an RT auth token, sent as `Authorization: token <t>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RtCredentials {
    Basic { user: String, password: Credential },
    Token { token: Credential },
}

#[derive(Clone)]
pub struct Rt {
    http: HttpClient,
    options: RtOptions,
    credentials: RtCredentials,
    key: MarkerKey,
    /// Set once the queue and the thread field are known to exist.
    checked: Arc<OnceCell<()>>,
    /// Set once a ticket this process created was read back with its
    /// thread field set.
    field_set: Arc<OnceCell<()>>,
    /// The ticket read back with the field empty, its thread, and why: no
    /// further ticket is created (each would be another that is never found
    /// again) until that ticket's field is set.
    field_refused: Arc<std::sync::Mutex<Option<(String, ThreadKey, String)>>>,
}

/// rootmail's priority as an RT priority number.
pub fn priority_number(priority: Priority) -> u8 {
    match priority {
        Priority::Low => 0,
        Priority::Normal => 50,
        Priority::High => 80,
        Priority::Urgent => 100,
    }
}

/// A TicketSQL string literal: quoted, with `\` and `'` escaped (RT's parser
/// takes a backslash as escaping the next character).
pub fn sql_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// One page of an RT collection.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize)]
struct TicketItem {
    id: Value,
    #[serde(rename = "CustomFields", default)]
    custom_fields: Vec<FieldValues>,
}

#[derive(Deserialize)]
struct FieldValues {
    #[serde(default)]
    name: String,
    #[serde(default)]
    values: Vec<Value>,
}

#[derive(Deserialize)]
struct AttachmentItem {
    #[serde(rename = "TransactionId", default)]
    transaction_id: Value,
    #[serde(rename = "Content", default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Transaction {
    #[serde(rename = "Type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct Record {
    id: Value,
}

/// A ticket's custom fields as REST2 shows them.
#[derive(Deserialize)]
struct TicketFields {
    #[serde(rename = "CustomFields", default)]
    custom_fields: Vec<FieldValues>,
    /// RT keeps a deleted ticket readable, with this status.
    #[serde(rename = "Status", default)]
    status: String,
}

#[derive(Deserialize)]
struct TicketRecord {
    #[serde(rename = "Priority", default)]
    priority: Value,
    #[serde(rename = "Status", default)]
    status: String,
}

#[derive(Deserialize)]
struct FieldItem {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "LookupType", default)]
    lookup_type: String,
}

/// What a message already left on a ticket (found by its marker).
#[derive(Default)]
struct Written {
    correspondence: Option<String>,
    note: bool,
}

impl Rt {
    pub fn new(
        http: HttpClient,
        options: RtOptions,
        credentials: RtCredentials,
        key: MarkerKey,
    ) -> Self {
        Self {
            http,
            options,
            credentials,
            key,
            checked: Arc::new(OnceCell::new()),
            field_set: Arc::new(OnceCell::new()),
            field_refused: Arc::default(),
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/REST/2.0{path}", self.options.base_url)
    }

    fn auth(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.credentials {
            RtCredentials::Basic { user, password } => {
                request.basic_auth(user, Some(password.expose()))
            }
            RtCredentials::Token { token } => {
                request.header(AUTHORIZATION, format!("token {}", token.expose()))
            }
        }
    }

    async fn get(&self, what: &str, url: &str, query: &[(&str, &str)]) -> PortResult<Response> {
        self.http
            .send(what, |c| self.auth(c.get(url)).query(query))
            .await
    }

    /// A write RT has no idempotency for (a ticket, a correspondence, a
    /// comment), sent once: after an answer that leaves open whether RT applied
    /// it (a timeout, a 5xx), sending it again could write it twice. That failure
    /// is transient, and the queue's redelivery looks before it writes. A 429
    /// applied nothing: a short `Retry-After` is waited for here.
    async fn post_once(&self, what: &str, url: &str, body: &Value) -> PortResult<Response> {
        let response = self
            .http
            .send_once(what, |c| self.auth(c.post(url)).json(body))
            .await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // RT says which right is missing; the body never holds the request.
            let excerpt: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(PortError::http(
                PORT,
                status.as_u16(),
                format!(
                    "{what}: {PORT} rejected rootmail's credentials (HTTP {status}); check the ticket credentials secret and the user's rights in RT: {excerpt}"
                ),
            ));
        }
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        Err(crate::http::refusal(PORT, what, response, None).await)
    }

    /// RT answers 201 to a create whose custom field it could not set (the
    /// user may see the field but not set it, or its pattern refuses the
    /// value), and such a ticket is never found again: every later mail of
    /// its thread would open another. The first ticket a process creates is
    /// read back to see the field set.
    async fn check_field_set(&self, id: &str, thread: &ThreadKey) -> PortResult<()> {
        let what = "reading back a new ticket's thread field";
        if self.field_set.initialized() {
            return Ok(());
        }
        if self.thread_field_set(id, thread).await? == Some(true) {
            let _ = self.field_set.set(());
            return Ok(());
        }
        let field = &self.options.thread_field;
        let why = format!(
            "RT created ticket {id} but left its {field:?} field empty, so it cannot be found again: give this user SetInitialCustomField (or ModifyCustomField) on the field, check the field takes values like {:?}, then set it on ticket {id} by hand; new tickets are created again once it is set",
            thread.as_str()
        );
        *lock(&self.field_refused) = Some((id.to_string(), thread.clone(), why.clone()));
        Err(permanent(what, why))
    }

    /// Whether ticket `id` holds `thread` in the thread field; `None` when
    /// the ticket is gone (deleted, which RT shows as its status, or
    /// shredded).
    async fn thread_field_set(&self, id: &str, thread: &ThreadKey) -> PortResult<Option<bool>> {
        let what = "reading back a new ticket's thread field";
        let response = self
            .get(what, &self.api(&format!("/ticket/{id}")), &[])
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let fields: TicketFields = read_json(what, response).await?;
        if fields.status.eq_ignore_ascii_case("deleted") {
            return Ok(None);
        }
        let field = &self.options.thread_field;
        Ok(Some(fields.custom_fields.iter().any(|f| {
            f.name.eq_ignore_ascii_case(field)
                && f.values.iter().any(|v| v.as_str() == Some(thread.as_str()))
        })))
    }

    /// A ticket created earlier in this process came back without its
    /// thread field: creating more would leave one unfindable ticket per
    /// message, on every run, until the right is given. Each create first
    /// reads that ticket again: once its field is set by hand, or the ticket
    /// is gone, creates go on, in a long-lived process (a warm Lambda) too.
    /// The next ticket is read back again, so a right still missing stops
    /// the process at one more unfindable ticket.
    async fn no_field_refused(&self) -> PortResult<()> {
        let refused = lock(&self.field_refused).clone();
        let Some((id, thread, why)) = refused else {
            return Ok(());
        };
        if self.thread_field_set(&id, &thread).await? != Some(false) {
            // Only this refusal: another create may have made a newer one.
            let mut now = lock(&self.field_refused);
            if now.as_ref().is_some_and(|(held, ..)| *held == id) {
                *now = None;
            }
            return Ok(());
        }
        Err(permanent(
            "creating a ticket",
            format!("not sent, as an earlier ticket of this process came back unfindable: {why}"),
        ))
    }

    /// The queue and the thread field exist (checked once per process): without
    /// the field RT would create tickets it can never find again, and a missing
    /// queue looks like a permission problem in RT's answer.
    async fn check_setup(&self) -> PortResult<()> {
        self.checked
            .get_or_try_init(|| async {
                let what = "checking the RT queue";
                let mut url = Url::parse(&self.api("/queue")).map_err(|e| permanent(what, e))?;
                url.path_segments_mut()
                    .map_err(|()| permanent(what, "the base URL cannot take a path"))?
                    .push(&self.options.queue);
                let response = self.get(what, url.as_str(), &[]).await?;
                if response.status() == StatusCode::NOT_FOUND {
                    return Err(permanent(
                        what,
                        format!(
                            "RT has no queue {:?} that this user can see",
                            self.options.queue
                        ),
                    ));
                }
                let queue: Record = read_json(what, response).await?;
                let what = "checking the RT thread field";
                let url = self.api(&format!("/queue/{}/customfields", id_text(&queue.id)));
                let body = json!([{ "field": "Name", "value": self.options.thread_field }]);
                let response = self
                    .http
                    .send(what, |c| {
                        self.auth(c.post(&url))
                            .query(&[("fields", "Name,LookupType"), ("per_page", "100")])
                            .json(&body)
                    })
                    .await?;
                let fields: Page<FieldItem> = read_json(what, response).await?;
                let applied = fields.items.iter().any(|f| {
                    f.name.eq_ignore_ascii_case(&self.options.thread_field)
                        && f.lookup_type == "RT::Queue-RT::Ticket"
                });
                if !applied {
                    return Err(permanent(
                        what,
                        format!(
                            "queue {:?} has no ticket custom field {:?}; create it in RT (free-form, one value) and apply it to the queue or globally",
                            self.options.queue, self.options.thread_field
                        ),
                    ));
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Every transaction of `ticket_id` whose content carries `message`'s
    /// marker: its correspondence and its note.
    async fn written_for(&self, ticket_id: &str, message: &ContentHash) -> PortResult<Written> {
        let what = format!("looking for message {message} on RT ticket {ticket_id}");
        let url = self.api(&format!("/ticket/{ticket_id}/attachments"));
        let body = json!([{
            "field": "Content",
            "operator": "LIKE",
            "value": self.key.marker(message),
        }]);
        let response = self
            .http
            .send(&what, |c| {
                self.auth(c.post(&url))
                    .query(&[("fields", "TransactionId"), ("per_page", "100")])
                    .json(&body)
            })
            .await?;
        let page: Page<AttachmentItem> = read_json(&what, response).await?;
        let mut transactions: Vec<String> = page
            .items
            .iter()
            .map(|a| id_text(&a.transaction_id))
            .filter(|id| !id.is_empty())
            .collect();
        transactions.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
        transactions.dedup();
        let mut written = Written::default();
        for id in transactions {
            let url = self.api(&format!("/transaction/{id}"));
            let response = self.get(&what, &url, &[]).await?;
            let transaction: Transaction = read_json(&what, response).await?;
            match transaction.kind.as_str() {
                "Correspond" if written.correspondence.is_none() => {
                    written.correspondence = Some(id);
                }
                "Comment" => written.note = true,
                _ => {}
            }
        }
        Ok(written)
    }

    /// Adds a correspondence or a comment; returns its transaction id.
    async fn add_message(
        &self,
        ticket_id: &str,
        action: &str,
        content: &str,
        attachments: &[Value],
    ) -> PortResult<String> {
        let what = format!("adding a {action} to RT ticket {ticket_id}");
        let mut body = json!({ "Content": content, "ContentType": "text/plain" });
        if !attachments.is_empty() {
            body["Attachments"] = Value::Array(attachments.to_vec());
        }
        let url = self.api(&format!("/ticket/{ticket_id}/{action}"));
        let response = self.post_once(&what, &url, &body).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(PortError::http(
                PORT,
                404,
                format!("{what}: RT has no such ticket"),
            ));
        }
        // RT answers with messages, and the new transaction in Location.
        response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string)
            .ok_or_else(|| permanent(&what, "RT's answer names no transaction"))
    }

    /// The internal note as an RT comment, ending with the message's marker.
    async fn add_note(&self, ticket_id: &str, message: &ContentHash, note: &str) -> PortResult<()> {
        if note.trim().is_empty() {
            return Ok(());
        }
        let marker = self.key.marker(message);
        let content = format!("{}\n\n{marker}", note.trim_end());
        self.add_message(ticket_id, "comment", &content, &[marker_part(&marker)])
            .await
            .map(|_| ())
    }

    /// The ticket a comment goes to, read first: gone (RT answers 404 for a
    /// shredded ticket) or deleted (RT still takes correspondence on a
    /// deleted ticket, where no queue shows it), it is not found, so the
    /// writer starts the thread's ticket again. Before, a shredded ticket's
    /// comment was a 400 for ever and a deleted one's was hidden.
    async fn live_ticket(&self, ticket_id: &str) -> PortResult<TicketRecord> {
        let what = format!("reading RT ticket {ticket_id}");
        let url = self.api(&format!("/ticket/{ticket_id}"));
        let response = self.get(&what, &url, &[]).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(PortError::http(
                PORT,
                404,
                format!("{what}: RT has no such ticket"),
            ));
        }
        let ticket: TicketRecord = read_json(&what, response).await?;
        if ticket.status.eq_ignore_ascii_case("deleted") {
            return Err(PortError::http(
                PORT,
                404,
                format!("{what}: the ticket is deleted"),
            ));
        }
        Ok(ticket)
    }

    /// Raises `ticket`'s priority (as read before the comment) to
    /// `priority`'s number; never lowers it.
    async fn raise_priority(
        &self,
        ticket_id: &str,
        ticket: &TicketRecord,
        priority: Priority,
    ) -> PortResult<()> {
        let url = self.api(&format!("/ticket/{ticket_id}"));
        let current = match &ticket.priority {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let wanted = i64::from(priority_number(priority));
        // A priority that is not a number (a local customisation) is left alone:
        // raising it could lower it.
        if current.is_none_or(|c| c >= wanted) {
            return Ok(());
        }
        let what = format!("raising the priority of RT ticket {ticket_id}");
        let body = json!({ "Priority": wanted });
        self.http
            .send(&what, |c| self.auth(c.put(&url)).json(&body))
            .await?;
        Ok(())
    }

    /// The message whose marker the ticket's first marked text carries (its
    /// create transaction). A ticket rootmail did not create (an operator set the
    /// thread field by hand) has none: a hash no message has stands in, so every
    /// mail of the thread becomes a correspondence on it.
    async fn created_from(&self, ticket_id: &str) -> PortResult<ContentHash> {
        let what = format!("reading how RT ticket {ticket_id} was created");
        let url = self.api(&format!("/ticket/{ticket_id}/attachments"));
        let body = json!([{ "field": "Content", "operator": "LIKE", "value": MARKER_PREFIX }]);
        let response = self
            .http
            .send(&what, |c| {
                self.auth(c.post(&url))
                    .query(&[
                        ("fields", "Content"),
                        ("orderby", "id"),
                        ("order", "ASC"),
                        ("per_page", "1"),
                    ])
                    .json(&body)
            })
            .await?;
        let page: Page<AttachmentItem> = read_json(&what, response).await?;
        Ok(page
            .items
            .into_iter()
            .find_map(|a| a.content.as_deref().and_then(|c| self.key.last_marked(c)))
            .unwrap_or_else(|| ContentHash::of(format!("rt-ticket:{ticket_id}").as_bytes())))
    }
}

/// The text of a ticket or correspondence, and its uploads in RT's inline form.
/// RT refuses an attachment without content, so an empty file is listed instead.
fn content_and_uploads(
    body: &str,
    attachments: &[TicketAttachment],
    marker: &str,
) -> (String, Vec<Value>) {
    let mut uploads = Vec::new();
    let listed: Vec<TicketAttachment> = attachments
        .iter()
        .map(|a| match &a.content {
            AttachmentContent::Upload(bytes) if bytes.is_empty() => TicketAttachment {
                content: AttachmentContent::Listed {
                    reason: "not attached: the file is empty".into(),
                    original: None,
                },
                ..a.clone()
            },
            AttachmentContent::Upload(bytes) => {
                uploads.push(json!({
                    "FileName": upload_name(&a.name),
                    "FileType": non_empty(&a.content_type, "application/octet-stream"),
                    "FileContent": STANDARD.encode(bytes),
                }));
                a.clone()
            }
            AttachmentContent::Listed { .. } => a.clone(),
        })
        .collect();
    // First, so RT gives it a lower id than any file: the search for a
    // ticket's first marked text must meet it before a file that quotes one.
    uploads.insert(0, marker_part(marker));
    (body_with_listing(body, &listed, marker), uploads)
}

/// The marker again, as a small text part of its own. RT on PostgreSQL,
/// SQLite or Oracle stores a text with a non-ASCII byte quoted-printable
/// (lines cut at 76 characters) and one over 100,000 bytes base64, and a
/// search reads the stored form, so the marker line in such a text is never
/// found again (RT's `lib/RT/Record.pm`, `_EncodeLOB`; `Attachments.pm` says
/// as much of its own searches). This part is short ASCII, stored as written.
fn marker_part(marker: &str) -> Value {
    json!({
        "FileName": MARKER_FILE,
        "FileType": "text/plain",
        "FileContent": STANDARD.encode(marker),
    })
}

/// The name of the marker part: RT shows it as a small attachment.
const MARKER_FILE: &str = "rootmail-marker.txt";

/// `value`, or `fallback` where RT would refuse it: RT's REST2 checks an
/// upload's `FileName` and `FileType` with Perl's truth, and `"0"` is false
/// there like `""` (a 400, "Field FileName is required").
/// A file's name as RT takes it: `0`, which it would refuse, is `0_`.
fn upload_name(name: &str) -> &str {
    match name {
        "0" => "0_",
        name => non_empty(name, "attachment"),
    }
}

fn non_empty<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.trim().is_empty() || value == "0" {
        fallback
    } else {
        value
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn permanent(what: &str, message: impl std::fmt::Display) -> PortError {
    PortError::permanent(PORT, format!("{what}: {message}"))
}

async fn read_json<T: for<'de> Deserialize<'de>>(what: &str, response: Response) -> PortResult<T> {
    if response.status() == StatusCode::NOT_FOUND {
        return Err(permanent(what, "HTTP 404 from RT"));
    }
    crate::http::json_of(PORT, what, response, "RT's answer is not the expected JSON").await
}

/// RT sends ids as strings in collections and as numbers in records.
fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl TicketSink for Rt {
    fn name(&self) -> &'static str {
        PORT
    }

    fn instance(&self) -> String {
        format!("{PORT} {}", self.options.base_url)
    }

    fn max_attachment_bytes(&self) -> usize {
        self.options.max_attachment_bytes
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        let what = "finding a ticket by its thread";
        let query = format!(
            "Queue = {} AND CF.{{{}}} = {}",
            sql_string(&self.options.queue),
            self.options.thread_field,
            sql_string(key.as_str())
        );
        let url = self.api("/tickets");
        let response = self
            .get(
                what,
                &url,
                &[
                    ("query", &query),
                    ("orderby", "id"),
                    ("order", "ASC"),
                    ("fields", "CustomFields"),
                    ("per_page", "100"),
                ],
            )
            .await?;
        let page: Page<TicketItem> = read_json(what, response).await?;
        // RT compares custom field values without regard to case; thread keys
        // (Message-IDs) are exact.
        let found = page.items.into_iter().find(|t| {
            t.custom_fields.iter().any(|f| {
                f.name.eq_ignore_ascii_case(&self.options.thread_field)
                    && f.values.iter().any(|v| v.as_str() == Some(key.as_str()))
            })
        });
        let Some(ticket) = found else {
            return Ok(None);
        };
        let id = id_text(&ticket.id);
        let created_from = self.created_from(&id).await?;
        Ok(Some(FoundTicket { id, created_from }))
    }

    /// Idempotent per thread key: when the thread's ticket exists (a retry after
    /// a crash), its id is returned, after adding the note if the crash came
    /// between the two.
    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        self.check_setup().await?;
        // Not asked again when the caller's lookup just found none.
        let found = match ticket.found_absent {
            true => None,
            false => self.find(&ticket.thread_key).await?,
        };
        if let Some(found) = found {
            if found.created_from != ticket.message {
                // Another message made the thread's ticket (a twin, or one an
                // operator marked): this one is written there, as Jira and
                // Zendesk do, never dropped.
                self.comment(&found.id, &ticket.as_comment()).await?;
            } else if !self.written_for(&found.id, &ticket.message).await?.note {
                self.add_note(&found.id, &ticket.message, &ticket.internal_note)
                    .await?;
            }
            return Ok(found.id);
        }
        self.no_field_refused().await?;
        let what = "creating a ticket";
        let (content, uploads) = content_and_uploads(
            &ticket.body,
            &ticket.attachments,
            &self.key.marker(&ticket.message),
        );
        let mut body = json!({
            "Queue": self.options.queue,
            "Subject": ticket.subject,
            "Content": content,
            "ContentType": "text/plain",
            "Priority": priority_number(ticket.priority),
            "CustomFields": { self.options.thread_field.as_str(): ticket.thread_key.as_str() },
        });
        if !uploads.is_empty() {
            body["Attachments"] = Value::Array(uploads);
        }
        let response = self.post_once(what, &self.api("/ticket"), &body).await?;
        let created: Record = read_json(what, response).await?;
        let id = id_text(&created.id);
        if id.is_empty() {
            return Err(permanent(what, "RT's answer has no ticket id"));
        }
        self.check_field_set(&id, &ticket.thread_key).await?;
        self.add_note(&id, &ticket.message, &ticket.internal_note)
            .await?;
        Ok(id)
    }

    /// Nothing of a first send can be on the ticket: it is not searched for then.
    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        let ticket = self.live_ticket(ticket_id).await?;
        let written = match comment.first_send {
            Some(_) => Written::default(),
            None => self.written_for(ticket_id, &comment.message).await?,
        };
        let correspondence = match written.correspondence {
            Some(id) => id,
            None => {
                let (content, uploads) = content_and_uploads(
                    &comment.body,
                    &comment.attachments,
                    &self.key.marker(&comment.message),
                );
                self.add_message(ticket_id, "correspond", &content, &uploads)
                    .await?
            }
        };
        if !written.note {
            self.add_note(ticket_id, &comment.message, &comment.internal_note)
                .await?;
        }
        self.raise_priority(ticket_id, &ticket, comment.priority)
            .await?;
        Ok(PostedComment::on(ticket_id, correspondence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_sql_strings_escape_quotes_and_backslashes() {
        assert_eq!(sql_string("case:1"), "'case:1'");
        assert_eq!(sql_string(r"it's a\b"), r"'it\'s a\\b'");
    }

    #[test]
    fn priorities_rise_with_urgency() {
        let numbers: Vec<u8> = [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Urgent,
        ]
        .into_iter()
        .map(priority_number)
        .collect();
        assert_eq!(numbers, vec![0, 50, 80, 100]);
    }

    #[test]
    fn the_base_url_may_name_the_api() {
        assert_eq!(
            RtOptions::new("https://rt.example/REST/2.0/").base_url,
            "https://rt.example"
        );
        assert_eq!(
            RtOptions::new("https://rt.example/").base_url,
            "https://rt.example"
        );
    }

    #[test]
    fn credentials_are_basic_or_token_and_never_print() {
        let basic: RtCredentials =
            serde_json::from_str(r#"{"user":"root","password":"pw-s3cret"}"#).unwrap();
        assert!(matches!(&basic, RtCredentials::Basic { user, .. } if user == "root"));
        let token: RtCredentials = serde_json::from_str(r#"{"token":"tok-s3cret"}"#).unwrap();
        assert!(matches!(token, RtCredentials::Token { .. }));
        assert!(!format!("{basic:?}{token:?}").contains("s3cret"));
        assert!(serde_json::from_str::<RtCredentials>(r#"{"user":"root"}"#).is_err());
    }

    #[test]
    fn empty_files_are_listed_and_others_uploaded_as_base64() {
        let attachments = vec![
            TicketAttachment {
                name: "invoice.pdf".into(),
                content_type: "application/pdf".into(),
                size: 3,
                content: AttachmentContent::Upload(vec![1, 2, 3]),
            },
            TicketAttachment {
                name: "empty.txt".into(),
                content_type: "text/plain".into(),
                size: 0,
                content: AttachmentContent::Upload(Vec::new()),
            },
        ];
        let (content, uploads) = content_and_uploads("Body", &attachments, "MARKER");
        assert_eq!(
            uploads,
            vec![
                // The marker again, as a part RT stores as written.
                json!({"FileName": "rootmail-marker.txt", "FileType": "text/plain", "FileContent": "TUFSS0VS"}),
                json!({"FileName": "invoice.pdf", "FileType": "application/pdf", "FileContent": "AQID"}),
            ]
        );
        assert!(
            content.contains("- empty.txt (text/plain, 0 bytes): not attached: the file is empty")
        );
        assert!(content.ends_with("\n\nMARKER"));
    }
}
