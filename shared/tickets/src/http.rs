//! One HTTP client per process, with timeouts and bounded retries.
//!
//! Retried: connection errors, timeouts, 5xx, and 429 (after `Retry-After`).
//! Anything else answers at once. When the retries are spent, the error is
//! transient so the queue redelivers the operation later.

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use rootmail_pipeline::PortError;
use std::time::Duration;

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

#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client,
    policy: RetryPolicy,
    port: &'static str,
}

impl HttpClient {
    pub fn new(
        port: &'static str,
        timeout: Duration,
        policy: RetryPolicy,
    ) -> Result<Self, PortError> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("rootmail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PortError::Permanent {
                port,
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            client,
            policy,
            port,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends the request built by `request`, retrying what is worth retrying.
    /// Returns the first response that is neither a retryable failure nor spent.
    pub async fn send(
        &self,
        what: &str,
        request: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, PortError> {
        let mut attempt = 1;
        loop {
            let outcome = match request(&self.client).send().await {
                Ok(response) if !retryable(response.status()) => {
                    return self.check(what, response, attempt).await;
                }
                retry => retry,
            };
            let wait = match &outcome {
                Ok(response) => retry_after(response).unwrap_or_else(|| self.backoff(attempt)),
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                    self.backoff(attempt)
                }
                Err(e) => {
                    return Err(PortError::Permanent {
                        port: self.port,
                        message: format!("{what}: {e}"),
                    });
                }
            };
            if attempt >= self.policy.max_attempts || wait > self.policy.max_delay {
                let reason = match outcome {
                    Ok(response) => format!("HTTP {}", response.status()),
                    Err(e) => e.to_string(),
                };
                return Err(PortError::Transient {
                    port: self.port,
                    message: format!("{what}: {reason} after {attempt} attempt(s)"),
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
            let response =
                request(&self.client)
                    .send()
                    .await
                    .map_err(|e| PortError::Transient {
                        port: self.port,
                        message: format!("{what}: {e}; {LEFT_TO_REDELIVERY}"),
                    })?;
            let status = response.status();
            if status.is_server_error() {
                return Err(PortError::Transient {
                    port: self.port,
                    message: format!("{what}: HTTP {status}; {LEFT_TO_REDELIVERY}"),
                });
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
                    return Err(PortError::Transient {
                        port: self.port,
                        message: format!(
                            "{what}: HTTP {status} (Retry-After {after}) after {attempt} attempt(s)"
                        ),
                    });
                }
            }
        }
    }

    /// A non-retryable answer: success passes, 4xx is permanent.
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
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // Retrying cannot help, and every other operation would fail the same
            // way: say so plainly, once per operation, without the request.
            return Err(PortError::Permanent {
                port: self.port,
                message: format!(
                    "{what}: {} rejected rootmail's credentials (HTTP {status}); check the ticket credentials secret",
                    self.port
                ),
            });
        }
        // The body explains a 4xx; keep a short piece of it, never the request.
        let body = response.text().await.unwrap_or_default();
        let excerpt: String = body.chars().take(300).collect();
        Err(PortError::Permanent {
            port: self.port,
            message: format!("{what}: HTTP {status} after {attempts} attempt(s): {excerpt}"),
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.policy.base_delay * 2u32.saturating_pow(attempt - 1);
        // Up to a quarter of jitter, so retrying writers do not move in step.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = exp / 4 * (nanos % 1000) / 1000;
        (exp + jitter).min(self.policy.max_delay)
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
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
