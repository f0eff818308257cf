//! A stand-in for the Lambda Runtime API on loopback, so the functions' real
//! binaries (their `main.rs`: config, SDK setup, `lambda_runtime::run`) can be
//! run as Lambda runs them: they ask for the next event and post the answer.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rootmail_fake_http::{FakeHttp, Received, Reply};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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
struct Invocations {
    events: VecDeque<(String, Value)>,
    answers: Vec<Answer>,
    /// When a function first asked for an event: the end of its cold start.
    first_next: Option<Instant>,
}

type Shared = Arc<(Mutex<Invocations>, Condvar)>;

pub struct RuntimeApi {
    state: Shared,
    _server: FakeHttp,
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
}

impl RuntimeApi {
    /// Serves `events` one per invocation, with request ids `req-0`, `req-1`...
    pub fn start(events: Vec<Value>) -> Self {
        let events = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (format!("req-{i}"), e))
            .collect();
        let state: Shared = Arc::new((
            Mutex::new(Invocations {
                events,
                ..Invocations::default()
            }),
            Condvar::new(),
        ));
        let server = FakeHttp::start(
            Router::new()
                .route(&format!("{PREFIX}/invocation/next"), get(next))
                .route(
                    &format!("{PREFIX}/invocation/{{id}}/{{kind}}"),
                    post(answer),
                )
                .route(&format!("{PREFIX}/init/error"), post(StatusCode::ACCEPTED))
                .with_state(state.clone()),
        );
        Self {
            state,
            address: server.address().to_string(),
            _server: server,
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

    /// When the function first asked for an event (its init done), waiting up
    /// to `timeout` for it.
    pub fn first_next(&self, timeout: Duration) -> Option<Instant> {
        let (lock, ready) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().expect("state");
        while state.first_next.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = ready.wait_timeout(state, left).expect("state").0;
        }
        state.first_next
    }

    /// Starts `binary` as Lambda starts `function`'s bootstrap against this
    /// stand-in: Lambda's variables, the AWS settings that reach moto
    /// ([`crate::aws::process_env`]), then the function's own `env`. Its
    /// output is piped.
    pub fn spawn(
        &self,
        binary: &std::path::Path,
        function: &str,
        env: &[(&'static str, String)],
    ) -> std::process::Child {
        std::process::Command::new(binary)
            .envs(self.lambda_env(function))
            .envs(crate::aws::process_env())
            .envs(env.iter().cloned())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()))
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

/// The next event, or (with none left) a request held open, as Lambda holds
/// it until there is an invocation.
async fn next(State(state): State<Shared>) -> Response {
    let event = {
        let mut invocations = state.0.lock().expect("state");
        invocations.first_next.get_or_insert_with(Instant::now);
        state.1.notify_all();
        invocations.events.pop_front()
    };
    let Some((id, event)) = event else {
        return std::future::pending().await;
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        + 60_000;
    Reply::json(200, event)
        .header("Lambda-Runtime-Aws-Request-Id", &id)
        .header("Lambda-Runtime-Deadline-Ms", &deadline.to_string())
        .header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:123456789012:function:test",
        )
        .header(
            "Lambda-Runtime-Trace-Id",
            "Root=1-00000000-000000000000000000000000",
        )
        .into_response()
}

/// `POST .../invocation/{id}/response` or `.../{id}/error`.
async fn answer(
    State(state): State<Shared>,
    Path((id, kind)): Path<(String, String)>,
    request: Received,
) -> StatusCode {
    let body = request.json();
    let body = if body.is_null() {
        Value::String(String::from_utf8_lossy(&request.body).into_owned())
    } else {
        body
    };
    let (lock, ready) = &*state;
    lock.lock().expect("state").answers.push(Answer {
        request_id: id,
        kind,
        body,
    });
    ready.notify_all();
    StatusCode::ACCEPTED
}
