//! One HTTP client per process, with timeouts and bounded retries.
//!
//! Retried: connection errors, timeouts, 5xx, and 429 (after `Retry-After`).
//! Anything else answers at once. When the retries are spent, the error is
//! transient so the queue redelivers the operation later.
//!
//! A client may hold a [`RequestRate`]: then every request it sends, retries
//! included, first waits for its turn, so one writer instance stays within its
//! share of the ticketing API's budget instead of running into 429s.

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use rootmail_pipeline::{ErrorKind, PortError};
use serde::de::DeserializeOwned;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    /// Longest single wait; a `Retry-After` beyond it is left to the queue.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// At most `per_minute` requests a minute, spaced evenly: each request takes the
/// next free slot, one interval after the previous one, and waits for it. There
/// is no burst allowance, so any 60-second window holds at most `per_minute`
/// requests (a token bucket of capacity `b` would allow `per_minute + b`), and
/// a request that finds the client idle goes at once.
#[derive(Debug)]
pub struct RequestRate {
    per_minute: NonZeroU32,
    interval: Duration,
    /// The earliest moment the next request may go.
    next: Mutex<Option<Instant>>,
    granted: AtomicU64,
}

impl RequestRate {
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        // Rounded up, so `per_minute` intervals never fit in less than a minute.
        let nanos = 60_000_000_000u64.div_ceil(u64::from(per_minute.get()));
        Self {
            per_minute,
            interval: Duration::from_nanos(nanos),
            next: Mutex::new(None),
            granted: AtomicU64::new(0),
        }
    }

    pub fn limit(&self) -> NonZeroU32 {
        self.per_minute
    }

    /// Waits for this request's slot. A caller that gives up while waiting
    /// leaves its slot unused (the limit errs on the side of fewer requests).
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |at| at.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        self.granted.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep_until(slot).await;
    }

    /// Requests let through so far.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client,
    policy: RetryPolicy,
    port: &'static str,
    /// Shared by the clones of this client: one limit per process.
    rate: Option<Arc<RequestRate>>,
}

/// Makes ring this process's TLS crypto provider, which every reqwest client
/// needs: reqwest is built without one (`rustls-no-provider`), so that
/// aws-lc-rs stays out of the binaries. Calling it again does nothing.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means a provider is installed already, which is the aim.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client as every rootmail client starts: TLS on ring (installed
/// once per process), rootmail's user agent, and redirects followed only
/// within the origin asked ([`same_origin_redirects`]).
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    Client::builder()
        .user_agent(concat!("rootmail/", env!("CARGO_PKG_VERSION")))
        .redirect(same_origin_redirects())
}

/// Redirects are followed (at most five) only to the scheme, host and port
/// of the request: a 307 or 308 carries the body (mail text, a note) and
/// headers reqwest does not know as secret (`x-amz-security-token`) on to
/// wherever it points. Elsewhere, the redirect is the answer, an error.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first();
        let same = first.is_some_and(|from| from.origin() == attempt.url().origin());
        if same && attempt.previous().len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

impl HttpClient {
    pub fn new(
        port: &'static str,
        timeout: Duration,
        policy: RetryPolicy,
    ) -> Result<Self, PortError> {
        let client = client_builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| {
                PortError::permanent(port, format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            client,
            policy,
            port,
            rate: None,
        })
    }

    /// Limits this client (and its clones) to `per_minute` requests a minute;
    /// `None` leaves it unlimited.
    pub fn with_rate_limit(mut self, per_minute: Option<NonZeroU32>) -> Self {
        self.rate = per_minute.map(|n| Arc::new(RequestRate::per_minute(n)));
        self
    }

    /// The limit this client keeps, if any.
    pub fn rate_limit(&self) -> Option<&RequestRate> {
        self.rate.as_deref()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends one request, after waiting for its turn when the client is limited.
    /// Every request goes through here, retries included.
    /// The request is built after the wait, so what it stamps with the time
    /// (a webhook's signed timestamp) is the time it leaves.
    async fn dispatch(
        &self,
        request: impl FnOnce() -> RequestBuilder,
    ) -> reqwest::Result<Response> {
        if let Some(rate) = &self.rate {
            rate.acquire().await;
        }
        request().send().await
    }

    /// Sends the request built by `request`, retrying what is worth retrying.
    /// Returns the first response that is neither a retryable failure nor spent.
    pub async fn send(
        &self,
        what: &str,
        request: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, PortError> {
        let (response, attempts) = self.send_answered(what, request).await?;
        self.check(what, response, attempts).await
    }

    /// Like [`HttpClient::send`], but any answer that is not retried is the
    /// caller's to read, refusals included (an API whose errors the caller
    /// knows better), with the number of attempts it took.
    pub async fn send_answered(
        &self,
        what: &str,
        request: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<(Response, u32), PortError> {
        self.send_answered_from(what, 1, request).await
    }

    /// [`HttpClient::send_answered`] as try `first_attempt` of a call that
    /// has already made the tries before it: a caller that retries on what
    /// only the answer's body says (AWS's throttles) shares one budget of
    /// attempts and one schedule of waits with the retries here, instead of
    /// multiplying them. Returns the number of the try that was answered.
    pub async fn send_answered_from(
        &self,
        what: &str,
        first_attempt: u32,
        request: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<(Response, u32), PortError> {
        let mut attempt = first_attempt.max(1);
        loop {
            let outcome = match self.dispatch(|| request(&self.client)).await {
                Ok(response) if !retryable(response.status()) => return Ok((response, attempt)),
                retry => retry,
            };
            let wait = match &outcome {
                Ok(response) => retry_after(response).unwrap_or_else(|| self.backoff(attempt)),
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                    self.backoff(attempt)
                }
                Err(e) => {
                    return Err(PortError::permanent(self.port, format!("{what}: {e}")));
                }
            };
            if attempt >= self.policy.max_attempts || wait > self.policy.max_delay {
                return Err(match outcome {
                    Ok(response) => told_when(
                        &response,
                        PortError::http(
                            self.port,
                            response.status().as_u16(),
                            format!(
                                "{what}: HTTP {} after {attempt} attempt(s)",
                                response.status()
                            ),
                        ),
                        self.policy.max_delay,
                    ),
                    Err(e) => PortError::transient(
                        self.port,
                        format!("{what}: {e} after {attempt} attempt(s)"),
                    )
                    .with_source(e),
                });
            }
            tracing::warn!(what, attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Sends a write the API has no idempotency for, once: after an answer that
    /// leaves open whether it was applied (a timeout, a 5xx), sending it again
    /// could apply it twice, so that is a transient error and the queue's
    /// redelivery, which looks before it writes, decides. A 429 applied nothing:
    /// a `Retry-After` within the policy is waited for here. Every other answer
    /// is returned as it is, for the caller to read.
    pub async fn send_once(
        &self,
        what: &str,
        request: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, PortError> {
        const LEFT_TO_REDELIVERY: &str = "left to a redelivery, which checks first";
        let mut attempt = 1;
        loop {
            let response = self.dispatch(|| request(&self.client)).await.map_err(|e| {
                PortError::transient(self.port, format!("{what}: {e}; {LEFT_TO_REDELIVERY}"))
                    .with_source(e)
            })?;
            let status = response.status();
            if status.is_server_error() {
                return Err(PortError::http(
                    self.port,
                    status.as_u16(),
                    format!("{what}: HTTP {status}; {LEFT_TO_REDELIVERY}"),
                ));
            }
            if status != StatusCode::TOO_MANY_REQUESTS {
                return Ok(response);
            }
            match retry_after(&response) {
                Some(wait)
                    if wait <= self.policy.max_delay && attempt < self.policy.max_attempts =>
                {
                    tracing::warn!(
                        what,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "throttled; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                wait => {
                    let after = wait.map_or("absent".to_string(), |w| {
                        if w == Duration::MAX {
                            "a date".to_string()
                        } else {
                            format!("{}s", w.as_secs())
                        }
                    });
                    return Err(told_when(
                        &response,
                        PortError::http(
                            self.port,
                            status.as_u16(),
                            format!(
                                "{what}: HTTP {status} (Retry-After {after}) after {attempt} attempt(s)"
                            ),
                        ),
                        self.policy.max_delay,
                    ));
                }
            }
        }
    }

    /// A non-retryable answer: success passes, a 4xx is not retried (its kind
    /// and status say which refusal it was).
    async fn check(
        &self,
        what: &str,
        response: Response,
        attempts: u32,
    ) -> Result<Response, PortError> {
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        Err(refusal(self.port, what, response, Some(attempts)).await)
    }

    /// How long to wait before try `attempt + 1`: the policy's delay doubled
    /// per attempt, with jitter, at most its longest wait. Also for callers
    /// that retry on what only the answer's body says (AWS's throttles).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.policy.base_delay * 2u32.saturating_pow(attempt - 1);
        // Up to a quarter of jitter, so retrying writers do not move in step.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = exp / 4 * (nanos % 1000) / 1000;
        (exp + jitter).min(self.policy.max_delay)
    }
}

/// An answer that refuses the request, as a port error: its kind from the
/// status (never "try again": the API did not ask for a retry, so a 409 it
/// sends is its answer, unless the caller knows the API's 409 to be a race,
/// [`conflict_left_to_queue`]), the API's error code, and the start of its
/// body, which explains a 4xx (never the request). A 408 stays transient:
/// the server closed the connection before it acted on the request (RFC
/// 9110, 15.5.9), and the queue's redelivery looks before it writes.
pub async fn refusal(
    port: &'static str,
    what: &str,
    response: Response,
    attempts: Option<u32>,
) -> PortError {
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        // Every other operation would fail the same way: say so plainly.
        return PortError::http(
            port,
            status.as_u16(),
            format!(
                "{what}: {port} rejected rootmail's credentials (HTTP {status}); check the ticket credentials secret"
            ),
        );
    }
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.chars().take(300).collect();
    let tries = attempts.map_or(String::new(), |n| format!(" after {n} attempt(s)"));
    let message = format!("{what}: HTTP {status}{tries}: {excerpt}");
    // Zendesk names its refusals in a top-level "error" field.
    let code = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|answer| Some(answer.get("error")?.as_str()?.to_string()));
    let kind = match ErrorKind::of_status(status.as_u16()) {
        _ if status == StatusCode::REQUEST_TIMEOUT => ErrorKind::Transient,
        kind if kind.is_retried() => ErrorKind::Permanent,
        kind => kind,
    };
    PortError::new(kind, port, message)
        .with_status(status.as_u16())
        .with_code(code)
        .with_answer(excerpt)
}

/// A 409 the caller knows to be a race that applied nothing (another request
/// with the same key or for the same record still running), as a transient
/// error: left to the queue's redelivery, which looks before it writes, where
/// a refusal would dead-letter the operation. `why` says which race.
pub fn conflict_left_to_queue(mut e: PortError, why: &str) -> PortError {
    if e.status == Some(409) {
        e.kind = ErrorKind::Transient;
        e.message.push_str("; ");
        e.message.push_str(why);
        e.message.push_str(": left to the queue");
    }
    e
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `error`, with a 429's `Retry-After` when it was too long to wait for in
/// place (`longest_wait`) and given in seconds: the queue's redelivery waits
/// that long, not its whole visibility timeout. Not a 5xx's: an API that is
/// down keeps the queue's pace, and its receives before the dead-letter queue.
fn told_when(response: &Response, error: PortError, longest_wait: Duration) -> PortError {
    if response.status() != StatusCode::TOO_MANY_REQUESTS {
        return error;
    }
    match retry_after(response) {
        Some(after) if after > longest_wait && after != Duration::MAX => {
            error.with_retry_after(after)
        }
        _ => error,
    }
}

/// `Retry-After` in seconds (the form ticketing APIs send). An HTTP-date is
/// treated as "retry later" and left to the queue.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let text = value.to_str().ok()?.trim();
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Some(Duration::from_secs_f64(secs)),
        _ => Some(Duration::MAX),
    }
}

/// An answer's JSON. A 404 is permanent, `not_found` saying what it likely
/// means for this API; an answer that is not the expected JSON is permanent too.
pub async fn read_json<T: DeserializeOwned>(
    port: &'static str,
    what: &str,
    response: Response,
    not_found: &str,
) -> Result<T, PortError> {
    if response.status() == StatusCode::NOT_FOUND {
        return Err(PortError::http(
            port,
            404,
            format!("{what}: HTTP 404 ({not_found})"),
        ));
    }
    json_of(port, what, response, "unexpected answer").await
}

/// An answer's body as JSON. A body cut short (a timeout, a reset
/// connection) says nothing of what the request did: transient, so the
/// queue's redelivery looks before it writes again. A body read whole that
/// is not the JSON `expected` describes is permanent. (reqwest's own `json`
/// calls both a decoding error.)
pub async fn json_of<T: DeserializeOwned>(
    port: &'static str,
    what: &str,
    response: Response,
    expected: &str,
) -> Result<T, PortError> {
    let body = response.bytes().await.map_err(|e| {
        PortError::transient(port, format!("{what}: the answer was not read whole: {e}"))
            .with_source(e)
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| PortError::permanent(port, format!("{what}: {expected}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most requests any 60-second window `[t, t + 60 s)` holds.
    fn busiest_minute(times: &[Instant]) -> usize {
        let minute = Duration::from_secs(60);
        times
            .iter()
            .map(|start| {
                times
                    .iter()
                    .filter(|t| **t >= *start && **t < *start + minute)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Many callers at once against 120 a minute, on tokio's paused clock (no
    /// real waiting, no timing flakiness): no minute holds more than 120, and
    /// they are spaced evenly, the first at once.
    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_never_exceed_the_limit_in_any_minute() {
        let rate = Arc::new(RequestRate::per_minute(NonZeroU32::new(120).unwrap()));
        let start = Instant::now();
        let tasks: Vec<_> = (0..300)
            .map(|_| {
                let rate = rate.clone();
                tokio::spawn(async move {
                    rate.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times.sort();
        assert_eq!(rate.granted(), 300);
        assert_eq!(busiest_minute(&times), 120);
        assert_eq!(times[0], start, "an idle client sends at once");
        assert!(
            times
                .windows(2)
                .all(|w| w[1] - w[0] >= Duration::from_millis(500)),
            "evenly spaced, no burst"
        );
        // 300 requests at 2 a second: the last goes 149.5 s after the first.
        assert_eq!(times[299] - start, Duration::from_millis(149_500));
    }

    /// A limited client builds each request when its turn comes, not before
    /// it waits: a webhook's signature stamps the time it is built, and a
    /// receiver refuses a stamp older than five minutes, which a wait for
    /// the rate limit could once exceed.
    #[tokio::test(start_paused = true)]
    async fn a_request_is_built_after_its_wait_for_the_rate_limit() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let policy = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let client = HttpClient::new("test", Duration::from_secs(5), policy)
            .unwrap()
            .with_rate_limit(NonZeroU32::new(6));
        let built = Mutex::new(Vec::new());
        for _ in 0..2 {
            let answer = client
                .send("a request", |c| {
                    built.lock().unwrap().push(Instant::now());
                    c.get(&url)
                })
                .await;
            assert!(answer.is_err(), "nothing listens there");
        }
        let built = built.into_inner().unwrap();
        assert_eq!(built.len(), 2);
        assert!(
            built[1] - built[0] >= Duration::from_secs(10),
            "built {:?} apart at 6 a minute",
            built[1] - built[0]
        );
    }

    /// A server that answers every connection with `answer`, then closes it.
    fn answering(answer: &'static str) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        url
    }

    /// A 201 whose body is cut short says nothing of what the request did:
    /// transient, for the queue's redelivery to look first (it was a
    /// permanent failure, which dead-lettered a ticket that had been made).
    /// A body read whole that is not the JSON expected stays permanent.
    #[tokio::test]
    async fn an_answer_cut_short_is_transient_and_a_wrong_one_permanent() {
        let client =
            HttpClient::new("test", Duration::from_secs(5), RetryPolicy::default()).unwrap();
        let read = |url: String| {
            let client = client.clone();
            async move {
                let response = client.send("creating", |c| c.post(&url)).await.unwrap();
                read_json::<serde_json::Value>("test", "creating", response, "no such thing").await
            }
        };
        let cut = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\": ";
        let error = read(answering(cut)).await.unwrap_err();
        assert!(error.is_transient(), "{error}");
        let wrong = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\nnot json";
        let error = read(answering(wrong)).await.unwrap_err();
        assert!(!error.is_transient(), "{error}");
    }

    /// A 408 is the server closing the connection before it acted: left to
    /// the queue (its redelivery looks first). A 409 stays a refusal unless
    /// the caller knows it for a race; a 422 is one whatever is said.
    #[tokio::test]
    async fn a_request_timeout_is_transient_and_a_conflict_only_where_it_is_a_race() {
        let client =
            HttpClient::new("test", Duration::from_secs(5), RetryPolicy::default()).unwrap();
        let sent = |answer: &'static str| {
            let client = client.clone();
            async move {
                let url = answering(answer);
                client.send("creating", |c| c.post(&url)).await.unwrap_err()
            }
        };
        let empty = |status: &str| format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        let timeout = sent(empty("408 Request Timeout").leak()).await;
        assert!(timeout.is_transient(), "{timeout}");
        let conflict = sent(empty("409 Conflict").leak()).await;
        assert!(!conflict.is_transient(), "{conflict}");
        let raced = conflict_left_to_queue(conflict, "a race");
        assert!(raced.is_transient(), "{raced}");
        let refused = conflict_left_to_queue(
            sent(empty("422 Unprocessable Entity").leak()).await,
            "a race",
        );
        assert!(!refused.is_transient(), "{refused}");
    }

    /// After a quiet spell the client does not save up a burst.
    #[tokio::test(start_paused = true)]
    async fn a_quiet_spell_is_not_saved_up() {
        let rate = RequestRate::per_minute(NonZeroU32::new(60).unwrap());
        rate.acquire().await;
        tokio::time::sleep(Duration::from_secs(600)).await;
        let before = Instant::now();
        rate.acquire().await;
        rate.acquire().await;
        rate.acquire().await;
        assert_eq!(Instant::now() - before, Duration::from_secs(2));
    }

    #[test]
    fn the_interval_rounds_up() {
        // 60 s / 7 is not whole in nanoseconds: 7 intervals must not fit in 60 s.
        let rate = RequestRate::per_minute(NonZeroU32::new(7).unwrap());
        assert!(rate.interval * 7 >= Duration::from_secs(60));
    }
}
