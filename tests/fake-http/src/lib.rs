//! The tests' one way to fake an HTTP API: an axum [`Router`] served on
//! 127.0.0.1 from a thread and a tokio runtime of its own, so a fake starts the
//! same from a plain `#[test]` and from a `#[tokio::test]`, keeps answering
//! while the test blocks, and can hold a request open (the Lambda runtime API's
//! `next`) or do async work of its own (an S3 put) without the test's runtime.
//!
//! - [`FakeHttp::start`] serves a router; [`FakeHttp::recording`] also keeps
//!   every request it received ([`Received`]: method, path, query, headers,
//!   body), routed or not, for request-shape assertions.
//! - [`Received`] is also an extractor: a handler that wants the whole request
//!   takes it as its argument.
//! - [`Reply`] is a canned answer and [`in_turn`] a list of them answered one
//!   after the other; both are handlers as they are (`get(Reply::status(503))`).
//!
//! Dropping a [`FakeHttp`] stops its thread: the port closes and requests
//! held open are dropped.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<Received>>>;

/// A router served on a free loopback port until dropped.
pub struct FakeHttp {
    address: SocketAddr,
    log: Option<Log>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHttp {
    /// Serves `router` on 127.0.0.1, on a free port.
    pub fn start(router: Router) -> Self {
        Self::serve(router, None)
    }

    /// Serves `router` and records every request it receives, in order,
    /// including those no route matched.
    pub fn recording(router: Router) -> Self {
        let log = Log::default();
        let router = router.layer(from_fn_with_state(log.clone(), record));
        Self::serve(router, Some(log))
    }

    fn serve(router: Router, log: Option<Log>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let address = listener.local_addr().expect("the bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // The fake's own thread and runtime: it answers while the test's
        // thread (or runtime) is blocked waiting for something else.
        let thread = std::thread::Builder::new()
            .name(format!("fake-http-{}", address.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the fake's runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    tokio::select! {
                        served = axum::serve(listener, router) => served.expect("serve the fake"),
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime drops every connection, and with them
                // the requests held open.
            })
            .expect("the fake's thread");
        Self {
            address,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every request received so far, in order (a [`FakeHttp::recording`] only).
    pub fn requests(&self) -> Vec<Received> {
        let log = self
            .log
            .as_ref()
            .expect("requests are kept by FakeHttp::recording only");
        log.lock().expect("the request log").clone()
    }
}

impl Drop for FakeHttp {
    /// Stops the server and waits for its thread: the port is closed when
    /// this returns.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// The path as sent (percent-encoded).
    pub path: String,
    /// The query as sent, without the `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// `"POST /api/v2/tickets"`.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The request target as sent: the path and, when there is one, `?` and the query.
    pub fn target(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }

    /// A header's value, when it is present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The query's name-value pairs, decoded (`+` and `%XX`), in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_deref().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The first value of the query parameter `name`, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find_map(|(k, v)| (k == name).then_some(v))
    }

    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    async fn read(request: Request) -> Self {
        let (parts, body) = request.into_parts();
        Self {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers,
            body: read_body(body).await,
        }
    }
}

/// A handler that wants the whole request takes a [`Received`].
impl<S: Send + Sync> FromRequest<S> for Received {
    type Rejection = Infallible;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::read(request).await)
    }
}

/// The recording layer: keeps a copy of the request, then passes it on with
/// its parts (extensions included: routing has put the path parameters there).
async fn record(State(log): State<Log>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = read_body(body).await;
    log.lock().expect("the request log").push(Received {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// A body that breaks off reads as empty: a fake answers anyway.
async fn read_body(body: Body) -> Bytes {
    axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default()
}

/// A canned answer: a status, headers and a body. It is a handler as it is.
#[derive(Debug, Clone)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Reply {
    /// This status and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("an HTTP status"),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// This status and `body` of this content type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            ..Self::status(status)
        }
        .header("content-type", content_type)
    }

    /// This status and `body` as JSON.
    pub fn json(status: u16, body: Value) -> Self {
        Self::new(status, "application/json", body.to_string())
    }

    /// This status and `body` as plain text.
    pub fn text(status: u16, body: &str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.to_string())
    }

    /// The same answer with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((
            HeaderName::try_from(name).expect("a header name"),
            HeaderValue::try_from(value).expect("a header value"),
        ));
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// Answers `replies` one per request, then the last one again and again:
/// `in_turn([Reply::status(429).header("Retry-After", "1"), Reply::json(201, ..)])`.
pub fn in_turn(replies: impl IntoIterator<Item = Reply>) -> InTurn {
    let replies: Arc<[Reply]> = replies.into_iter().collect();
    assert!(!replies.is_empty(), "at least one reply");
    InTurn {
        replies,
        next: Arc::default(),
    }
}

/// See [`in_turn`]. axum clones a handler for each request; the clones share
/// the turn.
#[derive(Debug, Clone)]
pub struct InTurn {
    replies: Arc<[Reply]>,
    next: Arc<AtomicUsize>,
}

impl IntoResponse for InTurn {
    fn into_response(self) -> Response {
        let turn = self.next.fetch_add(1, Ordering::SeqCst);
        self.replies[turn.min(self.replies.len() - 1)]
            .clone()
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;

    /// One HTTP/1.1 exchange over a plain socket: the answer's status line and body.
    fn exchange(fake: &FakeHttp, request: &str) -> (String, String) {
        let mut stream = TcpStream::connect(fake.address()).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        (
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        )
    }

    fn get_request(target: &str) -> String {
        format!("GET {target} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n")
    }

    #[test]
    fn every_request_is_recorded_routed_or_not() {
        let fake = FakeHttp::recording(Router::new().route(
            "/items/{id}",
            post(Reply::json(201, serde_json::json!({"id": 7}))),
        ));
        let (status, body) = exchange(
            &fake,
            "POST /items/a%20b?x=1&name=a+b%2Fc HTTP/1.1\r\nHost: fake\r\nX-Key: k-1\r\n\
             Content-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}",
        );
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 201 Created", "{\"id\":7}")
        );
        let (status, _) = exchange(&fake, &get_request("/nowhere"));
        assert_eq!(status, "HTTP/1.1 404 Not Found");

        let requests = fake.requests();
        assert_eq!(
            requests.iter().map(Received::route).collect::<Vec<_>>(),
            ["POST /items/a%20b", "GET /nowhere"]
        );
        let first = &requests[0];
        assert_eq!(first.target(), "/items/a%20b?x=1&name=a+b%2Fc");
        assert_eq!(first.query_param("name").as_deref(), Some("a b/c"));
        assert_eq!(first.query_param("missing"), None);
        assert_eq!(first.header("x-key"), Some("k-1"));
        assert_eq!(first.json(), serde_json::json!({"a": 1}));
        assert_eq!(requests[1].query, None);
        assert_eq!(requests[1].json(), Value::Null);
    }

    #[test]
    fn a_handler_still_gets_the_path_parameters_and_the_body_when_recorded() {
        let echo = |axum::extract::Path(id): axum::extract::Path<String>, request: Received| async move {
            format!("{id}:{}", String::from_utf8_lossy(&request.body))
        };
        let fake = FakeHttp::recording(Router::new().route("/items/{id}", post(echo)));
        let (_, body) = exchange(
            &fake,
            "POST /items/9 HTTP/1.1\r\nHost: fake\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        assert_eq!(body, "9:hello");
        assert_eq!(fake.requests()[0].body, "hello");
    }

    #[test]
    fn replies_in_turn_end_with_the_last_one_again() {
        let turns = in_turn([
            Reply::status(429).header("Retry-After", "0"),
            Reply::text(200, "ok"),
        ]);
        let fake = FakeHttp::start(Router::new().route("/", get(turns)));
        let statuses: Vec<String> = (0..3)
            .map(|_| exchange(&fake, &get_request("/")).0)
            .collect();
        assert_eq!(
            statuses,
            [
                "HTTP/1.1 429 Too Many Requests",
                "HTTP/1.1 200 OK",
                "HTTP/1.1 200 OK"
            ]
        );
    }

    #[tokio::test]
    async fn dropping_the_fake_closes_its_port_even_with_a_request_held_open() {
        let fake = FakeHttp::start(Router::new().route("/wait", get(std::future::pending::<()>)));
        let mut held = TcpStream::connect(fake.address()).expect("connect");
        held.write_all(get_request("/wait").as_bytes())
            .expect("send");
        held.set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .expect("a read timeout");
        let mut byte = [0u8; 1];
        let waiting = held.read(&mut byte).expect_err("no answer while held open");
        assert!(
            matches!(waiting.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{waiting}"
        );
        let address = fake.address();

        drop(fake);

        // Closed, not hung: the end of the stream, or a reset.
        match held.read(&mut byte) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
        assert!(
            TcpStream::connect(address).is_err(),
            "nothing listens any more"
        );
    }
}
