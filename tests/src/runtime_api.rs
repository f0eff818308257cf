//! A stand-in for the Lambda Runtime API on loopback, so the functions' real
//! binaries (their `main.rs`: config, SDK setup, `lambda_runtime::run`) can be
//! run as Lambda runs them: they ask for the next event and post the answer.

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response, Server};

const PREFIX: &str = "/2018-06-01/runtime";

/// What a function posted back for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub request_id: String,
    /// `response`, or `error` when the handler failed.
    pub kind: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    events: VecDeque<(String, Value)>,
    answers: Vec<Answer>,
    /// `next` requests with no event to give: held open, as Lambda does.
    waiting: Vec<Request>,
}

pub struct RuntimeApi {
    server: Arc<Server>,
    state: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
}

impl RuntimeApi {
    /// Serves `events` one per invocation, with request ids `req-0`, `req-1`...
    pub fn start(events: Vec<Value>) -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind runtime api"));
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let queued = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (format!("req-{i}"), e))
            .collect();
        let state = Arc::new((
            Mutex::new(State {
                events: queued,
                ..State::default()
            }),
            Condvar::new(),
        ));
        let thread = {
            let (server, state) = (server.clone(), state.clone());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    handle(request, &state);
                }
            })
        };
        Self {
            server,
            state,
            thread: Some(thread),
            address: format!("127.0.0.1:{port}"),
        }
    }

    /// Waits until `n` answers were posted (or `timeout` passed) and returns them.
    pub fn answers(&self, n: usize, timeout: Duration) -> Vec<Answer> {
        let (lock, ready) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().expect("state");
        while state.answers.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = ready.wait_timeout(state, left).expect("state").0;
        }
        state.answers.clone()
    }

    /// The environment Lambda gives a function, pointing at this stand-in.
    pub fn lambda_env(&self, function: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test".to_string()),
        ]
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header")
}

fn handle(mut request: Request, state: &(Mutex<State>, Condvar)) {
    let (lock, ready) = state;
    let url = request.url().to_string();
    let Some(path) = url.strip_prefix(PREFIX) else {
        let _ = request.respond(Response::empty(404));
        return;
    };
    match (request.method(), path) {
        (Method::Get, "/invocation/next") => {
            let mut state = lock.lock().expect("state");
            let Some((id, event)) = state.events.pop_front() else {
                state.waiting.push(request);
                return;
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
                + 60_000;
            let response = Response::from_string(event.to_string())
                .with_header(header("Content-Type", "application/json"))
                .with_header(header("Lambda-Runtime-Aws-Request-Id", &id))
                .with_header(header("Lambda-Runtime-Deadline-Ms", &deadline.to_string()))
                .with_header(header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:test",
                ))
                .with_header(header(
                    "Lambda-Runtime-Trace-Id",
                    "Root=1-00000000-000000000000000000000000",
                ));
            let _ = request.respond(response);
        }
        (Method::Post, path) => {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            if let ["invocation", id, kind] = parts.as_slice() {
                let answer = Answer {
                    request_id: id.to_string(),
                    kind: kind.to_string(),
                    body: serde_json::from_str(&body).unwrap_or(Value::String(body.clone())),
                };
                lock.lock().expect("state").answers.push(answer);
                ready.notify_all();
            }
            let _ = request.respond(Response::empty(202));
        }
        _ => {
            let _ = request.respond(Response::empty(404));
        }
    }
}
