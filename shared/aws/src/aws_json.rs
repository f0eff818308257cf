//! AWS's JSON-protocol services without their SDK clients: each call one
//! signed `POST` with a JSON document each way. awsJson 1.0 and 1.1 (Step
//! Functions, KMS, Secrets Manager) post to `/` and name the operation in
//! `X-Amz-Target`; restJson (SES v2) posts to the operation's own path. An
//! SDK client links its whole API model for the few calls a function makes
//! (aws-sdk-sfn: 75 KiB of code in mail-ingest for `SendTaskSuccess`,
//! aws-sdk-kms 106 KiB for `Encrypt` and `Decrypt`, aws-sdk-sesv2 43 KiB for
//! `SendEmail`, aws-sdk-secretsmanager 163 KiB for the vault's eight
//! operations; issue 16, bootstraps under 8 MB).
//!
//! Endpoints as AWS's standard endpoint rules give them:
//! `https://PREFIX[-fips].REGION.amazonaws.com` (`amazonaws.com.cn` in China,
//! `api.aws` or `api.amazonwebservices.com.cn` for dual-stack), or the
//! configuration's override (`AWS_ENDPOINT_URL`: moto, a local stand-in).
//! Errors keep AWS's code (`__type`, or the `x-amzn-ErrorType` header) for
//! the caller. A call is tried at most three times in all, as the SDK's
//! standard retry mode does: server errors and 429s are retried by the HTTP
//! client, a throttle AWS answers as a 400 with its code in the body here,
//! from the same budget and on the same schedule of waits.

use crate::credentials::CachedCredentials;
use crate::error::answer_kind;
use crate::sigv4::{Scope, SigningSettings, signed_headers};
use reqwest::Response;
use rootmail_pipeline::error::ErrorKind;
use rootmail_pipeline::{PortError, PortResult};
use rootmail_tickets::http::{HttpClient, RetryPolicy};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// A call answers within seconds; this bounds a stalled one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts of one call, whatever made it fail (the SDK's standard mode).
const ATTEMPTS: u32 = 3;

/// How a service is addressed.
#[derive(Debug, Clone, Copy)]
pub struct JsonService {
    /// SigV4's name for it.
    pub signing_name: &'static str,
    /// The first label of its regional host.
    pub endpoint_prefix: &'static str,
    /// What `X-Amz-Target` names its operations under (awsJson; empty for
    /// a restJson service, whose operations have paths instead).
    pub target_prefix: &'static str,
    /// `application/x-amz-json-1.0` or `-1.1`; `application/json` (restJson).
    pub content_type: &'static str,
}

pub const STEP_FUNCTIONS: JsonService = JsonService {
    signing_name: "states",
    endpoint_prefix: "states",
    target_prefix: "AWSStepFunctions",
    content_type: "application/x-amz-json-1.0",
};

pub const KMS: JsonService = JsonService {
    signing_name: "kms",
    endpoint_prefix: "kms",
    target_prefix: "TrentService",
    content_type: "application/x-amz-json-1.1",
};

/// Secrets Manager (awsJson 1.1): the vault, the ticket credentials.
pub const SECRETS_MANAGER: JsonService = JsonService {
    signing_name: "secretsmanager",
    endpoint_prefix: "secretsmanager",
    target_prefix: "secretsmanager",
    content_type: "application/x-amz-json-1.1",
};

/// SES's v2 API (restJson: `POST /v2/email/outbound-emails` to send).
pub const SES_V2: JsonService = JsonService {
    signing_name: "ses",
    endpoint_prefix: "email",
    target_prefix: "",
    content_type: "application/json",
};

/// AWS Organizations (awsJson 1.1): a member account's state and closure.
/// One endpoint per partition ([`JsonClient::global`]).
pub const ORGANIZATIONS: JsonService = JsonService {
    signing_name: "organizations",
    endpoint_prefix: "organizations",
    target_prefix: "AWSOrganizationsV20161128",
    content_type: "application/x-amz-json-1.1",
};

/// One service in one region.
#[derive(Clone)]
pub struct JsonClient {
    inner: Arc<Inner>,
}

struct Inner {
    service: JsonService,
    port: &'static str,
    /// Built on the first call, as the SDK builds its connector: building an
    /// HTTP client (TLS and its roots) at init cost the lifecycle function
    /// 4.8 ms of cold start for the two services (measured, `make bench`).
    http: OnceLock<Result<HttpClient, String>>,
    credentials: CachedCredentials,
    region: String,
    /// Where requests go, or why nowhere.
    url: Result<String, &'static str>,
}

impl JsonClient {
    /// A client for the SDK configuration's region, credentials, endpoint
    /// override and FIPS / dual-stack choice; `port` names it in errors.
    pub fn new(config: &aws_config::SdkConfig, service: JsonService, port: &'static str) -> Self {
        let region = config.region().map(|r| r.to_string());
        let dual_stack = config.use_dual_stack().unwrap_or(false);
        Self::in_region(config, service, port, (region, dual_stack))
    }

    /// A client for a global service, which has one endpoint per partition
    /// whatever the configured region (Organizations: `us-east-1` in `aws`,
    /// `cn-northwest-1` in `aws-cn`, `us-gov-west-1` in `aws-us-gov`),
    /// signed for that region; no dual-stack endpoint.
    pub fn global(
        config: &aws_config::SdkConfig,
        service: JsonService,
        port: &'static str,
    ) -> Self {
        let region = config
            .region()
            .map(|r| global_region(r.as_ref()).to_string());
        Self::in_region(config, service, port, (region, false))
    }

    fn in_region(
        config: &aws_config::SdkConfig,
        service: JsonService,
        port: &'static str,
        (region, dual_stack): (Option<String>, bool),
    ) -> Self {
        let url = match (config.endpoint_url(), &region) {
            (Some(url), _) => Ok(format!("{}/", url.trim_end_matches('/'))),
            (None, Some(region)) => Ok(regional_url(
                service.endpoint_prefix,
                region,
                config.use_fips().unwrap_or(false),
                dual_stack,
            )),
            (None, None) => {
                Err("no AWS region is configured (AWS_REGION), so there is no endpoint")
            }
        };
        Self {
            inner: Arc::new(Inner {
                service,
                port,
                http: OnceLock::new(),
                credentials: CachedCredentials::new(config),
                region: region.unwrap_or_default(),
                url,
            }),
        }
    }

    /// Calls `operation` with `input`; the answer's JSON document (`{}` for
    /// an empty one).
    pub async fn call(
        &self,
        operation: &str,
        input: &(impl Serialize + ?Sized),
    ) -> PortResult<serde_json::Value> {
        self.call_for(operation, input).await
    }

    /// [`Self::call`], the answer read as `T`. The request's bytes are
    /// zeroed once sent, the answer's once read (a KMS plaintext, a vault
    /// value pass through them): an `input` that borrows a secret leaves no
    /// other copy of it in this code's memory (the HTTP and TLS stacks'
    /// buffers are theirs).
    pub async fn call_for<T: DeserializeOwned>(
        &self,
        operation: &str,
        input: &(impl Serialize + ?Sized),
    ) -> PortResult<T> {
        let what = format!("{}.{operation}", self.inner.service.target_prefix);
        self.exchange(&what, "", Some(&what), input).await
    }

    /// A restJson operation: `input` posted to its `path` (below the
    /// endpoint, no leading `/`); `name` says which in errors.
    pub async fn post_for<T: DeserializeOwned>(
        &self,
        name: &str,
        path: &str,
        input: &(impl Serialize + ?Sized),
    ) -> PortResult<T> {
        self.exchange(name, path, None, input).await
    }

    /// One operation, tried again while AWS answers that it is throttled,
    /// within the attempts the HTTP client's own retries leave.
    async fn exchange<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        target: Option<&str>,
        input: &(impl Serialize + ?Sized),
    ) -> PortResult<T> {
        let inner = &self.inner;
        let url = inner
            .url
            .as_ref()
            .map(|base| format!("{base}{path}"))
            .map_err(|why| PortError::permanent(inner.port, *why))?;
        let body = RequestBody::of(input).map_err(|e| {
            PortError::permanent(
                inner.port,
                format!("{what}: the input cannot be written as JSON: {e}"),
            )
        })?;
        let mut attempt = 1;
        loop {
            let (response, answered) = inner.send(&url, what, target, &body, attempt).await?;
            if response.status().is_success() {
                return answer(inner.port, what, response).await;
            }
            let refused = refusal(inner.port, what, response).await;
            if refused.kind != ErrorKind::Throttled || answered >= ATTEMPTS {
                return Err(refused);
            }
            tokio::time::sleep(inner.http()?.backoff(answered)).await;
            attempt = answered + 1;
        }
    }
}

impl Inner {
    /// One signed request as try `attempt` of its call, retried by the HTTP
    /// client on a server error; with the number of the try answered.
    async fn send(
        &self,
        url: &str,
        what: &str,
        target: Option<&str>,
        body: &RequestBody,
        attempt: u32,
    ) -> PortResult<(Response, u32)> {
        let identity = self.credentials.identity(self.port).await?;
        let mut headers = vec![("content-type", self.service.content_type)];
        headers.extend(target.map(|target| ("x-amz-target", target)));
        let scope = Scope {
            identity: &identity,
            region: &self.region,
            service: self.service.signing_name,
        };
        let signed = signed_headers(
            "POST",
            url,
            &headers,
            body.as_ref(),
            &scope,
            SigningSettings::default(),
        )
        .map_err(|e| PortError::permanent(self.port, e.to_string()))?;
        self.http()?
            .send_answered_from(what, attempt, |client| {
                let mut request = client.post(url).body(body.clone().into_body());
                for (name, value) in &headers {
                    request = request.header(*name, *value);
                }
                for (name, value) in &signed {
                    request = request.header(name, value);
                }
                request
            })
            .await
    }

    /// The HTTP client, built on first use (an error is kept and repeated).
    fn http(&self) -> PortResult<&HttpClient> {
        self.http
            .get_or_init(|| {
                let policy = RetryPolicy {
                    max_attempts: ATTEMPTS,
                    ..RetryPolicy::default()
                };
                HttpClient::new(self.port, REQUEST_TIMEOUT, policy).map_err(|e| e.message)
            })
            .as_ref()
            .map_err(|why| PortError::permanent(self.port, why.clone()))
    }
}

/// A request's JSON, serialized once into a buffer of exactly its size (no
/// reallocation leaves a copy behind) that is zeroed when the last request
/// sent from it is dropped: each try hands reqwest a reference, not a copy.
#[derive(Clone)]
struct RequestBody(Arc<Zeroizing<Vec<u8>>>);

impl RequestBody {
    fn of(input: &(impl Serialize + ?Sized)) -> serde_json::Result<Self> {
        let size = rootmail_pipeline::json_len(input)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(size));
        serde_json::to_writer(&mut *bytes, input)?;
        Ok(Self(Arc::new(bytes)))
    }

    fn into_body(self) -> reqwest::Body {
        reqwest::Body::from(bytes::Bytes::from_owner(self))
    }
}

impl AsRef<[u8]> for RequestBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The region a global service's partition is served from.
fn global_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "cn-northwest-1"
    } else if region.starts_with("us-gov-") {
        "us-gov-west-1"
    } else {
        "us-east-1"
    }
}

/// `https://PREFIX[-fips].REGION.DOMAIN/`, the partition's domain.
fn regional_url(prefix: &str, region: &str, fips: bool, dual_stack: bool) -> String {
    let fips = if fips { "-fips" } else { "" };
    let china = region.starts_with("cn-");
    let domain = match (dual_stack, china) {
        (false, false) => "amazonaws.com",
        (false, true) => "amazonaws.com.cn",
        (true, false) => "api.aws",
        (true, true) => "api.amazonwebservices.com.cn",
    };
    format!("https://{prefix}{fips}.{region}.{domain}/")
}

async fn answer<T: DeserializeOwned>(
    port: &'static str,
    what: &str,
    response: Response,
) -> PortResult<T> {
    let bytes = response.bytes().await.map_err(|e| {
        PortError::transient(port, format!("{what}: reading the answer: {e}")).with_source(e)
    })?;
    // The answer's own buffer when reqwest keeps no other reference to it,
    // so zeroing it leaves no copy; else a copy, and the original is the
    // HTTP stack's.
    let body = Zeroizing::new(
        bytes
            .try_into_mut()
            .map_or_else(|shared| shared.to_vec(), Vec::from),
    );
    let document: &[u8] = match body.iter().all(u8::is_ascii_whitespace) {
        true => b"{}",
        false => &body,
    };
    // serde's message may quote the answer: only where it failed is said.
    serde_json::from_slice(document).map_err(|e| {
        PortError::permanent(
            port,
            format!(
                "{what}: the answer is not what the API documents (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// An error answer as a port error: its kind from the status and AWS's code
/// (a throttle is retried), the code kept for the caller, the request id for
/// AWS support. The message AWS gave is not kept: it may quote the input.
async fn refusal(port: &'static str, what: &str, response: Response) -> PortError {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (request_id, type_header) = (header("x-amzn-requestid"), header("x-amzn-errortype"));
    let body = crate::error::error_answer(response).await;
    let code = error_code(type_header.as_deref(), &body);
    let message = format!(
        "{what}: HTTP {status} {}{}",
        code.as_deref().unwrap_or("(no error code)"),
        request_id.map_or(String::new(), |id| format!(" (request id {id})"))
    );
    let error = PortError::new(answer_kind(status, code.as_deref()), port, message)
        .with_status(status)
        .with_code(code);
    match reason_field(&body) {
        Some(reason) => error.with_answer(reason),
        None => error,
    }
}

/// The `Reason` some services add to an error (Organizations'
/// `ConstraintViolationException`: `CLOSE_ACCOUNT_QUOTA_EXCEEDED`, ...): one
/// of a documented list of words, so it quotes no input. Anything else is
/// not kept.
fn reason_field(body: &str) -> Option<String> {
    let document: serde_json::Value = serde_json::from_str(body).ok()?;
    let reason = document.get("Reason")?.as_str()?;
    let word = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    (!reason.is_empty() && reason.len() <= 64 && reason.chars().all(word))
        .then(|| reason.to_string())
}

/// AWS's error code: the `x-amzn-ErrorType` header, else the body's
/// `__type` (or `code`), without a namespace (`ns#Code`) or a URI after `:`.
fn error_code(type_header: Option<&str>, body: &str) -> Option<String> {
    let from_body = || {
        let document: serde_json::Value = serde_json::from_str(body).ok()?;
        ["__type", "code", "Code"]
            .iter()
            .find_map(|k| document.get(k)?.as_str().map(str::to_string))
    };
    let raw = type_header.map(str::to_string).or_else(from_body)?;
    let code = raw.rsplit('#').next().unwrap_or_default();
    let code = code.split(':').next().unwrap_or_default().trim();
    (!code.is_empty()).then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{config_for, patient_server};

    const THROTTLED: &str = "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 32\r\n\r\n{\"__type\":\"ThrottlingException\"}";
    const REFUSED: &str = "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 25\r\n\r\n{\"__type\":\"InvalidToken\"}";
    const UNAVAILABLE: &str =
        "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
    const ANSWERED: &str = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 8\r\n\r\n{\"ok\":1}";

    fn client(url: &str) -> JsonClient {
        JsonClient::new(&config_for(url), STEP_FUNCTIONS, "stepfunctions")
    }

    /// Each call's answers, and how many requests the client made for it.
    async fn served(answers: Vec<Option<&'static str>>) -> (PortResult<serde_json::Value>, usize) {
        let (url, served) = patient_server(answers, Duration::from_secs(2)).await;
        let answer = client(&url)
            .call("SendTaskSuccess", &serde_json::json!({}))
            .await;
        (answer, served.await.expect("server"))
    }

    #[tokio::test]
    async fn a_throttled_call_is_tried_three_times_and_no_more() {
        let (answer, requests) =
            served(vec![Some(THROTTLED), Some(THROTTLED), Some(ANSWERED)]).await;
        assert_eq!(
            answer.expect("the third try is answered"),
            serde_json::json!({"ok": 1})
        );
        assert_eq!(requests, usize::MAX, "all three answers taken");

        let throttled = vec![Some(THROTTLED); 3].into_iter().chain([Some(ANSWERED)]);
        let (answer, requests) = served(throttled.collect()).await;
        let refused = answer.expect_err("three throttles");
        assert_eq!(refused.kind, ErrorKind::Throttled, "{refused}");
        assert_eq!(refused.code.as_deref(), Some("ThrottlingException"));
        assert_eq!(requests, 3, "no fourth try");
    }

    #[tokio::test]
    async fn server_errors_and_throttles_share_one_budget_of_three_tries() {
        // The HTTP client retries the 503 itself; the throttle after it is
        // the call's third try, so the answer waiting behind is not asked
        // for (the retries used to multiply: up to 4 x 3 requests).
        let answers = vec![
            Some(UNAVAILABLE),
            Some(UNAVAILABLE),
            Some(THROTTLED),
            Some(ANSWERED),
        ];
        let (answer, requests) = served(answers).await;
        let refused = answer.expect_err("three tries spent");
        assert_eq!(refused.kind, ErrorKind::Throttled, "{refused}");
        assert_eq!(requests, 3, "no fourth try");

        let answers = vec![Some(UNAVAILABLE), Some(THROTTLED), Some(ANSWERED)];
        let (answer, requests) = served(answers).await;
        assert_eq!(answer.expect("third try"), serde_json::json!({"ok": 1}));
        assert_eq!(requests, usize::MAX, "all three answers taken");

        let answers = vec![Some(UNAVAILABLE); 3]
            .into_iter()
            .chain([Some(ANSWERED)]);
        let (answer, requests) = served(answers.collect()).await;
        let failed = answer.expect_err("three server errors");
        assert!(failed.is_transient(), "{failed}");
        assert_eq!(requests, 3, "no fourth try");
    }

    #[tokio::test]
    async fn a_refusal_is_answered_at_once() {
        let (answer, requests) = served(vec![Some(REFUSED), Some(ANSWERED)]).await;
        let refused = answer.expect_err("refused");
        assert_eq!(refused.code.as_deref(), Some("InvalidToken"), "{refused}");
        assert!(!refused.is_transient(), "{refused}");
        assert_eq!(requests, 1, "not tried again");
    }

    #[test]
    fn a_request_is_serialized_once_into_a_buffer_of_its_exact_size() {
        // A buffer that grew would have left the bytes written before in
        // memory it freed without zeroing.
        let secret = "p".repeat(5000) + "\"quoted\" and \\ escaped";
        let input = serde_json::json!({"SecretId": "rootmail/1/password", "SecretString": secret});
        let body = RequestBody::of(&input).unwrap();
        assert_eq!(body.0.len(), body.0.capacity());
        assert_eq!(
            body.as_ref(),
            serde_json::to_vec(&input).unwrap().as_slice()
        );
    }

    #[test]
    fn endpoints_are_the_standard_rules_ones() {
        assert_eq!(
            regional_url("states", "eu-west-1", false, false),
            "https://states.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            regional_url("states", "us-gov-west-1", true, false),
            "https://states-fips.us-gov-west-1.amazonaws.com/"
        );
        assert_eq!(
            regional_url("states", "cn-north-1", false, false),
            "https://states.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            regional_url("states", "us-east-1", true, true),
            "https://states-fips.us-east-1.api.aws/"
        );
        assert_eq!(
            regional_url("states", "cn-northwest-1", false, true),
            "https://states.cn-northwest-1.api.amazonwebservices.com.cn/"
        );
    }

    #[test]
    fn a_global_service_has_one_endpoint_per_partition() {
        let url = |region: &'static str| {
            let config = aws_config::SdkConfig::builder()
                .region(aws_config::Region::new(region))
                .build();
            let client = JsonClient::global(&config, ORGANIZATIONS, "organizations");
            (
                client.inner.url.clone().unwrap(),
                client.inner.region.clone(),
            )
        };
        let aws = "https://organizations.us-east-1.amazonaws.com/";
        assert_eq!(url("eu-west-1"), (aws.to_string(), "us-east-1".to_string()));
        assert_eq!(url("us-east-1").0, aws);
        assert_eq!(
            url("cn-north-1"),
            (
                "https://organizations.cn-northwest-1.amazonaws.com.cn/".to_string(),
                "cn-northwest-1".to_string()
            )
        );
        assert_eq!(
            url("us-gov-east-1").0,
            "https://organizations.us-gov-west-1.amazonaws.com/"
        );
    }

    #[test]
    fn only_a_reason_word_is_kept_from_an_error() {
        let kept = reason_field(
            r#"{"__type":"ConstraintViolationException","Message":"x","Reason":"CLOSE_ACCOUNT_QUOTA_EXCEEDED"}"#,
        );
        assert_eq!(kept.as_deref(), Some("CLOSE_ACCOUNT_QUOTA_EXCEEDED"));
        assert_eq!(
            reason_field(r#"{"Reason":"the code 123456 is wrong"}"#),
            None
        );
        assert_eq!(reason_field(r#"{"message":"x"}"#), None);
        assert_eq!(reason_field("<html>"), None);
    }

    #[test]
    fn error_codes_lose_their_namespace_and_uri() {
        let body = |t: &str| format!(r#"{{"__type":"{t}","message":"Task Timed Out: 'x'"}}"#);
        assert_eq!(
            error_code(
                None,
                &body("com.amazonaws.swf.service.v2.model#TaskTimedOut")
            )
            .as_deref(),
            Some("TaskTimedOut")
        );
        assert_eq!(
            error_code(None, &body("InvalidToken")).as_deref(),
            Some("InvalidToken")
        );
        assert_eq!(
            error_code(
                Some("ThrottlingException:http://internal.amazon.com/coral/"),
                &body("Other")
            )
            .as_deref(),
            Some("ThrottlingException")
        );
        assert_eq!(error_code(None, "<html>bad gateway</html>"), None);
        assert_eq!(error_code(None, r#"{"__type":""}"#), None);
    }
}
