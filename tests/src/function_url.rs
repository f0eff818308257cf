//! A stand-in for a Lambda function URL with `AWS_IAM` auth, for the operator
//! function: it checks each request's SigV4 signature as AWS does (signed
//! again with the caller's secret, compared), refuses a bad or missing one
//! with 403, and hands the handler the event AWS would, with the caller's
//! ARN in `requestContext.authorizer.iam`. Nothing real can run here: Lambda
//! needs Docker and moto does not serve function URLs.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::Router;
use axum::extract::State;
use lambda_runtime::LambdaEvent;
use lifecycle::Lifecycle;
use rootmail_aws::lifecycle_adapters::AwsLifecycle;
use rootmail_fake_http::{FakeHttp, Received, Reply};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An access key the stand-in knows: its secret and the ARN AWS would name.
pub struct Caller {
    pub access_key: &'static str,
    pub secret: &'static str,
    pub arn: &'static str,
}

pub struct FunctionUrl {
    pub url: String,
    _server: FakeHttp,
}

struct Function {
    handler: Lifecycle<AwsLifecycle>,
    callers: HashMap<&'static str, Caller>,
    region: String,
}

impl FunctionUrl {
    /// Serves `handler` (an operator function) at a loopback URL.
    pub fn start(handler: Lifecycle<AwsLifecycle>, callers: Vec<Caller>, region: &str) -> Self {
        let function = Function {
            handler,
            callers: callers.into_iter().map(|c| (c.access_key, c)).collect(),
            region: region.to_string(),
        };
        let server = FakeHttp::start(
            Router::new()
                .fallback(invoke)
                .with_state(Arc::new(function)),
        );
        Self {
            url: format!("{}/", server.url()),
            _server: server,
        }
    }
}

/// Any request: the function's answer for a verified caller, else 403.
async fn invoke(State(function): State<Arc<Function>>, request: Received) -> Reply {
    let answer = match verified_caller(&request, &function.region, &function.callers) {
        Some(arn) => {
            function
                .handler
                .handle_operator(LambdaEvent::new(
                    event(&arn, &request.body),
                    Default::default(),
                ))
                .await
        }
        None => json!({"statusCode": 403, "body": json!({"message": "Forbidden"}).to_string()}),
    };
    let status = answer["statusCode"].as_u64().unwrap_or(500) as u16;
    Reply::text(status, answer["body"].as_str().unwrap_or_default())
}

/// The event a function URL gives its function for a verified caller.
fn event(arn: &str, body: &[u8]) -> Value {
    json!({
        "version": "2.0",
        "requestContext": {
            "http": {"method": "POST", "path": "/"},
            "authorizer": {"iam": {"userArn": arn}}
        },
        "body": String::from_utf8_lossy(body),
        "isBase64Encoded": false,
    })
}

/// The caller's ARN when the request's SigV4 signature, made for the
/// function URL it was sent to (its `Host`), is right.
fn verified_caller(
    request: &Received,
    region: &str,
    callers: &HashMap<&str, Caller>,
) -> Option<String> {
    let header = |name: &str| request.header(name).map(str::to_string);
    let url = format!("http://{}/", header("host")?);
    let authorization = header("authorization")?;
    let access_key = authorization
        .split("Credential=")
        .nth(1)?
        .split('/')
        .next()?
        .to_string();
    let caller = callers.get(access_key.as_str())?;
    let time = amz_date(&header("x-amz-date")?)?;
    let identity: Identity =
        Credentials::new(caller.access_key, caller.secret, None, None, "test").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    let content_type = header("content-type").unwrap_or_default();
    let signable = SignableRequest::new(
        "POST",
        &url,
        [("content-type", content_type.as_str())].into_iter(),
        SignableBody::Bytes(&request.body),
    )
    .ok()?;
    let (instructions, _) = sign(signable, &params).ok()?.into_parts();
    let expected = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.to_string())?;
    (expected == authorization).then(|| caller.arn.to_string())
}

/// `20261203T101500Z` as a time.
fn amz_date(text: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hh, mm, ss) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    // Days since the epoch of a civil date (proleptic Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}
