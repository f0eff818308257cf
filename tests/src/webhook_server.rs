//! A stateful webhook receiver on loopback that follows the webhook contract
//! (idempotency keys on creates and comments, lookup by thread key) and can fail
//! a share of requests the way real APIs do: 500 before or after doing the work,
//! and 429 with `Retry-After`.

use crate::XorShift;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tiny_http::{Header, Method, Request, Response, Server};

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
struct State {
    tickets: Vec<FakeTicket>,
    /// Idempotency key -> (id it produced, body it was sent with).
    keys: HashMap<String, (String, String)>,
    next_id: u64,
    requests: u64,
    failed: u64,
    /// Requests refused for a missing or wrong signature.
    unsigned: u64,
    rng: Option<XorShift>,
}

pub struct WebhookServer {
    server: Arc<Server>,
    state: Arc<Mutex<State>>,
    failure_percent: u64,
    thread: Option<JoinHandle<()>>,
    pub url: String,
}

impl WebhookServer {
    /// A receiver that answers every request correctly.
    pub fn start() -> Self {
        Self::flaky(0, 1)
    }

    /// A receiver that fails `failure_percent` of requests (deterministic per `seed`).
    pub fn flaky(failure_percent: u64, seed: u64) -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind webhook server"));
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let state = Arc::new(Mutex::new(State {
            rng: Some(XorShift::new(seed)),
            next_id: 1000,
            ..State::default()
        }));
        let thread = {
            let (server, state) = (server.clone(), state.clone());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    handle(request, &state, failure_percent);
                }
            })
        };
        Self {
            server,
            state,
            failure_percent,
            thread: Some(thread),
            url: format!("http://127.0.0.1:{port}/hook"),
        }
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
        self.failure_percent
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

enum Failure {
    None,
    Before500,
    After500,
    TooMany,
}

fn handle(mut request: Request, state: &Mutex<State>, failure_percent: u64) {
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    if let Err(why) = check_signature(&request, &body) {
        state.lock().expect("state").unsigned += 1;
        return respond(request, 401, json!({"error": why}));
    }
    let failure = {
        let mut s = state.lock().expect("state");
        s.requests += 1;
        let roll = s.rng.as_mut().map_or(100, |r| r.next_u64() % 100);
        if roll < failure_percent {
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
        Failure::Before500 => return respond(request, 500, json!({"error": "injected"})),
        Failure::TooMany => {
            let response = Response::from_string("{\"error\":\"slow down\"}")
                .with_status_code(429)
                .with_header(header("Retry-After", "0"));
            let _ = request.respond(response);
            return;
        }
        Failure::None | Failure::After500 => {}
    }
    let (status, answer) = route(&request, &body, state);
    if matches!(failure, Failure::After500) {
        // The work is done but the answer is lost: the client must not repeat it.
        respond(request, 502, json!({"error": "injected after the effect"}))
    } else {
        respond(request, status, answer)
    }
}

fn route(request: &Request, body: &str, state: &Mutex<State>) -> (u16, Value) {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let key = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Idempotency-Key"))
        .map(|h| h.value.to_string());
    let mut s = state.lock().expect("state");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (request.method(), segments.as_slice()) {
        (Method::Get, ["hook", "tickets"]) => {
            let wanted = query
                .split('&')
                .find_map(|p| p.strip_prefix("thread_key="))
                .map(decode)
                .unwrap_or_default();
            let found: Vec<Value> = s
                .tickets
                .iter()
                .filter(|t| t.thread_key == wanted)
                .map(|t| json!({"id": t.id, "created_from": t.created_from}))
                .collect();
            (200, json!({"tickets": found}))
        }
        (Method::Post, ["hook", "tickets"]) => idempotent_post(&mut s, key, body, |s, new, id| {
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
        (Method::Post, ["hook", "tickets", ticket, "comments"]) => {
            idempotent_post(&mut s, key, body, |s, new, id| {
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

/// The webhook contract's signature: `t=<secs>,v1=<hex HMAC-SHA256("<secs>.<signed>")>`
/// with the test stacks' key, over the body of a POST or the target of a GET.
/// Computed here independently of the client's code.
fn check_signature(request: &Request, body: &str) -> Result<(), &'static str> {
    use hmac::Mac;
    let header = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("X-Rootmail-Signature"))
        .map(|h| h.value.to_string())
        .ok_or("no X-Rootmail-Signature")?;
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .ok_or("malformed signature")?;
    let signed = match request.method() {
        Method::Get => request.url().to_string(),
        _ => body.to_string(),
    };
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(crate::aws::WEBHOOK_HMAC_KEY.as_bytes())
            .map_err(|_| "bad key")?;
    mac.update(format!("{t}.{signed}").as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    if expected != v1 {
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
    s: &mut State,
    key: Option<String>,
    body: &str,
    apply: impl FnOnce(&mut State, &Value, String) -> Result<(), (u16, Value)>,
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
fn replay(s: &State, key: &str, body: &str) -> Option<(u16, Value)> {
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

fn next_id(s: &mut State) -> String {
    s.next_id += 1;
    s.next_id.to_string()
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header")
}

fn respond(request: Request, status: u16, body: Value) {
    let response = Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"));
    let _ = request.respond(response);
}
