//! A stateful webhook receiver on loopback that follows the webhook contract
//! (idempotency keys on creates and comments, lookup by thread key) and can fail
//! a share of requests the way real APIs do: 500 before or after doing the work,
//! and 429 with `Retry-After`.

use crate::XorShift;
use axum::Router;
use axum::extract::State;
use rootmail_fake_http::{FakeHttp, Received, Reply};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeComment {
    pub id: String,
    pub message: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTicket {
    pub id: String,
    pub thread_key: String,
    pub created_from: String,
    pub subject: String,
    pub body: String,
    pub priority: String,
    pub internal_note: String,
    /// (file name, decoded bytes) of the attachments uploaded with the ticket.
    pub attachments: Vec<(String, Vec<u8>)>,
    pub comments: Vec<FakeComment>,
}

#[derive(Default)]
struct Receiver {
    tickets: Vec<FakeTicket>,
    /// Idempotency key -> (id it produced, body it was sent with).
    keys: HashMap<String, (String, String)>,
    next_id: u64,
    requests: u64,
    failed: u64,
    /// Percent of requests failed on purpose.
    failure_percent: u64,
    /// Requests refused for a missing or wrong signature.
    unsigned: u64,
    rng: Option<XorShift>,
}

type Shared = Arc<Mutex<Receiver>>;

pub struct WebhookServer {
    state: Shared,
    _server: FakeHttp,
    pub url: String,
}

impl WebhookServer {
    /// A receiver that answers every request correctly.
    pub fn start() -> Self {
        Self::flaky(0, 1)
    }

    /// A receiver that fails `failure_percent` of requests (deterministic per `seed`).
    pub fn flaky(failure_percent: u64, seed: u64) -> Self {
        let state = Arc::new(Mutex::new(Receiver {
            failure_percent,
            rng: Some(XorShift::new(seed)),
            next_id: 1000,
            ..Receiver::default()
        }));
        let server = FakeHttp::start(Router::new().fallback(handle).with_state(state.clone()));
        Self {
            state,
            url: format!("{}/hook", server.url()),
            _server: server,
        }
    }

    /// An agent deletes ticket `id`: it is listed no more, its comments
    /// answer 404, and the keys it was made under still name it.
    pub fn delete(&self, id: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.tickets.retain(|t| t.id != id);
    }

    pub fn tickets(&self) -> Vec<FakeTicket> {
        self.state.lock().expect("state").tickets.clone()
    }

    /// (requests answered, requests failed on purpose)
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state.lock().expect("state");
        (state.requests, state.failed)
    }

    /// Requests refused because their HMAC signature was missing or wrong.
    pub fn unsigned(&self) -> u64 {
        self.state.lock().expect("state").unsigned
    }

    pub fn failure_percent(&self) -> u64 {
        self.state.lock().expect("state").failure_percent
    }
}

enum Failure {
    None,
    Before500,
    After500,
    TooMany,
}

async fn handle(State(state): State<Shared>, request: Received) -> Reply {
    if let Err(why) = check_signature(&request) {
        state.lock().expect("state").unsigned += 1;
        return Reply::json(401, json!({"error": why}));
    }
    let failure = {
        let mut s = state.lock().expect("state");
        s.requests += 1;
        let roll = s.rng.as_mut().map_or(100, |r| r.next_u64() % 100);
        if roll < s.failure_percent {
            s.failed += 1;
            match roll % 3 {
                0 => Failure::Before500,
                1 => Failure::After500,
                _ => Failure::TooMany,
            }
        } else {
            Failure::None
        }
    };
    match failure {
        Failure::Before500 => return Reply::json(500, json!({"error": "injected"})),
        Failure::TooMany => {
            return Reply::json(429, json!({"error": "slow down"})).header("Retry-After", "0");
        }
        Failure::None | Failure::After500 => {}
    }
    let (status, answer) = route(&request, &mut state.lock().expect("state"));
    if matches!(failure, Failure::After500) {
        // The work is done but the answer is lost: the client must not repeat it.
        Reply::json(502, json!({"error": "injected after the effect"}))
    } else {
        Reply::json(status, answer)
    }
}

fn route(request: &Received, s: &mut Receiver) -> (u16, Value) {
    let key = request.header("Idempotency-Key").map(str::to_string);
    let body = String::from_utf8_lossy(&request.body);
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["hook", "tickets"]) => {
            let wanted = request.query_param("thread_key").unwrap_or_default();
            let found: Vec<Value> = s
                .tickets
                .iter()
                .filter(|t| t.thread_key == wanted)
                .map(|t| json!({"id": t.id, "created_from": t.created_from}))
                .collect();
            (200, json!({"tickets": found}))
        }
        ("POST", ["hook", "tickets"]) => idempotent_post(s, key, &body, |s, new, id| {
            let text = |name: &str| new[name].as_str().unwrap_or_default().to_string();
            s.tickets.push(FakeTicket {
                id,
                thread_key: text("thread_key"),
                created_from: text("message"),
                subject: text("subject"),
                body: text("body"),
                priority: text("priority"),
                internal_note: text("internal_note"),
                attachments: uploaded(new),
                comments: Vec::new(),
            });
            Ok(())
        }),
        ("POST", ["hook", "tickets", ticket, "comments"]) => {
            idempotent_post(s, key, &body, |s, new, id| {
                let Some(ticket) = s.tickets.iter_mut().find(|t| t.id == *ticket) else {
                    return Err((404, json!({"error": "no such ticket"})));
                };
                ticket.comments.push(FakeComment {
                    id,
                    message: new["message"].as_str().unwrap_or_default().to_string(),
                    body: new["body"].as_str().unwrap_or_default().to_string(),
                });
                Ok(())
            })
        }
        _ => (404, json!({"error": "no such route"})),
    }
}

/// The webhook contract's signature:
/// `t=<secs>,v2=<hex HMAC-SHA256("<secs>\n<METHOD>\n<target>\n<Idempotency-Key>\n<body>")>`
/// with the test stacks' key, compared in constant time. Computed here
/// independently of the client's code.
fn check_signature(request: &Received) -> Result<(), &'static str> {
    use hmac::Mac;
    let header = request
        .header("X-Rootmail-Signature")
        .ok_or("no X-Rootmail-Signature")?;
    let (t, v2) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v2=")?)))
        .ok_or("malformed signature")?;
    let claimed = hex::decode(v2).map_err(|_| "malformed signature")?;
    let key = request.header("Idempotency-Key").unwrap_or_default();
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(crate::aws::WEBHOOK_HMAC_KEY.as_bytes())
            .map_err(|_| "bad key")?;
    mac.update(format!("{t}\n{}\n{}\n{key}\n", request.method, request.target()).as_bytes());
    mac.update(&request.body);
    if mac.verify_slice(&claimed).is_err() {
        return Err("signature does not match");
    }
    let age = crate::now_secs().abs_diff(t.parse::<u64>().map_err(|_| "bad timestamp")?);
    if age > 300 {
        return Err("stale signature");
    }
    Ok(())
}

/// A create under an `Idempotency-Key`: required, answered again from memory
/// for a repeated key, else `apply` stores the new item under a fresh id.
fn idempotent_post(
    s: &mut Receiver,
    key: Option<String>,
    body: &str,
    apply: impl FnOnce(&mut Receiver, &Value, String) -> Result<(), (u16, Value)>,
) -> (u16, Value) {
    let Some(key) = key else {
        return (400, json!({"error": "Idempotency-Key is required"}));
    };
    if let Some(answer) = replay(s, &key, body) {
        return answer;
    }
    let Ok(new) = serde_json::from_str::<Value>(body) else {
        return (400, json!({"error": "body is not JSON"}));
    };
    let id = next_id(s);
    if let Err(refused) = apply(s, &new, id.clone()) {
        return refused;
    }
    s.keys.insert(key, (id.clone(), body.to_string()));
    (201, json!({"id": id}))
}

/// The same key again: the same answer, or 400 when the body differs (as Zendesk does).
fn replay(s: &Receiver, key: &str, body: &str) -> Option<(u16, Value)> {
    let (id, first_body) = s.keys.get(key)?;
    Some(if first_body == body {
        (200, json!({"id": id}))
    } else {
        (400, json!({"error": "IdempotentRequestError"}))
    })
}

/// The attachments sent with their bytes (`content.upload`, base64).
fn uploaded(new: &Value) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    new["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let bytes = a["content"]["upload"].as_str()?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(bytes)
                .ok()?;
            Some((a["name"].as_str()?.to_string(), bytes))
        })
        .collect()
}

fn next_id(s: &mut Receiver) -> String {
    s.next_id += 1;
    s.next_id.to_string()
}
