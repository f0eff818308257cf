//! Who calls the operator function, proved by the caller's own credentials.
//!
//! A function URL with `AWS_IAM` auth names its verified caller in the
//! event. But whoever may `lambda:InvokeFunction` the function directly (a
//! grant in some other policy) writes that event themselves, naming anyone.
//! So the command line also sends a presigned `sts:GetCallerIdentity`
//! request, whose signature covers a hash of the request's body. The function
//! sends it to STS, at the endpoint it is configured with and nowhere else,
//! and STS's answer names the caller. Without the signer's secret no one can
//! make one, and a proof seen in transit works only for the same body, for a
//! minute. (EKS's aws-iam-authenticator proves a caller to a cluster the same
//! way.)

use crate::sigv4::{Scope, SignError, presigned_url};
use sha2::{Digest as _, Sha256};
use std::time::Duration;

/// The request header that carries the proof: a presigned URL.
pub const PROOF_HEADER: &str = "x-rootmail-caller-proof";
/// The header the proof's signature covers: the hex SHA-256 of the body.
pub const BODY_HASH_HEADER: &str = "x-rootmail-body-sha256";
/// How long a proof the command line makes stays valid: a clock a little off
/// still works, a replay has little time.
pub const PROOF_LIFETIME: Duration = Duration::from_secs(60);
/// The longest lifetime the function takes.
const MAX_LIFETIME_SECS: u64 = 300;
const ACTION: &str = "GetCallerIdentity";
const VERSION: &str = "2011-06-15";
/// A GetCallerIdentity answer is under a kilobyte.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// STS's regional endpoint, where the function checks proofs (China's
/// regions have a domain of their own).
pub fn sts_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://sts.{region}.{domain}")
}

/// Hex SHA-256 of a request body.
pub fn body_hash(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A proof for `body`, signed by `scope`'s identity (service `sts`) for the
/// STS at `endpoint`.
pub fn proof(endpoint: &str, scope: &Scope<'_>, body: &[u8]) -> Result<String, SignError> {
    let url = format!(
        "{}/?Action={ACTION}&Version={VERSION}",
        endpoint.trim_end_matches('/')
    );
    presigned_url(
        "GET",
        &url,
        &[(BODY_HASH_HEADER, &body_hash(body))],
        scope,
        PROOF_LIFETIME,
    )
}

/// Why a proof named no caller.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("the request has no caller proof ({PROOF_HEADER}): use rootmail's command line")]
    Missing,
    #[error("the caller proof is not a GetCallerIdentity request to {endpoint}: {reason}")]
    NotAProof {
        endpoint: String,
        reason: &'static str,
    },
    #[error("STS refused the caller proof ({0})")]
    Refused(u16),
    #[error("STS could not check the caller proof: {0}")]
    Unavailable(String),
}

impl ProofError {
    /// STS down or slow: asking again later may work.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Checks proofs with the STS at one endpoint.
#[derive(Debug, Clone)]
pub struct CallerProofs {
    endpoint: reqwest::Url,
    client: reqwest::Client,
}

impl CallerProofs {
    /// Proofs checked at `endpoint` (`https://sts.REGION.amazonaws.com`, or
    /// a stand-in's in the tests).
    pub fn new(endpoint: &str) -> Result<Self, String> {
        let endpoint =
            reqwest::Url::parse(endpoint).map_err(|e| format!("STS endpoint {endpoint}: {e}"))?;
        let client = rootmail_tickets::http::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { endpoint, client })
    }

    /// The caller's ARN, as STS names the signer of `proof`, when `proof`
    /// was made for `body`.
    pub async fn caller(&self, proof: &str, body: &[u8]) -> Result<String, ProofError> {
        let url = self.checked(proof)?;
        let response = self
            .client
            .get(url)
            .header(BODY_HASH_HEADER, body_hash(body))
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ProofError::Unavailable(format!("STS answered {status}")));
        }
        if !status.is_success() {
            return Err(ProofError::Refused(status.as_u16()));
        }
        let answer = bounded_text(response).await?;
        answered_arn(&answer)
            .map(str::to_string)
            .ok_or_else(|| ProofError::Unavailable("STS's answer names no ARN".into()))
    }

    /// `proof` as a URL, when it is a GetCallerIdentity request to our
    /// endpoint, signed with our header in it, for at most five minutes.
    /// Nothing else is ever fetched: the proof comes from the caller.
    fn checked(&self, proof: &str) -> Result<reqwest::Url, ProofError> {
        let refuse = |reason| ProofError::NotAProof {
            endpoint: self.endpoint.to_string(),
            reason,
        };
        let url = reqwest::Url::parse(proof).map_err(|_| refuse("not a URL"))?;
        let same_place = url.scheme() == self.endpoint.scheme()
            && url.host_str() == self.endpoint.host_str()
            && url.port_or_known_default() == self.endpoint.port_or_known_default()
            && url.path() == "/"
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none();
        if !same_place {
            return Err(refuse("another address"));
        }
        let (mut action, mut version, mut lifetime, mut covers_body) = (0, 0, None, false);
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "Action" if value == ACTION => action += 1,
                "Version" if value == VERSION => version += 1,
                "X-Amz-Expires" => lifetime = value.parse::<u64>().ok(),
                "X-Amz-SignedHeaders" => {
                    covers_body = value.split(';').any(|h| h == BODY_HASH_HEADER);
                }
                "X-Amz-Algorithm"
                | "X-Amz-Credential"
                | "X-Amz-Date"
                | "X-Amz-Security-Token"
                | "X-Amz-Signature" => {}
                _ => return Err(refuse("a parameter GetCallerIdentity does not take")),
            }
        }
        if (action, version) != (1, 1) {
            return Err(refuse("not one GetCallerIdentity action"));
        }
        if !covers_body {
            return Err(refuse("its signature does not cover the body's hash"));
        }
        if lifetime.is_none_or(|secs| secs > MAX_LIFETIME_SECS) {
            return Err(refuse("valid for more than five minutes"));
        }
        Ok(url)
    }
}

/// A failed exchange with STS, without its URL: the proof's signature is in
/// it, and the reason is logged and answered.
fn unavailable(error: reqwest::Error) -> ProofError {
    ProofError::Unavailable(error.without_url().to_string())
}

/// The answer's text, refused past [`MAX_ANSWER_BYTES`].
async fn bounded_text(mut response: reqwest::Response) -> Result<String, ProofError> {
    let mut text = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
        if text.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ProofError::Unavailable("STS's answer is too long".into()));
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).map_err(|_| ProofError::Unavailable("STS's answer is not text".into()))
}

/// `<Arn>` of a GetCallerIdentity answer's result. An ARN has nothing XML
/// would escape, so one that seems to is refused rather than decoded.
fn answered_arn(xml: &str) -> Option<&str> {
    let result = xml.split_once("<GetCallerIdentityResult>")?.1;
    let arn = result.split_once("<Arn>")?.1.split_once("</Arn>")?.0.trim();
    (arn.starts_with("arn:") && !arn.contains(['<', '&'])).then_some(arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_smithy_runtime_api::client::identity::Identity;

    const STS: &str = "https://sts.eu-west-1.amazonaws.com";

    fn proofs() -> CallerProofs {
        CallerProofs::new(STS).unwrap()
    }

    fn made_proof(endpoint: &str, body: &[u8]) -> String {
        let identity: Identity =
            Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test").into();
        let scope = Scope {
            identity: &identity,
            region: "eu-west-1",
            service: "sts",
        };
        proof(endpoint, &scope, body).unwrap()
    }

    #[test]
    fn the_command_lines_proof_is_one_the_function_takes() {
        let proof = made_proof(STS, b"{}");
        let url = proofs().checked(&proof).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(value("X-Amz-Expires"), Some("60"));
        assert_eq!(
            value("X-Amz-SignedHeaders"),
            Some("host;x-rootmail-body-sha256")
        );
        assert_eq!(value("X-Amz-Security-Token"), Some("token"));
        assert!(
            value("X-Amz-Credential").is_some_and(|c| c.ends_with("/eu-west-1/sts/aws4_request")),
            "{proof}"
        );
    }

    /// The function fetches only GetCallerIdentity at its own STS: a proof
    /// cannot send it elsewhere, or ask STS for anything else.
    #[test]
    fn a_proof_for_another_place_or_action_is_refused_unfetched() {
        let good = made_proof(STS, b"{}");
        let forged = [
            made_proof("https://sts.evil.example", b"{}"),
            made_proof("http://sts.eu-west-1.amazonaws.com", b"{}"),
            made_proof("https://sts.eu-west-1.amazonaws.com:8443", b"{}"),
            good.replace("amazonaws.com/?", "amazonaws.com/x?"),
            good.replace("amazonaws.com/?", "amazonaws.com@evil.example/?"),
            good.replace("Action=GetCallerIdentity", "Action=AssumeRole"),
            format!("{good}&Action=GetCallerIdentity"),
            format!("{good}&RoleArn=x"),
            good.replace("X-Amz-Expires=60", "X-Amz-Expires=604800"),
            good.replace("X-Amz-Expires=60", "X-Amz-Expires=soon"),
            good.replace("%3Bx-rootmail-body-sha256", ""),
            format!("{good}#x"),
            "not a url".to_string(),
        ];
        for proof in forged {
            assert_ne!(proof, good, "each case changes the proof");
            assert!(
                matches!(proofs().checked(&proof), Err(ProofError::NotAProof { .. })),
                "{proof}"
            );
        }
    }

    #[test]
    fn proofs_are_checked_at_the_regions_sts() {
        assert_eq!(sts_endpoint("eu-west-1"), STS);
        assert_eq!(
            sts_endpoint("cn-north-1"),
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn the_arn_is_read_from_the_result_only() {
        let answer = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
            <GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/Ops/alice</Arn>\
            <UserId>AROAEXAMPLE:alice</UserId><Account>123456789012</Account>\
            </GetCallerIdentityResult></GetCallerIdentityResponse>";
        assert_eq!(
            answered_arn(answer),
            Some("arn:aws:sts::123456789012:assumed-role/Ops/alice")
        );
        assert_eq!(answered_arn("<Arn>arn:aws:iam::1:root</Arn>"), None);
        assert_eq!(
            answered_arn("<GetCallerIdentityResult><Arn>arn:x&amp;y</Arn>"),
            None
        );
    }
}
