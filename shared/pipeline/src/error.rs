//! What a port's failure is, as facts the caller branches on: its kind, the
//! HTTP status when there was an answer, and the underlying error. Retry,
//! dead-letter and refusal decisions read these, never the message's text.

use std::error::Error as StdError;

/// What kind of failure a port met; what the caller does next depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A timeout, a lost connection, a 5xx: the same call may work later.
    Transient,
    /// The service asked to slow down (HTTP 429, a throttling code).
    Throttled,
    /// Someone changed the same thing at the same time (HTTP 409, a failed
    /// condition): read again and retry.
    Conflict,
    /// Will fail the same way every time: bad data, configuration, a bug.
    Permanent,
    /// What the call names does not exist (HTTP 404).
    NotFound,
    /// The service refused rootmail: credentials or permissions (HTTP 401, 403).
    Refused,
}

impl ErrorKind {
    /// Whether the same call is worth making again later.
    pub fn is_retried(self) -> bool {
        matches!(self, Self::Transient | Self::Throttled | Self::Conflict)
    }

    /// The kind an HTTP status means (a 2xx or 3xx is not a failure: permanent).
    pub fn of_status(status: u16) -> Self {
        match status {
            429 => Self::Throttled,
            409 => Self::Conflict,
            404 | 410 => Self::NotFound,
            401 | 403 => Self::Refused,
            408 | 500..=599 => Self::Transient,
            _ => Self::Permanent,
        }
    }
}

/// A port's failure. Made with the constructors; the message says what was
/// being done, `source` keeps the cause.
#[derive(Debug, thiserror::Error)]
#[error("{} failure in {port}: {message}", if kind.is_retried() { "transient" } else { "permanent" })]
pub struct PortError {
    pub port: &'static str,
    pub kind: ErrorKind,
    /// The HTTP status of the answer, when the service answered.
    pub status: Option<u16>,
    /// The service's own error code, when it sent one (AWS's
    /// `ConditionalCheckFailedException`, Zendesk's `IdempotentRequestError`).
    pub code: Option<String>,
    /// The start of the service's answer, for the refusals whose meaning is
    /// only in its words (a ticketing API's 422).
    pub answer: Option<String>,
    pub message: String,
    /// In whole seconds, [`Self::retry_after`] (small: every port result
    /// carries this type).
    retry_after_secs: Option<u32>,
    #[source]
    pub source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl PortError {
    pub fn new(kind: ErrorKind, port: &'static str, message: impl Into<String>) -> Self {
        Self {
            port,
            kind,
            status: None,
            code: None,
            answer: None,
            message: message.into(),
            retry_after_secs: None,
            source: None,
        }
    }

    /// Worth retrying: a timeout, a lost connection, a 5xx.
    pub fn transient(port: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, port, message)
    }

    /// Will fail the same way every time.
    pub fn permanent(port: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, port, message)
    }

    /// An HTTP answer that is a failure, with its kind from the status.
    pub fn http(port: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::of_status(status), port, message).with_status(status)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_code(mut self, code: Option<String>) -> Self {
        self.code = code;
        self
    }

    pub fn with_answer(mut self, answer: impl Into<String>) -> Self {
        self.answer = Some(answer.into());
        self
    }

    /// When the same call is worth making again, if the service said or
    /// the caller knows (a `Retry-After` too long to wait for in place):
    /// the queue's redelivery is brought forward or put off to it.
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.retry_after_secs = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        self
    }

    /// See [`Self::with_retry_after`] (rounded up to a whole second).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after_secs
            .map(|secs| std::time::Duration::from_secs(secs.into()))
    }

    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The same failure, described as `message` (the kind, status and cause stay).
    pub fn reworded(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The same failure, said of `port` (a client shared by two uses of
    /// one service: the ticket credentials and the marker key).
    pub fn of_port(mut self, port: &'static str) -> Self {
        self.port = port;
        self
    }

    /// Whether the same operation is worth trying again later.
    pub fn is_transient(&self) -> bool {
        self.kind.is_retried()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds_and_only_passing_trouble_is_retried() {
        let kinds: Vec<_> = [503, 500, 408, 429, 409, 404, 401, 403, 400, 422]
            .into_iter()
            .map(|s| PortError::http("api", s, "x"))
            .map(|e| (e.status, e.kind, e.is_transient()))
            .collect();
        use ErrorKind::*;
        assert_eq!(
            kinds,
            [
                (Some(503), Transient, true),
                (Some(500), Transient, true),
                (Some(408), Transient, true),
                (Some(429), Throttled, true),
                (Some(409), Conflict, true),
                (Some(404), NotFound, false),
                (Some(401), Refused, false),
                (Some(403), Refused, false),
                (Some(400), Permanent, false),
                (Some(422), Permanent, false),
            ]
        );
    }

    #[test]
    fn the_text_says_whether_it_is_retried_and_the_cause_is_kept() {
        let cause = std::io::Error::other("disk on fire");
        let error = PortError::permanent("archive", "reading x").with_source(cause);
        assert_eq!(error.to_string(), "permanent failure in archive: reading x");
        assert_eq!(
            error.source().map(|s| s.to_string()).as_deref(),
            Some("disk on fire")
        );
        let conflict = PortError::new(ErrorKind::Conflict, "tickets", "changed meanwhile");
        assert_eq!(
            conflict.to_string(),
            "transient failure in tickets: changed meanwhile"
        );
    }
}
