//! The configured backend: which one, its settings, and its credentials, turned
//! into one `TicketSink`. The Lambda and the CLI read the same settings.

use crate::http::{HttpClient, RetryPolicy};
use crate::jira::{Jira, JiraCredentials, JiraOptions};
use crate::marker::{MIN_KEY_BYTES, MarkerKey, MarkerKeyError};
use crate::rt::{Rt, RtCredentials, RtOptions};
use crate::webhook::{Webhook, WebhookCredentials};
use crate::zendesk::{Zendesk, ZendeskCredentials, ZendeskOptions};
use rootmail_domain::ThreadKey;
use rootmail_pipeline::{
    FoundTicket, NewComment, NewTicket, PortResult, PostedComment, TicketSink,
};
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Zendesk,
    Jira,
    Rt,
    Webhook,
}

impl BackendKind {
    pub const NAMES: &'static str = "zendesk, jira, rt, webhook";

    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "zendesk" => Some(Self::Zendesk),
            "jira" => Some(Self::Jira),
            "rt" => Some(Self::Rt),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zendesk => "zendesk",
            Self::Jira => "jira",
            Self::Rt => "rt",
            Self::Webhook => "webhook",
        }
    }

    /// The webhook may run unauthenticated; every ticketing system needs a login.
    pub fn needs_credentials(self) -> bool {
        self != Self::Webhook
    }

    /// The ticketing systems write marker lines (and trust them); the webhook
    /// sends the message's hash as a field and keys its writes by it.
    pub fn writes_markers(self) -> bool {
        self != Self::Webhook
    }
}

/// Where the marker key comes from, for errors that say how to set one.
pub const MARKER_KEY_SOURCES: &str = "MARKER_KEY_SECRET_ARN (or \"marker_key\" in the ticket credentials secret) in AWS; locally the key file under the state directory";

/// The API's base URL must be https: the credentials travel with every
/// request. Plain http is allowed to loopback only (tests, local fakes). The
/// host is read as the HTTP client reads it (`http://localhost:1@evil.example`
/// goes to evil.example), and a URL carrying user information is refused:
/// credentials belong in the secret.
pub fn check_api_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "a URL with a user name or password in it: give credentials in the secret".into(),
        );
    }
    match parsed.scheme() {
        "https" => return Ok(()),
        "http" => {}
        _ => return Err("expected an https:// URL".to_string()),
    }
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(
            "expected an https:// URL (plain http:// only to 127.0.0.1, ::1 or localhost)"
                .to_string(),
        )
    }
}

/// The `marker_key` of a credentials secret's JSON, if it has one.
pub fn marker_key_in_credentials(json: &str) -> Result<Option<MarkerKey>, MarkerKeyError> {
    #[derive(serde::Deserialize)]
    struct WithKey {
        #[serde(default)]
        marker_key: Option<crate::credential::Credential>,
    }
    match serde_json::from_str::<WithKey>(json) {
        Ok(WithKey {
            marker_key: Some(key),
        }) => MarkerKey::new(key.expose().as_bytes()).map(Some),
        // Not this function's to judge: the backend reads the credentials.
        _ => Ok(None),
    }
}

/// Everything but the credentials.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub kind: BackendKind,
    pub api_url: String,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Requests a minute this process sends to the API at most, retries
    /// included (`None`: unlimited). Ticketing APIs limit an account, not a
    /// client: give each instance the account's budget divided by the number of
    /// instances that may run at once.
    pub requests_per_minute: Option<NonZeroU32>,
    /// Zendesk: `{"<field id>": value, ...}` set on every new ticket.
    pub zendesk_custom_fields: Vec<(u64, serde_json::Value)>,
    /// Zendesk: customer name -> organization id (no lookup by name: a prefix
    /// match could file one customer's mail under another's organization).
    pub zendesk_organizations: Vec<(String, u64)>,
    /// Zendesk: requesters become `aws-<account>@<domain>` (never the root-mail domain).
    pub zendesk_requester_domain: Option<String>,
    pub jira_service_desk_id: Option<String>,
    pub jira_request_type_id: Option<String>,
    pub jira_set_priority: bool,
    pub rt_queue: Option<String>,
    pub rt_thread_field: Option<String>,
}

impl BackendSettings {
    pub fn new(kind: BackendKind, api_url: &str) -> Self {
        Self {
            kind,
            api_url: api_url.trim_end_matches('/').to_string(),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            requests_per_minute: None,
            zendesk_custom_fields: Vec::new(),
            zendesk_organizations: Vec::new(),
            zendesk_requester_domain: None,
            jira_service_desk_id: None,
            jira_request_type_id: None,
            jira_set_priority: false,
            rt_queue: None,
            rt_thread_field: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{backend}: {message}")]
    Settings {
        backend: &'static str,
        message: String,
    },
    /// Never carries the secret's text: only where parsing stopped.
    #[error(
        "{backend}: the credentials are not {expected} (JSON {category} error at line {line}, column {column})"
    )]
    Credentials {
        backend: &'static str,
        expected: &'static str,
        category: &'static str,
        line: usize,
        column: usize,
    },
}

/// Zendesk `{"id": value}` custom fields as configured (`ZENDESK_CUSTOM_FIELDS`).
pub fn parse_custom_fields(json: &str) -> Result<Vec<(u64, serde_json::Value)>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("not a JSON object: {e}"))?;
    let mut fields = map
        .into_iter()
        .map(|(id, value)| {
            id.parse::<u64>()
                .map(|id| (id, value))
                .map_err(|_| format!("field id {id:?} is not a number"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // In id order, whatever order the JSON map keeps.
    fields.sort_by_key(|(id, _)| *id);
    Ok(fields)
}

/// Zendesk organizations as configured (`ZENDESK_ORGANIZATIONS`): `{"<customer>": <id>}`.
pub fn parse_organizations(json: &str) -> Result<Vec<(String, u64)>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("not a JSON object: {e}"))?;
    map.into_iter()
        .map(|(customer, id)| match id.as_u64() {
            Some(id) => Ok((customer, id)),
            None => Err(format!("organization id of {customer:?} is not a number")),
        })
        .collect()
}

/// One of the backends, chosen by configuration.
#[derive(Clone)]
pub enum AnyBackend {
    Zendesk(Zendesk),
    Jira(Jira),
    Rt(Rt),
    Webhook(Webhook),
}

impl AnyBackend {
    /// Builds the backend. `credentials` is the secret's JSON (see functions/README.md);
    /// `marker_key` signs and checks the marker lines (required, except for
    /// the webhook, which writes none).
    pub fn build(
        settings: &BackendSettings,
        credentials: Option<&str>,
        marker_key: Option<MarkerKey>,
    ) -> Result<Self, BackendError> {
        let kind = settings.kind;
        let settings_error = |message: String| settings_error(kind, message);
        if kind.needs_credentials() && credentials.is_none() {
            return Err(settings_error(
                "no credentials configured (TICKET_CREDENTIALS_SECRET_ARN in AWS; TICKET_CREDENTIALS_FILE or TICKET_CREDENTIALS locally)".into(),
            ));
        }
        check_api_url(&settings.api_url).map_err(|reason| {
            settings_error(format!("TICKET_API_URL {:?}: {reason}", settings.api_url))
        })?;
        if marker_key.is_none() && kind.writes_markers() {
            return Err(settings_error(format!(
                "no marker key configured ({MARKER_KEY_SOURCES})"
            )));
        }
        let http = HttpClient::new(kind.as_str(), settings.timeout, settings.retry.clone())
            .map_err(|e| settings_error(e.to_string()))?
            .with_rate_limit(settings.requests_per_minute);
        let parts = Parts {
            settings,
            http,
            credentials,
            marker_key,
        };
        match kind {
            BackendKind::Jira => parts.jira(),
            BackendKind::Webhook => parts.webhook(),
            BackendKind::Zendesk => parts.zendesk(),
            BackendKind::Rt => parts.rt(),
        }
    }
}

fn settings_error(kind: BackendKind, message: String) -> BackendError {
    BackendError::Settings {
        backend: kind.as_str(),
        message,
    }
}

/// What every backend is built from, once the common settings are checked.
struct Parts<'a> {
    settings: &'a BackendSettings,
    http: HttpClient,
    credentials: Option<&'a str>,
    /// Present for every backend that writes markers (checked by `build`).
    marker_key: Option<MarkerKey>,
}

impl Parts<'_> {
    fn kind(&self) -> BackendKind {
        self.settings.kind
    }

    fn marker_key(&mut self) -> MarkerKey {
        self.marker_key
            .take()
            .expect("checked by build for every backend that writes markers")
    }

    fn credentials<T: for<'de> serde::Deserialize<'de>>(
        &self,
        expected: &'static str,
    ) -> Result<T, BackendError> {
        parse_credentials(self.kind(), expected, self.credentials)
    }

    fn required(&self, value: &Option<String>, name: &str) -> Result<String, BackendError> {
        value
            .clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| settings_error(self.kind(), format!("{name} is required")))
    }

    fn jira(mut self) -> Result<AnyBackend, BackendError> {
        let settings = self.settings;
        let mut options = JiraOptions::new(
            &settings.api_url,
            &self.required(&settings.jira_service_desk_id, "JIRA_SERVICE_DESK_ID")?,
            &self.required(&settings.jira_request_type_id, "JIRA_REQUEST_TYPE_ID")?,
        );
        options.set_priority = settings.jira_set_priority;
        let credentials: JiraCredentials = self.credentials("{\"email\", \"token\"}")?;
        let key = self.marker_key();
        Ok(AnyBackend::Jira(Jira::new(
            self.http,
            options,
            credentials,
            key,
        )))
    }

    fn webhook(self) -> Result<AnyBackend, BackendError> {
        let credentials: WebhookCredentials = match self.credentials {
            Some(_) => self.credentials("{\"token\", \"hmac_key\"}")?,
            None => WebhookCredentials::default(),
        };
        if credentials
            .hmac_key
            .as_ref()
            .is_some_and(|key| key.expose().len() < MIN_KEY_BYTES)
        {
            return Err(settings_error(
                BackendKind::Webhook,
                format!(
                    "the credentials' hmac_key is shorter than {MIN_KEY_BYTES} bytes: signatures under it prove little"
                ),
            ));
        }
        let url = &self.settings.api_url;
        Ok(AnyBackend::Webhook(Webhook::new(
            self.http,
            url,
            credentials,
        )))
    }

    fn zendesk(mut self) -> Result<AnyBackend, BackendError> {
        let settings = self.settings;
        if !settings.zendesk_organizations.is_empty() && settings.zendesk_requester_domain.is_none()
        {
            // The API user would be the requester, and Zendesk files a
            // ticket under an organization only for one of its members.
            return Err(settings_error(
                self.kind(),
                "ZENDESK_ORGANIZATIONS needs ZENDESK_REQUESTER_DOMAIN (a ticket's organization must be its requester's)".into(),
            ));
        }
        let options = ZendeskOptions {
            custom_fields: settings.zendesk_custom_fields.clone(),
            organizations: settings.zendesk_organizations.clone(),
            requester_domain: settings.zendesk_requester_domain.clone(),
            ..ZendeskOptions::new(&settings.api_url)
        };
        let credentials: ZendeskCredentials = self.credentials("{\"email\", \"token\"}")?;
        let key = self.marker_key();
        Ok(AnyBackend::Zendesk(Zendesk::new(
            self.http,
            options,
            credentials,
            key,
        )))
    }

    fn rt(mut self) -> Result<AnyBackend, BackendError> {
        let settings = self.settings;
        let mut options = RtOptions::new(&settings.api_url);
        if let Some(queue) = &settings.rt_queue {
            options.queue = queue.clone();
        }
        if let Some(field) = &settings.rt_thread_field {
            options.thread_field = field.clone();
        }
        let credentials: RtCredentials =
            self.credentials("{\"user\", \"password\"} or {\"token\"}")?;
        let key = self.marker_key();
        Ok(AnyBackend::Rt(Rt::new(
            self.http,
            options,
            credentials,
            key,
        )))
    }
}

fn parse_credentials<T: for<'de> serde::Deserialize<'de>>(
    kind: BackendKind,
    expected: &'static str,
    json: Option<&str>,
) -> Result<T, BackendError> {
    serde_json::from_str(json.unwrap_or_default()).map_err(|e| BackendError::Credentials {
        backend: kind.as_str(),
        expected,
        category: match e.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "shape",
            serde_json::error::Category::Eof => "truncated",
        },
        line: e.line(),
        column: e.column(),
    })
}

macro_rules! each_backend {
    ($self:ident, $sink:ident => $call:expr) => {
        match $self {
            AnyBackend::Zendesk($sink) => $call,
            AnyBackend::Jira($sink) => $call,
            AnyBackend::Rt($sink) => $call,
            AnyBackend::Webhook($sink) => $call,
        }
    };
}

impl TicketSink for AnyBackend {
    fn name(&self) -> &'static str {
        each_backend!(self, sink => sink.name())
    }

    fn instance(&self) -> String {
        each_backend!(self, sink => sink.instance())
    }

    fn max_attachment_bytes(&self) -> usize {
        each_backend!(self, sink => sink.max_attachment_bytes())
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        each_backend!(self, sink => sink.find(key).await)
    }

    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        each_backend!(self, sink => sink.create(ticket).await)
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        each_backend!(self, sink => sink.comment(ticket_id, comment).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MarkerKey {
        MarkerKey::new(&[1u8; 32]).expect("key")
    }

    /// Issue C: a backend that writes markers does not start without a key,
    /// and says which setting gives it one.
    #[test]
    fn a_ticketing_system_without_a_marker_key_is_refused() {
        let settings = BackendSettings::new(BackendKind::Rt, "https://rt.example");
        let error = AnyBackend::build(&settings, Some(r#"{"token":"t"}"#), None)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("no marker key configured"), "{error}");
        assert!(error.contains("MARKER_KEY_SECRET_ARN"), "{error}");
        assert!(AnyBackend::build(&settings, Some(r#"{"token":"t"}"#), Some(key())).is_ok());
    }

    #[test]
    fn the_marker_key_may_come_with_the_credentials() {
        let json = format!(r#"{{"token":"t","marker_key":"{}"}}"#, "k".repeat(40));
        let from_secret = marker_key_in_credentials(&json)
            .expect("valid")
            .expect("present");
        let message = rootmail_domain::ContentHash::of(b"m");
        let direct = MarkerKey::new("k".repeat(40).as_bytes()).expect("key");
        assert_eq!(from_secret.marker(&message), direct.marker(&message));
        assert!(
            marker_key_in_credentials(r#"{"token":"t"}"#)
                .expect("valid")
                .is_none()
        );
        assert!(marker_key_in_credentials(r#"{"marker_key":"short"}"#).is_err());
    }

    /// Issue D: credentials never travel over plain http, except to loopback.
    #[test]
    fn the_api_url_is_https_or_loopback() {
        for good in [
            "https://acme.zendesk.com",
            "http://127.0.0.1:8080",
            "http://[::1]:9/x",
            "http://localhost",
        ] {
            assert_eq!(check_api_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://acme.zendesk.com",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example:80",
            "ftp://x",
            // The host is what the URL parser (and so the client) connects to,
            // not the text before the first `:`.
            "http://localhost:1@evil.example/",
            "http://[::1]@evil.example/",
            "https://user:secret@acme.zendesk.com",
        ] {
            assert!(check_api_url(bad).is_err(), "{bad}");
        }
        let settings = BackendSettings::new(BackendKind::Webhook, "http://hooks.example");
        let error = AnyBackend::build(&settings, None, None)
            .err()
            .expect("refused");
        assert!(error.to_string().contains("TICKET_API_URL"), "{error}");
    }

    /// Issue 12: an organization needs a requester who can belong to it.
    #[test]
    fn zendesk_organizations_need_a_requester_domain() {
        let mut settings = BackendSettings::new(BackendKind::Zendesk, "https://z.example");
        settings.zendesk_organizations = vec![("Acme".into(), 7)];
        let credentials = Some(r#"{"email":"a@b","token":"t"}"#);
        let error = AnyBackend::build(&settings, credentials, Some(key()))
            .err()
            .expect("refused");
        assert!(
            error.to_string().contains("ZENDESK_REQUESTER_DOMAIN"),
            "{error}"
        );
        settings.zendesk_requester_domain = Some("tickets.example".into());
        assert!(AnyBackend::build(&settings, credentials, Some(key())).is_ok());
    }

    #[test]
    fn credentials_errors_never_show_the_secret() {
        let settings = BackendSettings {
            jira_service_desk_id: Some("1".into()),
            jira_request_type_id: Some("2".into()),
            ..BackendSettings::new(BackendKind::Jira, "https://jira.example")
        };
        let error = AnyBackend::build(&settings, Some("\"hunter2-plain-token\""), Some(key()))
            .err()
            .expect("a plain string is not Jira's credentials");
        let text = error.to_string();
        assert!(text.starts_with("jira: the credentials are not"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_ticketing_system_without_credentials_is_refused() {
        let settings = BackendSettings {
            jira_service_desk_id: Some("1".into()),
            jira_request_type_id: Some("2".into()),
            ..BackendSettings::new(BackendKind::Jira, "https://jira.example")
        };
        let error = AnyBackend::build(&settings, None, Some(key()))
            .err()
            .expect("refused");
        assert!(error.to_string().contains("no credentials configured"));
        let webhook = BackendSettings::new(BackendKind::Webhook, "http://127.0.0.1:1");
        assert!(AnyBackend::build(&webhook, None, None).is_ok());
    }

    #[test]
    fn jira_needs_its_service_desk() {
        let settings = BackendSettings::new(BackendKind::Jira, "https://jira.example");
        let error = AnyBackend::build(
            &settings,
            Some(r#"{"email":"a@b","token":"t"}"#),
            Some(key()),
        )
        .err()
        .expect("refused");
        assert_eq!(error.to_string(), "jira: JIRA_SERVICE_DESK_ID is required");
    }

    #[test]
    fn custom_fields_are_numeric_ids() {
        assert_eq!(
            parse_custom_fields(r#"{"360001": "aws", "42": 7}"#).unwrap(),
            vec![
                (42, serde_json::json!(7)),
                (360001, serde_json::json!("aws"))
            ]
        );
        assert!(
            parse_custom_fields(r#"{"x": 1}"#)
                .unwrap_err()
                .contains("\"x\"")
        );
    }
}
