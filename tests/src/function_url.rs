//! A stand-in for a Lambda function URL with `AWS_IAM` auth, for the operator
//! function: it checks each request's SigV4 signature as AWS does (signed
//! again with the caller's secret, compared), refuses a bad or missing one
//! with 403, and hands the handler the event AWS would, with the caller's
//! ARN in `requestContext.authorizer.iam` and the request's headers. Beside
//! it, STS's GetCallerIdentity for the caller proofs, checked the same way.
//! Nothing real can run here: Lambda needs Docker, moto does not serve
//! function URLs, and moto's STS checks no signature.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::Router;
use axum::extract::State;
use lambda_runtime::LambdaEvent;
use lifecycle::Lifecycle;
use rootmail_aws::caller_proof::{self, CallerProofs};
use rootmail_aws::lifecycle_adapters::AwsLifecycle;
use rootmail_aws::sigv4::{Scope, parse_amz_date};
use rootmail_fake_http::{FakeHttp, Received, Reply};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// An access key the stand-in knows: its secret and the ARN AWS would name.
pub struct Caller {
    pub access_key: &'static str,
    pub secret: &'static str,
    pub arn: &'static str,
}

pub struct FunctionUrl {
    pub url: String,
    /// The function's ARN (the command line's `OPERATOR_FUNCTION_ARN`).
    pub function_arn: String,
    /// The STS that checks the caller proofs (the command line's
    /// `OPERATOR_STS_URL`).
    pub sts_url: String,
    function: Arc<Function>,
    _server: FakeHttp,
    _sts: FakeHttp,
}

struct Function {
    handler: Lifecycle<AwsLifecycle>,
    callers: Arc<Callers>,
}

/// The access keys AWS knows, and the region they sign for.
struct Callers {
    keys: HashMap<&'static str, Caller>,
    region: String,
}

impl FunctionUrl {
    /// Serves `handler` (an operator function) at a loopback URL, with an STS
    /// beside it that the handler checks caller proofs at.
    pub fn start(mut handler: Lifecycle<AwsLifecycle>, callers: Vec<Caller>, region: &str) -> Self {
        let callers = Arc::new(Callers {
            keys: callers.into_iter().map(|c| (c.access_key, c)).collect(),
            region: region.to_string(),
        });
        let sts = FakeHttp::start(
            Router::new()
                .fallback(get_caller_identity)
                .with_state(callers.clone()),
        );
        handler.caller_proofs = Some(CallerProofs::new(&sts.url()).expect("an STS URL"));
        let function = Arc::new(Function { handler, callers });
        let server = FakeHttp::start(Router::new().fallback(invoke).with_state(function.clone()));
        Self {
            url: format!("{}/", server.url()),
            function_arn: FUNCTION_ARN.to_string(),
            sts_url: sts.url(),
            function,
            _server: server,
            _sts: sts,
        }
    }

    /// `lambda:InvokeFunction` straight to the function, past the URL's IAM
    /// auth: the event is whatever the invoker wrote.
    pub async fn invoke_directly(&self, event: Value) -> Value {
        self.function
            .handler
            .handle_operator(LambdaEvent::new(event, invoked()))
            .await
    }

    /// A caller proof for `body` signed with one of the callers' keys, as the
    /// command line makes it for this function.
    pub fn proof(&self, access_key: &str, body: &[u8]) -> String {
        self.proof_for(access_key, FUNCTION_ARN, body)
    }

    /// [`FunctionUrl::proof`] made for the function `audience`.
    pub fn proof_for(&self, access_key: &str, audience: &str, body: &[u8]) -> String {
        let caller = &self.function.callers.keys[access_key];
        let identity: Identity =
            Credentials::new(caller.access_key, caller.secret, None, None, "test").into();
        let scope = Scope {
            identity: &identity,
            region: &self.function.callers.region,
            service: "sts",
        };
        caller_proof::proof(&self.sts_url, &scope, audience, body).expect("a proof")
    }
}

/// Any request: the function's answer for a verified caller, else 403.
async fn invoke(State(function): State<Arc<Function>>, request: Received) -> Reply {
    let answer = match verified_caller(&request, &function.callers) {
        Some(arn) => {
            function
                .handler
                .handle_operator(LambdaEvent::new(event(&arn, &request), invoked()))
                .await
        }
        None => json!({"statusCode": 403, "body": json!({"message": "Forbidden"}).to_string()}),
    };
    let status = answer["statusCode"].as_u64().unwrap_or(500) as u16;
    Reply::text(status, answer["body"].as_str().unwrap_or_default())
}

/// The operator function's ARN here.
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rootmail-operator";

/// The context Lambda gives the function, invoked by its `live` alias.
fn invoked() -> lambda_runtime::Context {
    let mut context = lambda_runtime::Context::default();
    context.invoked_function_arn = format!("{FUNCTION_ARN}:live");
    context
}

/// The event a function URL gives its function for a verified caller.
fn event(arn: &str, request: &Received) -> Value {
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    url_event(arn, &headers, &String::from_utf8_lossy(&request.body))
}

/// A function URL's event: the caller its IAM auth verified, the request's
/// headers (in lower case, as function URLs name them) and its body.
pub fn url_event(arn: &str, headers: &[(&str, &str)], body: &str) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), json!(value)))
        .collect();
    json!({
        "version": "2.0",
        "headers": headers,
        "requestContext": {
            "http": {"method": "POST", "path": "/"},
            "authorizer": {"iam": {"userArn": arn}}
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

/// STS's GetCallerIdentity for a presigned request, as AWS checks one: the
/// signature made again with the signer's secret at the time it names, over
/// the headers it says it covers, within 15 minutes of that time.
async fn get_caller_identity(State(callers): State<Arc<Callers>>, request: Received) -> Reply {
    match presigned_signer(&request, &callers) {
        Some(arn) => Reply::new(
            200,
            "text/xml",
            format!(
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AIDEXAMPLE</UserId>\
                 <Account>123456789012</Account></GetCallerIdentityResult>\
                 </GetCallerIdentityResponse>"
            ),
        ),
        None => Reply::text(
            403,
            "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>",
        ),
    }
}

fn presigned_signer(request: &Received, callers: &Callers) -> Option<String> {
    let pairs = request.query_pairs();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let access_key = param("X-Amz-Credential")?.split('/').next()?;
    let caller = callers.keys.get(access_key)?;
    let time = parse_amz_date(param("X-Amz-Date")?)?;
    let lifetime = Duration::from_secs(param("X-Amz-Expires")?.parse().ok()?);
    // As STS: 15 minutes from the time of signing, whatever X-Amz-Expires says.
    if SystemTime::now() > time + Duration::from_secs(15 * 60) {
        return None;
    }
    let unsigned: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| !k.starts_with("X-Amz-"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut url = reqwest::Url::parse(&format!("http://{}/", request.header("host")?)).ok()?;
    url.query_pairs_mut().extend_pairs(unsigned);
    let covered: Vec<(&str, &str)> = param("X-Amz-SignedHeaders")?
        .split(';')
        .filter(|name| *name != "host")
        .map(|name| Some((name, request.header(name)?)))
        .collect::<Option<_>>()?;
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(lifetime);
    let identity: Identity =
        Credentials::new(caller.access_key, caller.secret, None, None, "test").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&callers.region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        covered.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .ok()?;
    let (_, signature) = sign(signable, &params).ok()?.into_parts();
    (Some(signature.as_str()) == param("X-Amz-Signature")).then(|| caller.arn.to_string())
}

/// The caller's ARN when the request's SigV4 signature, made for the
/// function URL it was sent to (its `Host`), is right.
fn verified_caller(request: &Received, callers: &Callers) -> Option<String> {
    let header = |name: &str| request.header(name).map(str::to_string);
    let url = format!("http://{}/", header("host")?);
    let authorization = header("authorization")?;
    let access_key = authorization
        .split("Credential=")
        .nth(1)?
        .split('/')
        .next()?
        .to_string();
    let caller = callers.keys.get(access_key.as_str())?;
    let time = parse_amz_date(&header("x-amz-date")?)?;
    let identity: Identity =
        Credentials::new(caller.access_key, caller.secret, None, None, "test").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&callers.region)
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
