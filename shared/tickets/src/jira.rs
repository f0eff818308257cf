//! Jira Service Management: one customer request per thread, comments for later
//! mail, attachments through temporary files.
//!
//! Jira has no idempotency key, so every write is sent once (never repeated by
//! the HTTP client after an answer that leaves open whether it landed) and
//! checked for before it is made again by the queue's redelivery:
//! - a request carries the label [`thread_token`] (found again by JQL) and its
//!   description ends with the creating message's marker;
//! - a comment ends with its message's marker, and the request's comments are
//!   searched for it before one is added; a comment with files is added with
//!   them in one write (the attach call's `additionalComment`), so a found
//!   comment means its files are there too.
//!
//! Jira's search lags behind its writes (it is eventually consistent), so a
//! create whose answer was lost may not be found at once. The backend keeps
//! the intent of each create it sends: after a lost answer, and when a
//! redelivery finds nothing although an intent is there, it searches again
//! with a bounded backoff (`settle`) before it creates; and after creating it
//! searches once more, with the new request reconciled, so a twin made anyway
//! is marked as a duplicate and the thread goes on on the oldest request. A
//! redelivery comes minutes later (the queue's visibility timeout), by when the
//! search has caught up.
//!
//! Mail text is wiki markup to Jira: it is sent inside a `{noformat}` block, so
//! links, images and colours in it stay text.
//!
//! The request type must offer the `labels` field (it may be hidden with no
//! default); `priority` is set only when `set_priority` is on, because many
//! request types do not offer it and Jira refuses fields a type does not have.

use crate::credential::Credential;
use crate::http::{self, HttpClient};
use crate::marker::MarkerKey;
use crate::ticket_text::{capped_in, original_location, text_with_listing, thread_token};
use reqwest::multipart::{Form, Part};
use reqwest::{RequestBuilder, Response, StatusCode};
use rootmail_domain::{ContentHash, Priority, ThreadKey};
use rootmail_pipeline::{
    AttachmentContent, FoundTicket, NewComment, NewTicket, PortError, PortResult, PostedComment,
    TicketAttachment, TicketSink,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

const PORT: &str = "jira";

/// Jira Cloud's default attachment limit, used until (or unless) the
/// instance's own is read.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

/// Jira refuses a text field over 32,767 characters, which it counts as
/// Java does (UTF-16 units: an emoji is two); a margin below that.
pub const MAX_TEXT_UNITS: usize = 32_000;

/// How long a create's intent is remembered (longer than any redelivery delay).
const INTENT_TTL: Duration = Duration::from_secs(30 * 60);

/// The label a duplicate request gets instead of its thread's.
pub const DUPLICATE_LABEL: &str = "rootmail-duplicate";

#[derive(Debug, Clone)]
pub struct JiraOptions {
    /// `https://your-site.atlassian.net`
    pub base_url: String,
    pub service_desk_id: String,
    pub request_type_id: String,
    pub set_priority: bool,
    pub max_attachment_bytes: usize,
    /// Waits between searches for a request whose create may have landed.
    pub settle: Vec<Duration>,
    /// The service desk's project key, which every thread search keeps
    /// within; read once from the service desk when none is given.
    pub project: Option<String>,
}

impl JiraOptions {
    pub fn new(base_url: &str, service_desk_id: &str, request_type_id: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            service_desk_id: service_desk_id.to_string(),
            request_type_id: request_type_id.to_string(),
            set_priority: false,
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
            settle: [1, 2, 4].map(Duration::from_secs).to_vec(),
            project: None,
        }
    }
}

/// The secret: `{"email": ..., "token": ...}` (an Atlassian API token).
#[derive(Clone, Deserialize)]
pub struct JiraCredentials {
    pub email: String,
    pub token: Credential,
}

#[derive(Clone)]
pub struct Jira {
    http: HttpClient,
    options: JiraOptions,
    credentials: JiraCredentials,
    key: MarkerKey,
    /// The instance's attachment limit, read once.
    upload_limit: Arc<OnceCell<usize>>,
    /// The service desk's project key, read once (see [`JiraOptions::project`]).
    project: Arc<OnceCell<String>>,
    /// Thread token -> when this process last sent a create for it.
    intents: Arc<Mutex<HashMap<String, Instant>>>,
}

/// Jira's limit on a summary, in UTF-16 code units (Java's string length).
const MAX_SUMMARY_UNITS: usize = 255;

/// `subject` cut to what Jira takes as a summary: its limit counts UTF-16
/// units, so a subject of emoji (two units each) within rootmail's 250
/// characters was refused (a 400, a permanent error: the mail never became
/// a request).
fn summary(subject: &str) -> &str {
    let mut units = 0;
    for (at, c) in subject.char_indices() {
        units += c.len_utf16();
        if units > MAX_SUMMARY_UNITS {
            return &subject[..at];
        }
    }
    subject
}

/// Jira's default priority scheme.
pub fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "Low",
        Priority::Normal => "Medium",
        Priority::High => "High",
        Priority::Urgent => "Highest",
    }
}

/// What rootmail reads of a service desk.
#[derive(Deserialize)]
struct ServiceDesk {
    #[serde(rename = "projectKey")]
    project_key: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "issueId", default)]
    issue_id: Option<Value>,
    #[serde(rename = "issueKey")]
    issue_key: String,
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    issues: Vec<Issue>,
}

#[derive(Deserialize)]
struct Issue {
    key: String,
    #[serde(default)]
    fields: IssueFields,
}

#[derive(Default, Deserialize)]
struct IssueFields {
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct Comments {
    #[serde(default)]
    values: Vec<Comment>,
    #[serde(rename = "isLastPage", default = "yes")]
    is_last_page: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct Comment {
    id: Value,
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct Temporary {
    #[serde(rename = "temporaryAttachments", default)]
    temporary_attachments: Vec<TemporaryAttachment>,
}

#[derive(Deserialize)]
struct TemporaryAttachment {
    #[serde(rename = "temporaryAttachmentId")]
    id: String,
}

/// `GET /rest/api/3/attachment/meta`.
#[derive(Deserialize)]
struct AttachmentSettings {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(rename = "uploadLimit", default)]
    upload_limit: Option<u64>,
}

impl Jira {
    pub fn new(
        http: HttpClient,
        options: JiraOptions,
        credentials: JiraCredentials,
        key: MarkerKey,
    ) -> Self {
        let project = Arc::new(OnceCell::new_with(options.project.clone()));
        Self {
            http,
            options,
            credentials,
            key,
            upload_limit: Arc::new(OnceCell::new()),
            project,
            intents: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.base_url)
    }

    fn auth(&self, request: RequestBuilder) -> RequestBuilder {
        request.basic_auth(
            &self.credentials.email,
            Some(self.credentials.token.expose()),
        )
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        response: Response,
    ) -> PortResult<T> {
        http::read_json(PORT, what, response, "wrong URL, service desk or request?").await
    }

    /// A write Jira has no idempotency key for, sent once (see
    /// [`HttpClient::send_once`]); a refusal is permanent, a 404 is left to
    /// [`Self::json`].
    async fn write(
        &self,
        what: &str,
        request: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> PortResult<Response> {
        let response = self.http.send_once(what, request).await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        Err(crate::http::refusal(PORT, what, response, None).await)
    }

    /// The instance's attachment limit, read once per process; the default
    /// when the settings cannot be read (an older Jira, a missing right).
    async fn upload_limit(&self) -> usize {
        *self
            .upload_limit
            .get_or_init(|| async {
                match self.read_upload_limit().await {
                    Ok(limit) => limit,
                    Err(e) => {
                        tracing::warn!(error = %e, "jira attachment settings not read; keeping the default limit");
                        self.options.max_attachment_bytes
                    }
                }
            })
            .await
    }

    async fn read_upload_limit(&self) -> PortResult<usize> {
        let what = "reading the attachment settings";
        let url = self.url("/rest/api/3/attachment/meta");
        let response = self.http.send(what, |c| self.auth(c.get(&url))).await?;
        let settings: AttachmentSettings = self.json(what, response).await?;
        Ok(match (settings.enabled, settings.upload_limit) {
            (false, _) => 0,
            (true, Some(limit)) => usize::try_from(limit).unwrap_or(usize::MAX),
            (true, None) => self.options.max_attachment_bytes,
        })
    }

    /// The thread search for `key`, kept within the service desk's project:
    /// a label is anyone's to set on any issue of the site, so a search of
    /// every project would take an issue someone labelled elsewhere for the
    /// thread's request.
    async fn thread_jql(&self, key: &ThreadKey) -> PortResult<String> {
        let project = self.project.get_or_try_init(|| self.read_project()).await?;
        Ok(format!(
            "project = {} AND labels = {} ORDER BY created ASC",
            jql_string(project),
            jql_string(&thread_token(key))
        ))
    }

    /// The service desk's project key (`GET /rest/servicedeskapi/servicedesk/{id}`).
    async fn read_project(&self) -> PortResult<String> {
        let what = "reading the service desk's project";
        let url = self.url(&format!(
            "/rest/servicedeskapi/servicedesk/{}",
            self.options.service_desk_id
        ));
        let response = self.http.send(what, |c| self.auth(c.get(&url))).await?;
        let desk: ServiceDesk = self.json(what, response).await?;
        desk.project_key
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                PortError::permanent(PORT, format!("{what}: the answer names no projectKey"))
            })
    }

    /// The attachments as they will be sent: a file over the instance's limit
    /// is listed instead (Jira would refuse it and fail the whole operation).
    async fn fit(&self, attachments: &[TicketAttachment]) -> Vec<TicketAttachment> {
        if attachments.iter().all(|a| a.bytes().is_none()) {
            return attachments.to_vec();
        }
        let limit = self.upload_limit().await;
        attachments
            .iter()
            .map(|a| match a.bytes() {
                Some(bytes) if bytes.len() > limit => TicketAttachment {
                    content: AttachmentContent::Listed {
                        reason: format!("not attached: larger than Jira's limit of {limit} bytes"),
                        original: None,
                    },
                    ..a.clone()
                },
                _ => a.clone(),
            })
            .collect()
    }

    /// Uploads the files that have bytes as temporary files, right before they
    /// are used (a temporary file that is never attached expires); their ids.
    async fn upload_all(&self, attachments: &[TicketAttachment]) -> PortResult<Vec<String>> {
        let mut ids = Vec::new();
        for attachment in attachments {
            if let Some(bytes) = attachment.bytes() {
                ids.extend(self.upload(attachment, bytes).await?);
            }
        }
        Ok(ids)
    }

    /// Attaches uploaded files to the request, sent once (attaching again with
    /// spent temporary ids would be refused). With `comment`, the files come
    /// with that comment in the same write, so the comment the redelivery
    /// looks for is there exactly when the files are; its id, when Jira names it.
    async fn attach(
        &self,
        key: &str,
        ids: &[String],
        comment: Option<&str>,
        public: bool,
    ) -> PortResult<Option<String>> {
        #[derive(Deserialize)]
        struct Attached {
            #[serde(default)]
            comment: Option<Comment>,
        }
        if ids.is_empty() {
            return Ok(None);
        }
        let what = "attaching files";
        let url = self.url(&format!("/rest/servicedeskapi/request/{key}/attachment"));
        let mut body = json!({"temporaryAttachmentIds": ids, "public": public});
        if let Some(comment) = comment {
            body["additionalComment"] = json!({"body": comment});
        }
        let response = self
            .write(what, |c| self.auth(c.post(&url)).json(&body))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(PortError::http(
                PORT,
                404,
                format!("{what}: HTTP 404 (request {key} gone?)"),
            ));
        }
        // Applied: an answer that cannot be read only loses the id.
        let attached = response.json::<Attached>().await.ok();
        Ok(attached.and_then(|a| a.comment).map(|c| id_text(&c.id)))
    }

    async fn upload(&self, attachment: &TicketAttachment, bytes: &[u8]) -> PortResult<Vec<String>> {
        let what = "uploading an attachment";
        let url = self.url(&format!(
            "/rest/servicedeskapi/servicedesk/{}/attachTemporaryFile",
            self.options.service_desk_id
        ));
        let response = self
            .write(what, |c| {
                let part = Part::bytes(bytes.to_vec())
                    .file_name(attachment.name.clone())
                    .mime_str(&attachment.content_type)
                    .unwrap_or_else(|_| {
                        Part::bytes(bytes.to_vec()).file_name(attachment.name.clone())
                    });
                self.auth(c.post(&url))
                    .header("X-Atlassian-Token", "no-check")
                    .header("X-ExperimentalApi", "opt-in")
                    .multipart(Form::new().part("file", part))
            })
            .await?;
        let temporary: Temporary = self.json(what, response).await?;
        Ok(temporary
            .temporary_attachments
            .into_iter()
            .map(|t| t.id)
            .collect())
    }

    /// The comment on `key` that carries `message`'s marker, if any (all pages).
    async fn existing_comment(
        &self,
        key: &str,
        message: &ContentHash,
        public: bool,
    ) -> PortResult<Option<String>> {
        let url = self.url(&format!("/rest/servicedeskapi/request/{key}/comment"));
        let mut start = 0usize;
        loop {
            let query = [
                ("start", start.to_string()),
                ("limit", "100".to_string()),
                ("public", public.to_string()),
                ("internal", (!public).to_string()),
            ];
            let response = self
                .http
                .send("listing comments", |c| self.auth(c.get(&url)).query(&query))
                .await?;
            let page: Comments = self.json("listing comments", response).await?;
            let mut marked = page
                .values
                .iter()
                .filter(|c| self.key.has_marker(&c.body, message));
            if let Some(found) = marked.next() {
                return Ok(Some(id_text(&found.id)));
            }
            if page.is_last_page || page.values.is_empty() {
                return Ok(None);
            }
            start += page.values.len();
        }
    }

    async fn post_comment(&self, key: &str, body: &str, public: bool) -> PortResult<String> {
        let what = "commenting on a request";
        let url = self.url(&format!("/rest/servicedeskapi/request/{key}/comment"));
        let payload = json!({"body": body, "public": public});
        let response = self
            .write(what, |c| self.auth(c.post(&url)).json(&payload))
            .await?;
        let created: Comment = self.json(what, response).await?;
        Ok(id_text(&created.id))
    }

    /// The internal note, marked with the message so a retry does not repeat it.
    async fn internal_note(
        &self,
        key: &str,
        message: &ContentHash,
        note: &str,
        search: bool,
    ) -> PortResult<()> {
        if note.trim().is_empty() {
            return Ok(());
        }
        if search && self.existing_comment(key, message, false).await?.is_some() {
            return Ok(());
        }
        let body = self.text(note, &[], message, original_location(note));
        self.post_comment(key, &body, false).await.map(drop)
    }

    /// A new public comment and its files, in one write when there are files.
    async fn post_with_files(&self, key: &str, comment: &NewComment) -> PortResult<String> {
        let attachments = self.fit(&comment.attachments).await;
        let original = original_location(&comment.internal_note);
        let body = self.text(&comment.body, &attachments, &comment.message, original);
        let ids = self.upload_all(&attachments).await?;
        if ids.is_empty() {
            return self.post_comment(key, &body, true).await;
        }
        match self.attach(key, &ids, Some(&body), true).await? {
            Some(id) => Ok(id),
            None => self
                .existing_comment(key, &comment.message, true)
                .await?
                .ok_or_else(|| {
                    permanent(format!(
                        "attaching files: Jira answered, but their comment is not on request {key}"
                    ))
                }),
        }
    }

    /// Mail text as Jira stores it: inert, capped, then the marker.
    fn text(
        &self,
        body: &str,
        attachments: &[TicketAttachment],
        message: &ContentHash,
        original: Option<&str>,
    ) -> String {
        let text = text_with_listing(body, attachments);
        stored_text(&self.key.marker(message), &text, original)
    }
}

/// `text` capped, made inert, then `marker`: within [`MAX_TEXT_UNITS`]
/// however the text is written. Making it inert adds a character to each
/// `{noformat` (nine), so the text is capped to nine tenths of the room
/// first: a text of nothing but `{noformat` would otherwise grow past
/// Jira's limit, be refused, and never become a ticket. Counted in Jira's
/// units, not bytes, which would cut Japanese mail at a third of the room.
fn stored_text(marker: &str, text: &str, original: Option<&str>) -> String {
    let room = MAX_TEXT_UNITS - marker.len() - NOFORMAT_WRAPPING - "\n\n".len();
    let text = capped_in(text, "", (room / 10 * 9, char::len_utf16), original);
    format!("{}\n\n{marker}", inert(&text))
}

/// Searching lags behind writing: what a create whose answer was lost needs.
impl Jira {
    fn intended(&self, token: &str) -> bool {
        let intents = self.intents.lock().unwrap_or_else(|e| e.into_inner());
        intents
            .get(token)
            .is_some_and(|at| at.elapsed() < INTENT_TTL)
    }

    fn intend(&self, token: &str) {
        let mut intents = self.intents.lock().unwrap_or_else(|e| e.into_inner());
        intents.retain(|_, at| at.elapsed() < INTENT_TTL);
        intents.insert(token.to_string(), Instant::now());
    }

    fn forget(&self, token: &str) {
        let mut intents = self.intents.lock().unwrap_or_else(|e| e.into_inner());
        intents.remove(token);
    }

    /// Searches again after each wait of `settle` until the thread's request
    /// shows: for a create that may have landed but is not indexed yet.
    async fn find_settled(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        for wait in &self.options.settle {
            tokio::time::sleep(*wait).await;
            if let Some(found) = self.find(key).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The oldest request of the thread, searched with the new one reconciled
    /// (Jira then includes it whether or not it is indexed yet).
    async fn oldest(&self, key: &ThreadKey, created: &Created) -> PortResult<Option<Issue>> {
        let what = "reconciling a new request";
        let url = self.url("/rest/api/2/search/jql");
        let mut body = json!({
            "jql": self.thread_jql(key).await?,
            "fields": ["description"],
            "maxResults": 10,
        });
        if let Some(id) = created.issue_id.as_ref().and_then(numeric_id) {
            body["reconcileIssues"] = json!([id]);
        }
        let response = self
            .http
            .send(what, |c| self.auth(c.post(&url)).json(&body))
            .await?;
        let search: Search = self.json(what, response).await?;
        Ok(search.issues.into_iter().next())
    }

    /// Takes the duplicate out of its thread (so no search finds it again) and
    /// says where the thread goes on.
    async fn mark_duplicate(&self, key: &ThreadKey, duplicate: &str, kept: &str) -> PortResult<()> {
        let what = "marking a duplicate request";
        let url = self.url(&format!("/rest/api/2/issue/{duplicate}"));
        let body = json!({"update": {"labels": [
            {"remove": thread_token(key)},
            {"add": DUPLICATE_LABEL},
        ]}});
        self.http
            .send(what, |c| self.auth(c.put(&url)).json(&body))
            .await?;
        let note = format!(
            "rootmail created this request twice (an answer was lost); the thread continues on {kept}."
        );
        self.post_comment(duplicate, &note, false).await.map(drop)
    }

    fn found(&self, issue: Issue) -> FoundTicket {
        // A labelled request without our marker was edited by hand; treat it
        // as created by an unknown message, so every mail becomes a comment.
        let created_from = issue
            .fields
            .description
            .as_deref()
            .and_then(|d| self.key.last_marked(d))
            .unwrap_or_else(|| ContentHash::of(issue.key.as_bytes()));
        FoundTicket {
            id: issue.key,
            created_from,
        }
    }

    /// The thread's request exists: finish what this message left (its
    /// note), or, when another message created it, add this one as a comment.
    async fn complete(&self, found: FoundTicket, ticket: &NewTicket) -> PortResult<String> {
        if found.created_from == ticket.message {
            self.finish_own(&found.id, ticket).await?;
        } else {
            self.comment(&found.id, &ticket.as_comment()).await?;
        }
        self.forget(&thread_token(&ticket.thread_key));
        Ok(found.id)
    }

    /// The request this message created, whose create did not finish (its
    /// answer was lost, or an upload, the attach or the note failed). JSM
    /// takes files only after the create, and the description does not list
    /// the files it attaches, so a file left out would vanish unseen: the
    /// files not on the request yet are attached, then the note. The note
    /// comes last, so when it is there everything is.
    async fn finish_own(&self, key: &str, ticket: &NewTicket) -> PortResult<()> {
        let (message, note) = (&ticket.message, &ticket.internal_note);
        if !note.trim().is_empty() && self.existing_comment(key, message, false).await?.is_some() {
            return Ok(());
        }
        let attachments = self.fit(&ticket.attachments).await;
        if attachments.iter().any(|a| a.bytes().is_some()) {
            // How many files of each name the request has: each one there
            // stands for one of ours (a mail may attach a name twice).
            let mut there: HashMap<String, usize> = HashMap::new();
            for name in self.attachment_names(key).await? {
                *there.entry(name).or_default() += 1;
            }
            let missing: Vec<TicketAttachment> = attachments
                .into_iter()
                .filter(|a| match there.get_mut(&a.name) {
                    Some(count) if *count > 0 => {
                        *count -= 1;
                        false
                    }
                    _ => true,
                })
                .collect();
            let ids = self.upload_all(&missing).await?;
            self.attach(key, &ids, None, true).await?;
        }
        self.internal_note(key, message, note, false).await
    }

    /// The file names of every attachment on request `key` (all pages).
    async fn attachment_names(&self, key: &str) -> PortResult<Vec<String>> {
        #[derive(Deserialize)]
        struct Attachments {
            #[serde(default)]
            values: Vec<Attached>,
            #[serde(rename = "isLastPage", default = "yes")]
            is_last_page: bool,
        }
        #[derive(Deserialize)]
        struct Attached {
            #[serde(default)]
            filename: String,
        }
        let what = "listing attachments";
        let url = self.url(&format!("/rest/servicedeskapi/request/{key}/attachment"));
        let (mut names, mut start) = (Vec::new(), 0usize);
        loop {
            let query = [("start", start.to_string()), ("limit", "100".to_string())];
            let response = self
                .http
                .send(what, |c| self.auth(c.get(&url)).query(&query))
                .await?;
            let page: Attachments = self.json(what, response).await?;
            let read = page.values.len();
            names.extend(page.values.into_iter().map(|a| a.filename));
            if page.is_last_page || read == 0 {
                return Ok(names);
            }
            start += read;
        }
    }

    /// Posts the request, once.
    async fn post_request(
        &self,
        ticket: &NewTicket,
        attachments: &[TicketAttachment],
    ) -> PortResult<Created> {
        let mut fields = json!({
            "summary": summary(&ticket.subject),
            "description": self.text(&ticket.body, attachments, &ticket.message, original_location(&ticket.internal_note)),
            "labels": ["rootmail", thread_token(&ticket.thread_key), ticket.kind.as_str().replace('.', "_")],
        });
        if self.options.set_priority {
            fields["priority"] = json!({"name": priority_name(ticket.priority)});
        }
        let payload = json!({
            "serviceDeskId": self.options.service_desk_id,
            "requestTypeId": self.options.request_type_id,
            "requestFieldValues": fields,
        });
        let what = "creating a request";
        let url = self.url("/rest/servicedeskapi/request");
        let response = self
            .write(what, |c| self.auth(c.post(&url)).json(&payload))
            .await?;
        self.json(what, response).await
    }
}

fn permanent(message: String) -> PortError {
    PortError::permanent(PORT, message)
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn numeric_id(id: &Value) -> Option<u64> {
    match id {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JQL string literal.
fn jql_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The bytes [`inert`] adds around a text.
const NOFORMAT_WRAPPING: usize = "{noformat}\n\n{noformat}".len();

/// Text Jira shows as written: one `{noformat}` block (wiki markup inside is
/// not rendered), in which no `{noformat` can close the block early (a space
/// goes after its brace, whatever its case).
pub fn inert(text: &str) -> String {
    const MACRO: &[u8] = b"{noformat";
    let mut out = String::with_capacity(text.len() + NOFORMAT_WRAPPING + 16);
    out.push_str("{noformat}\n");
    let mut rest = text;
    while let Some(at) = rest.find('{') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        out.push('{');
        let opens = from
            .as_bytes()
            .get(..MACRO.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(MACRO));
        if opens {
            out.push(' ');
        }
        rest = &from[1..];
    }
    out.push_str(rest);
    out.push_str("\n{noformat}");
    out
}

impl TicketSink for Jira {
    fn name(&self) -> &'static str {
        PORT
    }

    fn instance(&self) -> String {
        format!("{PORT} {}", self.options.base_url)
    }

    fn max_attachment_bytes(&self) -> usize {
        self.upload_limit
            .get()
            .copied()
            .unwrap_or(self.options.max_attachment_bytes)
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        let url = self.url("/rest/api/2/search/jql");
        let jql = self.thread_jql(key).await?;
        let query = [
            ("jql", jql.as_str()),
            ("fields", "description"),
            ("maxResults", "1"),
        ];
        let response = self
            .http
            .send("finding a request", |c| {
                self.auth(c.get(&url)).query(&query)
            })
            .await?;
        let search: Search = self.json("finding a request", response).await?;
        Ok(search.issues.into_iter().next().map(|i| self.found(i)))
    }

    /// Idempotent per thread (the `TicketSink` contract): a request already
    /// labelled for the thread is completed and returned, never made twice.
    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        let token = thread_token(&ticket.thread_key);
        // Not asked again when the caller's lookup just found none, unless a
        // create of this process may have landed unseen (search lags).
        let found = match ticket.found_absent && !self.intended(&token) {
            true => None,
            false => match self.find(&ticket.thread_key).await? {
                None if self.intended(&token) => self.find_settled(&ticket.thread_key).await?,
                found => found,
            },
        };
        if let Some(found) = found {
            return self.complete(found, ticket).await;
        }
        let attachments = self.fit(&ticket.attachments).await;
        self.intend(&token);
        let created = match self.post_request(ticket, &attachments).await {
            Ok(created) => created,
            // It may have landed: look (patiently) before leaving it to the queue.
            Err(e) if e.is_transient() => {
                return match self.find_settled(&ticket.thread_key).await? {
                    Some(found) => self.complete(found, ticket).await,
                    None => Err(e),
                };
            }
            // Refused: nothing was made, so there is nothing to look for later.
            Err(e) => {
                self.forget(&token);
                return Err(e);
            }
        };
        match self.oldest(&ticket.thread_key, &created).await {
            Ok(Some(oldest)) if oldest.key != created.issue_key => {
                self.mark_duplicate(&ticket.thread_key, &created.issue_key, &oldest.key)
                    .await?;
                return self.complete(self.found(oldest), ticket).await;
            }
            Ok(_) => {}
            // The request is made; reconciling is a second look, not a condition.
            Err(e) => tracing::warn!(error = %e, "jira: the new request was not reconciled"),
        }
        let ids = self.upload_all(&attachments).await?;
        self.attach(&created.issue_key, &ids, None, true).await?;
        // The request is this call's own: no note can be on it yet.
        self.internal_note(
            &created.issue_key,
            &ticket.message,
            &ticket.internal_note,
            false,
        )
        .await?;
        self.forget(&token);
        Ok(created.issue_key)
    }

    /// Nothing of a first send can be on the request: neither its comment nor
    /// its note is searched for then.
    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        let searched = comment.first_send.is_none();
        let existed = match searched {
            true => {
                self.existing_comment(ticket_id, &comment.message, true)
                    .await?
            }
            false => None,
        };
        let id = match existed {
            Some(id) => id,
            None => self.post_with_files(ticket_id, comment).await?,
        };
        self.internal_note(
            ticket_id,
            &comment.message,
            &comment.internal_note,
            searched,
        )
        .await?;
        Ok(PostedComment::on(ticket_id, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_fits_jiras_limit_in_utf16_units() {
        let emoji = format!("[Acme / 123456789012] {}", "\u{1F600}".repeat(228));
        assert_eq!(emoji.chars().count(), 250);
        let cut = summary(&emoji);
        assert!(cut.encode_utf16().count() <= MAX_SUMMARY_UNITS);
        assert_eq!(
            cut.encode_utf16().count(),
            254,
            "whole characters, as many as fit"
        );
        assert!(emoji.starts_with(cut));
        let plain = "x".repeat(250);
        assert_eq!(summary(&plain), plain);
    }

    #[test]
    fn inert_text_cannot_close_its_block() {
        let text = inert("a {noformat} b {NoFormat:title=x} c {color:red}x{color} {");
        assert_eq!(
            text,
            "{noformat}\na { noformat} b { NoFormat:title=x} c {color:red}x{color} {\n{noformat}"
        );
        assert_eq!(text.matches("{noformat}").count(), 2);
    }

    #[test]
    fn stored_text_stays_within_jira_s_limit_however_it_is_written() {
        let marker = "rootmail-marker ".repeat(6);
        for text in [
            "{noformat".repeat(4_000),
            "x".repeat(40_000),
            "{NOFORMAT}".repeat(5_000),
            "日本".repeat(20_000),
            "🙂{noformat".repeat(4_000),
        ] {
            let stored = stored_text(&marker, &text, Some("s3://mail/1"));
            let units = stored.encode_utf16().count();
            assert!(units <= MAX_TEXT_UNITS, "{units} units");
            assert!(stored.ends_with(&marker));
        }
    }

    /// Jira counts characters: Japanese mail keeps as many as Latin mail
    /// (a byte cap kept a third), and a mail within the limit is whole.
    #[test]
    fn jira_s_limit_is_counted_in_its_own_units() {
        let marker = "m";
        let japanese = "日本".repeat(12_000);
        let stored = stored_text(marker, &japanese, None);
        assert!(!stored.contains("bytes cut"), "24,000 characters fit");
        let longer = "日本".repeat(20_000);
        let stored = stored_text(marker, &longer, None);
        let kept = stored.matches('日').count() + stored.matches('本').count();
        assert!(kept > 25_000, "{kept} characters kept");
    }

    #[test]
    fn inert_text_handles_multi_byte_characters() {
        assert_eq!(inert("日本{ü"), "{noformat}\n日本{ü\n{noformat}");
    }

    /// Hostile input stays linear: twice the braces, about twice the time.
    #[test]
    fn inert_is_linear() {
        let time = |n: usize| {
            let text = "{noformat{".repeat(n);
            let start = std::time::Instant::now();
            assert!(inert(&text).len() > text.len());
            start.elapsed()
        };
        time(10_000);
        let (small, large) = (time(100_000), time(200_000));
        assert!(large < small * 4, "{small:?} then {large:?}");
    }
}
