//! The private Request Tracker that `scripts/with-rt` starts, and a small REST 2.0
//! reader to check what rootmail left in it: tickets of a queue, their
//! transactions, and their attachments with content.

use rootmail_pipeline::AttachmentContent;
use rootmail_tickets::{HttpClient, RetryPolicy, Rt, RtCredentials, RtOptions};
use serde_json::{Value, json};
use std::time::Duration;

/// The RT that `scripts/with-rt` started for this test run.
#[derive(Debug, Clone)]
pub struct RtServer {
    pub url: String,
    pub user: String,
    pub password: String,
    pub thread_field: String,
    http: HttpClient,
}

#[derive(Debug, Clone)]
pub struct RtTicket {
    pub id: String,
    pub subject: String,
    pub priority: i64,
    pub thread_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RtTransaction {
    pub id: String,
    /// `Create`, `Correspond`, `Comment`, `Set`, `CustomField`...
    pub kind: String,
    /// The whole transaction as RT returns it (for secret checks).
    pub raw: Value,
}

#[derive(Debug, Clone)]
pub struct RtAttachment {
    pub id: String,
    pub transaction_id: String,
    pub content_type: String,
    pub filename: String,
    /// As the collection returns it: text for text parts.
    pub content: String,
    /// The whole attachment as RT returns it, headers included.
    pub raw: Value,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl RtServer {
    /// The RT of `scripts/with-rt`, from `ROOTMAIL_TEST_RT_*`.
    pub fn from_env() -> Self {
        let url = env("ROOTMAIL_TEST_RT_URL").unwrap_or_else(|| {
            panic!(
                "ROOTMAIL_TEST_RT_URL is not set: run under scripts/with-rt \
                 (e.g. scripts/with-rt cargo test -p rootmail-tests --test it rt_end_to_end; \
                 make test does), which starts a private Request Tracker 5"
            )
        });
        let http = HttpClient::new(
            "rt",
            Duration::from_secs(30),
            RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
            },
        )
        .expect("HTTP client");
        Self {
            url: url.trim_end_matches('/').to_string(),
            user: env("ROOTMAIL_TEST_RT_USER").unwrap_or_else(|| "root".into()),
            password: env("ROOTMAIL_TEST_RT_PASSWORD").unwrap_or_else(|| "password".into()),
            thread_field: env("ROOTMAIL_TEST_RT_THREAD_FIELD")
                .unwrap_or_else(|| "RootmailThread".into()),
            http,
        }
    }

    /// The secret's JSON, as `TICKET_CREDENTIALS` takes it.
    pub fn credentials_json(&self) -> String {
        json!({"user": self.user, "password": self.password}).to_string()
    }

    pub fn credentials(&self) -> RtCredentials {
        serde_json::from_str(&self.credentials_json()).expect("RT credentials")
    }

    /// rootmail's RT backend writing to `queue`.
    pub fn sink(&self, queue: &str) -> Rt {
        let mut options = RtOptions::new(&self.url);
        options.queue = queue.to_string();
        options.thread_field = self.thread_field.clone();
        Rt::new(self.http.clone(), options, self.credentials(), marker_key())
    }

    /// A new queue with a name no other test or run uses, so each test sees only
    /// its own tickets (the thread field is global, so it applies).
    pub async fn create_queue(&self, label: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{label}-{}-{nanos}", std::process::id());
        let body = json!({"Name": name, "Description": "rootmail test"});
        let response = self
            .http
            .send("creating a queue", |c| {
                c.post(self.api("/queue"))
                    .basic_auth(&self.user, Some(&self.password))
                    .json(&body)
            })
            .await
            .expect("queue created");
        assert_eq!(response.status().as_u16(), 201, "creating queue {name}");
        name
    }

    fn api(&self, path: &str) -> String {
        format!("{}/REST/2.0{path}", self.url)
    }

    /// GET and parse the answer.
    async fn read(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let url = self.api(path);
        let response = self
            .http
            .send(path, |c| {
                c.get(&url)
                    .basic_auth(&self.user, Some(&self.password))
                    .query(query)
            })
            .await
            .unwrap_or_else(|e| panic!("reading {path} from RT: {e}"));
        assert!(
            response.status().is_success(),
            "reading {path}: HTTP {}",
            response.status()
        );
        response.json().await.expect("RT answers JSON")
    }

    /// Every item of a collection, page by page.
    async fn all(&self, path: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut items = Vec::new();
        for page in 1.. {
            let page_text = page.to_string();
            let mut q = query.to_vec();
            q.push(("per_page", "100"));
            q.push(("page", &page_text));
            let answer = self.read(path, &q).await;
            let got = answer["items"].as_array().cloned().unwrap_or_default();
            let done = got.len() < 100;
            items.extend(got);
            if done {
                break;
            }
        }
        items
    }

    /// The tickets of `queue`, by id.
    pub async fn tickets(&self, queue: &str) -> Vec<RtTicket> {
        let query = format!("Queue = '{queue}'");
        let items = self
            .all(
                "/tickets",
                &[
                    ("query", &query),
                    ("orderby", "id"),
                    ("fields", "Subject,Priority,CustomFields"),
                ],
            )
            .await;
        items
            .iter()
            .map(|t| RtTicket {
                id: text(&t["id"]),
                subject: text(&t["Subject"]),
                priority: text(&t["Priority"]).parse().unwrap_or(-1),
                thread_key: t["CustomFields"].as_array().and_then(|fields| {
                    fields
                        .iter()
                        .find(|f| f["name"] == self.thread_field.as_str())
                        .and_then(|f| f["values"].get(0))
                        .map(text)
                }),
            })
            .collect()
    }

    /// A ticket's transactions, oldest first, with every field RT shows.
    pub async fn history(&self, ticket_id: &str) -> Vec<RtTransaction> {
        let items = self
            .all(
                &format!("/ticket/{ticket_id}/history"),
                &[
                    ("orderby", "id"),
                    ("fields", "Type,Field,OldValue,NewValue,Data,Description"),
                ],
            )
            .await;
        items
            .into_iter()
            .map(|t| RtTransaction {
                id: text(&t["id"]),
                kind: text(&t["Type"]),
                raw: t,
            })
            .collect()
    }

    /// A ticket's attachments (MIME parts of its transactions), oldest first.
    pub async fn attachments(&self, ticket_id: &str) -> Vec<RtAttachment> {
        let items = self
            .all(
                &format!("/ticket/{ticket_id}/attachments"),
                &[
                    ("orderby", "id"),
                    (
                        "fields",
                        "TransactionId,ContentType,Filename,Subject,Headers,Content",
                    ),
                ],
            )
            .await;
        items
            .into_iter()
            .map(|a| RtAttachment {
                id: text(&a["id"]),
                transaction_id: text(&a["TransactionId"]),
                content_type: text(&a["ContentType"]),
                filename: text(&a["Filename"]),
                content: text(&a["Content"]),
                raw: a,
            })
            .collect()
    }

    /// An attachment's exact bytes (RT sends them base64-encoded).
    pub async fn attachment_bytes(&self, attachment_id: &str) -> Vec<u8> {
        let answer = self
            .read(&format!("/attachment/{attachment_id}"), &[])
            .await;
        let encoded = answer["Content"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', "");
        // The pipeline's own base64 decoding (the form it sends uploads in).
        match serde_json::from_value(json!({ "upload": encoded })).expect("base64 content") {
            AttachmentContent::Upload(bytes) => bytes,
            AttachmentContent::Listed { .. } => unreachable!("an upload was decoded"),
        }
    }

    /// Creates a ticket the way rootmail's create does, without its note (to
    /// stage a crash between the two).
    pub async fn create_ticket(
        &self,
        queue: &str,
        subject: &str,
        content: &str,
        thread_key: &str,
    ) -> String {
        let body = json!({
            "Queue": queue,
            "Subject": subject,
            "Content": content,
            "ContentType": "text/plain",
            "CustomFields": { self.thread_field.as_str(): thread_key },
        });
        let response = self
            .http
            .send("creating a ticket", |c| {
                c.post(self.api("/ticket"))
                    .basic_auth(&self.user, Some(&self.password))
                    .json(&body)
            })
            .await
            .expect("ticket created");
        assert_eq!(response.status().as_u16(), 201);
        let created: Value = response.json().await.expect("RT answers JSON");
        text(&created["id"])
    }

    /// Adds a correspondence the way rootmail does, without rootmail (to
    /// stage a crash between a correspondence and its note).
    /// What an agent's Delete does: the ticket's status becomes `deleted`.
    pub async fn delete_ticket(&self, ticket_id: &str) {
        let response = self
            .http
            .send("deleting a ticket", |c| {
                c.delete(self.api(&format!("/ticket/{ticket_id}")))
                    .basic_auth(&self.user, Some(&self.password))
            })
            .await
            .expect("deleted");
        assert!(response.status().is_success(), "{}", response.status());
    }

    pub async fn correspond(&self, ticket_id: &str, content: &str) {
        let body = json!({"Content": content, "ContentType": "text/plain"});
        let response = self
            .http
            .send("corresponding", |c| {
                c.post(self.api(&format!("/ticket/{ticket_id}/correspond")))
                    .basic_auth(&self.user, Some(&self.password))
                    .json(&body)
            })
            .await
            .expect("correspondence");
        assert_eq!(response.status().as_u16(), 201);
    }
}

/// RT sends ids and numbers as strings in some places and numbers in others.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The key the tests' RT backends sign markers with (a deployment has its own).
pub fn marker_key() -> rootmail_tickets::MarkerKey {
    rootmail_tickets::MarkerKey::new(b"rootmail-tests-rt-marker-key-0123456789abcdef")
        .expect("a long enough key")
}
