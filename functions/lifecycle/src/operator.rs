//! The operator function: the one door to the vault. People's requests
//! (`rootmail ... --aws`) arrive at its function URL, whose `AWS_IAM` auth
//! means AWS has checked the SigV4 signature and names the caller in
//! `requestContext.authorizer.iam`. A direct invoke could name anyone there,
//! so the caller must also be the one STS names for the request's caller
//! proof (`rootmail_aws::caller_proof`). That identity, never a field of the
//! request, is who the audit trail records. Its role alone may decrypt root
//! credentials in the vault.
//!
//! Answers: 200 with the [`OperatorAnswer`]; 400 for a request that is not
//! one; 403 without a verified and proven caller; 409 when the lifecycle
//! refuses (the reason in `refused`; `not_yet` when running it again later
//! may do, as when AWS has not caught up); 503 for a transient failure (STS's
//! included), 500 otherwise. The log line names the action, account, caller
//! and status, never the body or the proof.

use crate::{Lifecycle, now_secs};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lambda_runtime::LambdaEvent;
use rootmail_aws::caller_proof::{PROOF_HEADER, ProofError};
use rootmail_lifecycle::operator::{OperatorRequest, perform};
use rootmail_lifecycle::{LifecycleError, LifecyclePorts};
use serde_json::{Value, json};

/// Who may call: the IAM roles named in `OPERATOR_PRINCIPALS` (the template's
/// `OperatorPrincipalArns`), a `*` standing for any characters. A second
/// lock beside the IAM policy that lets a caller invoke the URL at all.
#[derive(Debug, Clone, Default)]
pub struct Operators(Vec<String>);

impl Operators {
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Whether a verified caller is one of them. An assumed role's session
    /// (`arn:aws:sts::A:assumed-role/NAME/SESSION`) is the role `NAME` of
    /// account `A`, whatever path the role has.
    pub fn allow(&self, caller: &str) -> bool {
        self.0.iter().any(|pattern| matches_role(pattern, caller))
    }
}

fn matches_role(pattern: &str, caller: &str) -> bool {
    if let Some((account, role)) = assumed_role(caller) {
        let Some((pattern_account, path)) = pattern
            .split_once(":iam::")
            .and_then(|(_, rest)| rest.split_once(":role/"))
        else {
            return false;
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        // A name of stars alone (`role/aws-reserved/sso.amazonaws.com/*`)
        // would match every role of the account: a session's ARN has no
        // path, so the path cannot narrow it. It matches none.
        if name.bytes().all(|c| c == b'*') {
            return false;
        }
        return pattern_account == account && glob(name, role);
    }
    glob(pattern, caller)
}

/// `(account, role name)` of an assumed-role session ARN.
fn assumed_role(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?.split_once(":sts::")?.1;
    let (account, rest) = rest.split_once(":assumed-role/")?;
    Some((account, rest.split('/').next()?))
}

/// `*` matches any run of characters. Greedy with backtracking to the last
/// star: linear in practice for the short ARNs it sees.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// The caller AWS verified (`userArn` of the function URL's IAM authorizer).
pub fn caller(event: &Value) -> Option<&str> {
    event
        .pointer("/requestContext/authorizer/iam/userArn")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|arn| arn.starts_with("arn:"))
}

fn body(event: &Value) -> Option<Vec<u8>> {
    let text = event.get("body").and_then(Value::as_str)?;
    if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        STANDARD.decode(text).ok()
    } else {
        Some(text.as_bytes().to_vec())
    }
}

/// A function URL response.
fn answer(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": body.to_string(),
    })
}

fn action_name(request: &OperatorRequest) -> (&'static str, String) {
    let (action, account) = match request {
        OperatorRequest::Status { account_id } => ("status", account_id),
        OperatorRequest::Access { account_id, .. } => ("access", account_id),
        OperatorRequest::Complete { account_id, .. } => ("complete", account_id),
        OperatorRequest::Release { account_id, .. } => ("release", account_id),
        OperatorRequest::CancelRelease { account_id, .. } => ("cancel_release", account_id),
        OperatorRequest::Close { account_id, .. } => ("close", account_id),
        OperatorRequest::Reopen { account_id, .. } => ("reopen", account_id),
        OperatorRequest::ReadCode { account_id, .. } => ("read_code", account_id),
        OperatorRequest::Attest { account_id, .. } => ("attest", account_id),
        OperatorRequest::EnrollMfa { account_id, .. } => ("enroll_mfa", account_id),
    };
    (action, account.to_string())
}

impl<P: LifecyclePorts> Lifecycle<P> {
    /// One request to the function URL.
    pub async fn handle_operator(&self, event: LambdaEvent<Value>) -> Value {
        let function = unqualified(&event.context.invoked_function_arn).to_string();
        let event = event.payload;
        let Some(who) = caller(&event) else {
            tracing::warn!("operator request without a verified IAM caller refused");
            return answer(
                403,
                &json!({"refused": "no verified IAM caller: the function URL must use AWS_IAM auth"}),
            );
        };
        if !self.operators.allow(who) {
            tracing::warn!(
                who,
                "operator request from a caller not in OPERATOR_PRINCIPALS refused"
            );
            return answer(
                403,
                &json!({"refused": format!("{who} is not one of the operators (OperatorPrincipalArns)")}),
            );
        }
        let Some(body) = body(&event) else {
            return answer(400, &json!({"refused": "the request has no body"}));
        };
        let request = match serde_json::from_slice::<OperatorRequest>(&body) {
            Ok(request) => request,
            Err(e) => return answer(400, &json!({"refused": format!("not a request: {e}")})),
        };
        if let Err(refusal) = self.proven(who, &event, &function, &body).await {
            return refusal;
        }
        let (action, account) = action_name(&request);
        let (status, body) = match perform(&self.ports, who, &request, now_secs()).await {
            Ok(done) => (200, serde_json::to_value(&done).unwrap_or(Value::Null)),
            Err(LifecycleError::Refused(reason)) => (409, json!({"refused": reason})),
            // `refused` too, for a CLI from before `not_yet` was said.
            Err(LifecycleError::NotYet(reason)) => {
                (409, json!({"refused": reason, "not_yet": true}))
            }
            Err(LifecycleError::Port(e)) if e.is_transient() => {
                (503, json!({"error": e.to_string()}))
            }
            Err(LifecycleError::Port(e)) => (500, json!({"error": e.to_string()})),
        };
        tracing::info!(action, account, who, status, "operator request");
        answer(status, &body)
    }

    /// Whether STS names `who` as the signer of the request's caller proof
    /// for `function` (this one's ARN, see `rootmail_aws::caller_proof`): the
    /// event's caller alone is whatever a direct invoker wrote. The refusal
    /// to answer otherwise.
    async fn proven(
        &self,
        who: &str,
        event: &Value,
        function: &str,
        body: &[u8],
    ) -> Result<(), Value> {
        let (Some(proofs), false) = (&self.caller_proofs, function.is_empty()) else {
            tracing::error!("the operator function has no STS or no ARN to check callers with");
            return Err(answer(500, &json!({"error": "callers cannot be checked"})));
        };
        let proven = match header(event, PROOF_HEADER) {
            Some(proof) => proofs.caller(proof, function, body).await,
            None => Err(ProofError::Missing),
        };
        match proven {
            Ok(signer) if signer == who => Ok(()),
            Ok(signer) => {
                tracing::warn!(
                    who,
                    signer,
                    "operator request whose proof names another caller refused"
                );
                Err(answer(
                    403,
                    &json!({"refused": "the caller proof names another caller than the request's signature"}),
                ))
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(who, error = %e, "operator request's caller proof not checked");
                Err(answer(503, &json!({"error": e.to_string()})))
            }
            Err(e) => {
                tracing::warn!(who, error = %e, "operator request without a valid caller proof refused");
                Err(answer(403, &json!({"refused": e.to_string()})))
            }
        }
    }
}

/// A function's ARN without the version or alias it was invoked by
/// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`): what the command line
/// names as the proof's audience.
fn unqualified(arn: &str) -> &str {
    match arn.match_indices(':').nth(6) {
        Some((at, _)) => &arn[..at],
        None => arn,
    }
}

/// A request header's value; function URLs give their names in lower case.
fn header<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event
        .get("headers")?
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_matched_by_role_account_and_pattern() {
        let operators = Operators::parse(
            "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_RootmailOperator_*, \
             arn:aws:iam::123456789012:user/breakglass",
        );
        for (caller, allowed) in [
            (
                "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_RootmailOperator_0a1b2c/alice",
                true,
            ),
            (
                "arn:aws:sts::999988887777:assumed-role/AWSReservedSSO_RootmailOperator_0a1b2c/alice",
                false,
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Developer_0a1b2c/alice",
                false,
            ),
            // A look-alike name: the session ARN has no path to tell it apart,
            // so the pattern's name is matched from its first letter.
            (
                "arn:aws:sts::123456789012:assumed-role/XAWSReservedSSO_RootmailOperator_0a/eve",
                false,
            ),
            ("arn:aws:iam::123456789012:user/breakglass", true),
            ("arn:aws:iam::123456789012:user/breakglass2", false),
        ] {
            assert_eq!(operators.allow(caller), allowed, "{caller}");
        }
        assert!(!Operators::default().allow("arn:aws:iam::123456789012:user/x"));
    }

    #[test]
    fn the_audience_is_the_function_whatever_alias_invoked_it() {
        let function = "arn:aws:lambda:eu-west-1:123456789012:function:rootmail-operator";
        assert_eq!(unqualified(function), function);
        assert_eq!(unqualified(&format!("{function}:live")), function);
        assert_eq!(unqualified(&format!("{function}:7")), function);
        assert_eq!(unqualified(""), "");
    }

    /// A pattern whose role name is `*` alone meant "the roles under this
    /// path", but a session names no path: it allowed every role in the
    /// account. It allows none.
    #[test]
    fn a_pattern_naming_no_role_allows_none() {
        let operators =
            Operators::parse("arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/*");
        for caller in [
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_RootmailOperator_0a/alice",
            "arn:aws:sts::123456789012:assumed-role/SomeCiRole/build",
        ] {
            assert!(!operators.allow(caller), "{caller}");
        }
    }
}
