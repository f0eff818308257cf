//! Who calls the operator function, proved by the caller's own credentials.
//!
//! A function URL with `AWS_IAM` auth names its verified caller in the
//! event. But whoever may `lambda:InvokeFunction` the function directly (a
//! grant in some other policy) writes that event themselves, naming anyone.
//! So the command line also sends a presigned `sts:GetCallerIdentity`
//! request, whose signature covers a hash of the request's body. The function
//! sends it to STS, at the endpoint it is configured with and nowhere else,
//! and STS's answer names the caller. Without the signer's secret no one can
//! make one. The signature also covers the function's ARN (the audience), so
//! a proof sent elsewhere is no good here, and a proof seen in transit works
//! only for the same body, within five minutes of its making. (EKS's
//! aws-iam-authenticator proves a caller to a cluster the same way.)

use crate::sigv4::{Scope, SignError, parse_amz_date, presigned_url};
use sha2::{Digest as _, Sha256};
use std::time::{Duration, SystemTime};

/// The request header that carries the proof: a presigned URL.
pub const PROOF_HEADER: &str = "x-rootmail-caller-proof";
/// A header the proof's signature covers: the hex SHA-256 of the body.
pub const BODY_HASH_HEADER: &str = "x-rootmail-body-sha256";
/// A header the proof's signature covers: the operator function's ARN
/// (`OPERATOR_FUNCTION_ARN`), so that a proof made for another function
/// (another deployment's) is worth nothing to this one.
pub const AUDIENCE_HEADER: &str = "x-rootmail-audience";
/// The proof's `X-Amz-Expires`. STS ignores it (a presigned request holds 15
/// minutes from its date); the function's own limit is [`MAX_AGE_SECS`].
const PROOF_LIFETIME: Duration = Duration::from_secs(60);
/// How far from the function's clock a proof's time of signing may be, either
/// way: SigV4's own allowance for clocks.
const MAX_AGE_SECS: u64 = 300;
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
    hex::encode(Sha256::digest(body))
}

/// A proof for `body` sent to the function `audience` (its ARN), signed by
/// `scope`'s identity (service `sts`) for the STS at `endpoint`.
pub fn proof(
    endpoint: &str,
    scope: &Scope<'_>,
    audience: &str,
    body: &[u8],
) -> Result<String, SignError> {
    let url = format!(
        "{}/?Action={ACTION}&Version={VERSION}",
        endpoint.trim_end_matches('/')
    );
    presigned_url(
        "GET",
        &url,
        &[
            (BODY_HASH_HEADER, &body_hash(body)),
            (AUDIENCE_HEADER, audience),
        ],
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
    /// was made for `body`, sent to `audience` (this function's ARN), now.
    pub async fn caller(
        &self,
        proof: &str,
        audience: &str,
        body: &[u8],
    ) -> Result<String, ProofError> {
        let url = self.checked(proof, SystemTime::now())?;
        let response = self
            .client
            .get(url)
            .header(BODY_HASH_HEADER, body_hash(body))
            .header(AUDIENCE_HEADER, audience)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ProofError::Unavailable(format!("STS answered {status}")));
        }
        let answer = bounded_text(response).await;
        if !status.is_success() {
            // STS's Query API throttles with a 400 and this code.
            return Err(match answer.as_deref().ok().and_then(error_code) {
                Some(code @ ("Throttling" | "RequestLimitExceeded")) => {
                    ProofError::Unavailable(format!("STS answered {status} {code}"))
                }
                _ => ProofError::Refused(status.as_u16()),
            });
        }
        let answer = answer?;
        answered_arn(&answer)
            .ok_or_else(|| ProofError::Unavailable("STS's answer names no ARN".into()))
    }

    /// `proof` as a URL, when it is one GetCallerIdentity request to our
    /// endpoint, signed over our two headers, made within [`MAX_AGE_SECS`]
    /// of `now`. Nothing else is ever fetched: the proof is the caller's.
    fn checked(&self, proof: &str, now: SystemTime) -> Result<reqwest::Url, ProofError> {
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
        let params = Params::of(&url).map_err(refuse)?;
        if params.get("Action") != Some(ACTION) || params.get("Version") != Some(VERSION) {
            return Err(refuse("not a GetCallerIdentity request"));
        }
        if params.get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
            return Err(refuse("not signed with SigV4"));
        }
        let signed: Vec<&str> = params
            .get("X-Amz-SignedHeaders")
            .unwrap_or_default()
            .split(';')
            .collect();
        if !signed.contains(&BODY_HASH_HEADER) || !signed.contains(&AUDIENCE_HEADER) {
            return Err(refuse(
                "its signature does not cover the body's hash and audience",
            ));
        }
        // STS takes a presigned request for 15 minutes from its date, whatever
        // its X-Amz-Expires says: the date is what limits a replay.
        let made = params
            .get("X-Amz-Date")
            .and_then(parse_amz_date)
            .ok_or_else(|| refuse("no time of signing"))?;
        let skew = made.duration_since(now).unwrap_or_else(|e| e.duration());
        if skew.as_secs() > MAX_AGE_SECS {
            return Err(refuse("signed more than five minutes from now"));
        }
        Ok(url)
    }
}

/// A proof's query parameters, each the one of its name: a name given twice
/// could be read one way here and another way by STS.
struct Params<'a>(Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>);

impl<'a> Params<'a> {
    const KNOWN: [&'static str; 9] = [
        "Action",
        "Version",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ];

    fn of(url: &'a reqwest::Url) -> Result<Self, &'static str> {
        let mut seen = [false; Self::KNOWN.len()];
        let mut pairs = Vec::new();
        for (name, value) in url.query_pairs() {
            let Some(index) = Self::KNOWN.iter().position(|known| *known == name) else {
                return Err("a parameter GetCallerIdentity does not take");
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err("a parameter given twice");
            }
            pairs.push((name, value));
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_ref())
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

/// `<Code>` of an STS error answer.
fn error_code(xml: &str) -> Option<&str> {
    let code = xml.split_once("<Code>")?.1.split_once("</Code>")?.0.trim();
    (!code.is_empty()).then_some(code)
}

/// `<Arn>` of a GetCallerIdentity answer's result, its XML escapes read (an
/// IAM path may hold `&`, `<` or quotes).
fn answered_arn(xml: &str) -> Option<String> {
    let result = xml.split_once("<GetCallerIdentityResult>")?.1;
    let arn = xml_text(result.split_once("<Arn>")?.1.split_once("</Arn>")?.0.trim())?;
    arn.starts_with("arn:").then_some(arn)
}

/// XML character data with its five predefined escapes read; `None` for any
/// other `&` or a bare `<` (STS writes neither).
fn xml_text(text: &str) -> Option<String> {
    if text.contains('<') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let (entity, after) = rest[at..].split_once(';')?;
        out.push(match entity {
            "&amp" => '&',
            "&lt" => '<',
            "&gt" => '>',
            "&quot" => '"',
            "&apos" => '\'',
            _ => return None,
        });
        rest = after;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_smithy_runtime_api::client::identity::Identity;

    const STS: &str = "https://sts.eu-west-1.amazonaws.com";
    const FUNCTION: &str = "arn:aws:lambda:eu-west-1:123456789012:function:rootmail-operator";

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
        proof(endpoint, &scope, FUNCTION, body).unwrap()
    }

    fn query_value(proof: &str, name: &str) -> String {
        reqwest::Url::parse(proof)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    #[test]
    fn the_command_lines_proof_is_one_the_function_takes() {
        let proof = made_proof(STS, b"{}");
        proofs().checked(&proof, SystemTime::now()).unwrap();
        assert_eq!(
            query_value(&proof, "X-Amz-SignedHeaders"),
            "host;x-rootmail-audience;x-rootmail-body-sha256"
        );
        assert_eq!(query_value(&proof, "X-Amz-Security-Token"), "token");
        assert!(query_value(&proof, "X-Amz-Credential").ends_with("/eu-west-1/sts/aws4_request"));
    }

    /// The function fetches only GetCallerIdentity at its own STS: a proof
    /// cannot send it elsewhere, ask STS for anything else, or say one thing
    /// here and another to STS by naming a parameter twice.
    #[test]
    fn a_proof_for_another_place_or_action_is_refused_unfetched() {
        let good = made_proof(STS, b"{}");
        let signed = query_value(&good, "X-Amz-SignedHeaders");
        let forged = [
            made_proof("https://sts.evil.example", b"{}"),
            made_proof("http://sts.eu-west-1.amazonaws.com", b"{}"),
            made_proof("https://sts.eu-west-1.amazonaws.com:8443", b"{}"),
            good.replace("amazonaws.com/?", "amazonaws.com/x?"),
            good.replace("amazonaws.com/?", "amazonaws.com@evil.example/?"),
            good.replace("Action=GetCallerIdentity", "Action=AssumeRole"),
            format!("{good}&Action=GetCallerIdentity"),
            format!(
                "{good}&X-Amz-SignedHeaders=host%3Bx-rootmail-audience%3Bx-rootmail-body-sha256"
            ),
            format!("{good}&RoleArn=x"),
            good.replace("%3Bx-rootmail-body-sha256", ""),
            good.replace("%3Bx-rootmail-audience", ""),
            good.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
            format!("{good}#x"),
            "not a url".to_string(),
        ];
        assert!(signed.contains("x-rootmail-audience"));
        for proof in forged {
            assert_ne!(proof, good, "each case changes the proof");
            assert!(
                matches!(
                    proofs().checked(&proof, SystemTime::now()),
                    Err(ProofError::NotAProof { .. })
                ),
                "{proof}"
            );
        }
    }

    /// STS would take a proof for 15 minutes whatever it says: the function
    /// takes one made within five minutes of its own clock, either way.
    #[test]
    fn a_proof_is_good_for_five_minutes_either_way() {
        let proof = made_proof(STS, b"{}");
        let now = SystemTime::now();
        for (moment, taken) in [
            (now + Duration::from_secs(290), true),
            (now - Duration::from_secs(290), true),
            (now + Duration::from_secs(310), false),
            (now - Duration::from_secs(310), false),
        ] {
            assert_eq!(
                proofs().checked(&proof, moment).is_ok(),
                taken,
                "{moment:?}"
            );
        }
        let undated = proof.replace("X-Amz-Date=", "X-Amz-Dated=");
        assert!(proofs().checked(&undated, now).is_err());
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
    fn sts_throttling_is_read_from_its_error_code() {
        let throttled = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
            <Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert_eq!(error_code(throttled), Some("Throttling"));
        assert_eq!(
            error_code("<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error>"),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(error_code("not xml"), None);
    }

    #[test]
    fn the_arn_is_read_from_the_result_only() {
        let answer = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
            <GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/Ops/alice</Arn>\
            <UserId>AROAEXAMPLE:alice</UserId><Account>123456789012</Account>\
            </GetCallerIdentityResult></GetCallerIdentityResponse>";
        assert_eq!(
            answered_arn(answer).as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/Ops/alice")
        );
        assert_eq!(answered_arn("<Arn>arn:aws:iam::1:root</Arn>"), None);
        // An IAM path may hold what XML escapes.
        assert_eq!(
            answered_arn(
                "<GetCallerIdentityResult><Arn>arn:aws:iam::1:user/a&amp;b/&lt;c&gt;</Arn>"
            )
            .as_deref(),
            Some("arn:aws:iam::1:user/a&b/<c>")
        );
        for odd in ["arn:x&nbsp;y", "arn:x&amp", "arn:x<y"] {
            let answer = format!("<GetCallerIdentityResult><Arn>{odd}</Arn>");
            assert_eq!(answered_arn(&answer), None, "{odd}");
        }
    }
}
