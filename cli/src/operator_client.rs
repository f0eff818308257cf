//! `rootmail ... --aws` for a person's lifecycle requests: one SigV4-signed
//! POST to the operator function's URL (`OPERATOR_URL`, the stack's
//! `OperatorUrl` output). AWS checks the signature and tells the function who
//! is calling, and the caller proof sent beside it lets the function confirm
//! that with STS; the function alone opens the vault and writes the audit trail.
//! The person's own credentials need no table, key or vault access at all.

use anyhow::Context as _;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_smithy_runtime_api::client::identity::Identity;
use rootmail_aws::caller_proof::{self, PROOF_HEADER, sts_endpoint};
use rootmail_aws::sigv4::{Scope, SigningSettings, signed_headers};
use rootmail_lifecycle::operator::{OperatorAnswer, OperatorRequest};
use std::time::Duration;

/// Where the operator function listens.
pub const URL_VARIABLE: &str = "OPERATOR_URL";
/// The operator function's ARN: the audience of the caller proof.
pub const FUNCTION_VARIABLE: &str = "OPERATOR_FUNCTION_ARN";
/// The STS the function checks the caller proof at, when not its region's
/// (a stand-in's, in the tests). Not the SDK's `AWS_ENDPOINT_URL_STS`: a
/// person's VPC or FIPS endpoint there is not the one the function asks.
const STS_VARIABLE: &str = "OPERATOR_STS_URL";

/// What the function answered: done, or refused with the reason.
pub enum Reply {
    Done(Box<OperatorAnswer>),
    Refused(String),
    /// Refused for now: running it again later may do (AWS has not caught up).
    NotYet(String),
}

/// Sends `request` as the person whose AWS credentials are configured.
pub async fn call(request: &OperatorRequest) -> anyhow::Result<Reply> {
    let url = std::env::var(URL_VARIABLE).map_err(|_| {
        anyhow::anyhow!(
            "set {URL_VARIABLE} to the stack's OperatorUrl output (see the OperatorEnvironment output)"
        )
    })?;
    let function = std::env::var(FUNCTION_VARIABLE).map_err(|_| {
        anyhow::anyhow!(
            "set {FUNCTION_VARIABLE} to the operator function's ARN (see the OperatorEnvironment output)"
        )
    })?;
    check_operator_url(&url, &function)?;
    let (identity, configured_region) = your_identity().await?;
    // The function's region, which its URL names: where it checks the proof.
    let region = url_region(&url).unwrap_or(configured_region);
    let body = serde_json::to_vec(request)?;
    let headers = signed(&url, &body, &function, &identity, &region)?;
    let client = rootmail_tickets::http::client_builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut post = client.post(&url).body(body);
    for (name, value) in headers {
        post = post.header(name, value);
    }
    let response = post
        .send()
        .await
        .with_context(|| format!("calling the operator function at {url}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    reply(status, &text)
}

/// The answer carries root passwords, and the request a caller proof and
/// perhaps an MFA seed or a customer's code: only to a Lambda function URL
/// in the operator function's region, over TLS, or to a stand-in on this
/// machine. A mistyped or planted host gets nothing.
fn check_operator_url(url: &str, function_arn: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{URL_VARIABLE} {url}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let function_region = function_arn.split(':').nth(3).filter(|r| !r.is_empty());
    let function_url = url_region(url).is_some_and(|r| Some(r.as_str()) == function_region);
    let allowed = match parsed.scheme() {
        "https" => loopback || function_url,
        "http" => loopback,
        _ => false,
    };
    if !allowed {
        anyhow::bail!(
            "{URL_VARIABLE} must be the stack's OperatorUrl, an https://ID.lambda-url.REGION.on.aws/ \
             URL in the region of {FUNCTION_VARIABLE} ({function_arn}), not {url}"
        );
    }
    Ok(())
}

/// The region of a function URL (`https://ID.lambda-url.REGION.on.aws/`).
fn url_region(url: &str) -> Option<String> {
    let host = reqwest::Url::parse(url).ok()?.host_str()?.to_string();
    let (_, rest) = host.split_once(".lambda-url.")?;
    Some(rest.strip_suffix(".on.aws")?.to_string())
}

/// The configured credentials and region.
async fn your_identity() -> anyhow::Result<(Identity, String)> {
    let aws = rootmail_aws::sdk_config().await;
    let region = aws
        .region()
        .map(|r| r.to_string())
        .context("no AWS region: set AWS_REGION to the stack's region")?;
    let credentials = aws
        .credentials_provider()
        .context("no AWS credentials provider")?
        .provide_credentials()
        .await
        .context("reading your AWS credentials")?;
    Ok((credentials.into(), region))
}

/// The POST's headers: its content type, its SigV4 signature, and the caller
/// proof the function asks STS about for this body (a direct invoke could
/// name anyone as the caller).
fn signed(
    url: &str,
    body: &[u8],
    function: &str,
    identity: &Identity,
    region: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let content_type = ("content-type", "application/json");
    let scope = Scope {
        identity,
        region,
        service: "lambda",
    };
    let mut headers = signed_headers(
        "POST",
        url,
        &[content_type],
        body,
        &scope,
        SigningSettings::default(),
    )?;
    let sts = std::env::var(STS_VARIABLE).unwrap_or_else(|_| sts_endpoint(region));
    let sts_scope = Scope {
        service: "sts",
        ..scope
    };
    headers.push((
        PROOF_HEADER.to_string(),
        caller_proof::proof(&sts, &sts_scope, function, body)?,
    ));
    headers.push((content_type.0.to_string(), content_type.1.to_string()));
    Ok(headers)
}

fn reply(status: u16, text: &str) -> anyhow::Result<Reply> {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let said = |field: &str| json.get(field).and_then(|v| v.as_str()).map(str::to_string);
    match status {
        200 => Ok(Reply::Done(Box::new(
            serde_json::from_str(text).context("the operator function's answer")?,
        ))),
        409 if json.get("not_yet") == Some(&serde_json::Value::Bool(true)) => {
            Ok(Reply::NotYet(said("refused").unwrap_or_default()))
        }
        409 => Ok(Reply::Refused(said("refused").unwrap_or_default())),
        403 => anyhow::bail!(
            "AWS refused the call (403): your role needs OperatorPolicy (lambda:InvokeFunctionUrl and lambda:InvokeFunction on the operator function){}",
            said("refused").map_or(String::new(), |r| format!("; {r}"))
        ),
        _ => anyhow::bail!(
            "the operator function answered {status}: {}",
            said("error")
                .or_else(|| said("refused"))
                .unwrap_or_else(|| text.chars().take(300).collect())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_urls_region_is_read_from_its_host() {
        assert_eq!(
            url_region("https://abcdefghij.lambda-url.eu-central-1.on.aws/").as_deref(),
            Some("eu-central-1")
        );
        assert_eq!(url_region("http://127.0.0.1:9000/"), None);
        assert_eq!(url_region("not a url"), None);
    }

    #[test]
    fn a_refusal_for_now_is_told_from_one_for_good() {
        let answer = |body: &str| match reply(409, body).unwrap() {
            Reply::Refused(reason) => format!("refused: {reason}"),
            Reply::NotYet(reason) => format!("not yet: {reason}"),
            Reply::Done(_) => "done".to_string(),
        };
        let later = r#"{"refused": "AWS shows it ACTIVE still", "not_yet": true}"#;
        assert_eq!(answer(later), "not yet: AWS shows it ACTIVE still");
        let never = r#"{"refused": "account 444455556666 is closed"}"#;
        assert_eq!(answer(never), "refused: account 444455556666 is closed");
    }

    #[test]
    fn root_passwords_travel_over_tls_to_the_function_only() {
        let function = "arn:aws:lambda:eu-central-1:111122223333:function:rootmail-operator";
        for (url, taken) in [
            ("https://abcdefghij.lambda-url.eu-central-1.on.aws/", true),
            ("http://127.0.0.1:9000/", true),
            ("http://[::1]:9000/", true),
            ("http://localhost:9000/", true),
            ("https://localhost:9443/", true),
            ("http://abcdefghij.lambda-url.eu-central-1.on.aws/", false),
            ("https://abcdefghij.lambda-url.us-east-1.on.aws/", false),
            ("https://operator.example.com/", false),
            (
                "https://abcdefghij.lambda-url.eu-central-1.on.aws.example.com/",
                false,
            ),
            ("http://10.0.0.5/", false),
            ("ftp://127.0.0.2/", false),
            ("not a url", false),
        ] {
            assert_eq!(check_operator_url(url, function).is_ok(), taken, "{url}");
        }
        let url = "https://abcdefghij.lambda-url.eu-central-1.on.aws/";
        assert!(check_operator_url(url, "not an ARN").is_err());
    }
}
