//! What a person asks of the lifecycle (break-glass access, completing a
//! take-over or a release, starting a release, closing and reopening, the
//! status), as one request type. Locally the CLI performs it in-process; in
//! AWS it is the body of a call to the operator function, which alone may
//! open the vault and which takes `who` from the caller's verified IAM
//! identity, never from the request.

use crate::closure::{self, Closure};
use crate::console;
use crate::model::{AuditEntry, Mode, Phase, Rotation};
use crate::ports::{AuditLog, LifecycleError, LifecyclePorts, LifecycleResult, Rotations};
use crate::steps::{self, AccessGrant, AccessRequest, ReleaseConfirmation, StepOutput};
use rootmail_domain::{AccountId, EmailAddress, Kind, SecretValue};
use serde::{Deserialize, Serialize};

/// One person's request. Secrets (a customer's code) arrive here only over
/// the authenticated call and are never written anywhere but AWS's API.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OperatorRequest {
    Status {
        account_id: AccountId,
    },
    Access {
        account_id: AccountId,
        reason: String,
        ticket: String,
    },
    /// The engineer's console task is done, or (with `otp`) the customer's
    /// code completes a release, or AWS's root email code, which no rule read
    /// in its mail, moves a take-over on.
    Complete {
        account_id: AccountId,
        #[serde(default, with = "secret_option")]
        otp: Option<SecretValue>,
        /// A console account: what the engineer did, in their words.
        #[serde(default)]
        attest: Option<String>,
    },
    /// A console take-over: the verification code AWS mailed to our address,
    /// to type into the console (audited like break-glass access).
    ReadCode {
        account_id: AccountId,
        reason: String,
        ticket: String,
    },
    /// A console take-over: the console shows our address as the root email,
    /// and no AWS mail has confirmed it.
    Attest {
        account_id: AccountId,
        statement: String,
    },
    /// The secret key of the virtual MFA device AWS generated in the console.
    EnrollMfa {
        account_id: AccountId,
        #[serde(with = "secret_text")]
        secret_key: SecretValue,
        /// The device AWS confirmed was removed in the console: this one
        /// replaces it.
        #[serde(default)]
        replace: bool,
    },
    /// Moves the root email to the customer's address: like an access, with
    /// a reason and a ticket.
    Release {
        account_id: AccountId,
        customer_email: EmailAddress,
        reason: String,
        ticket: String,
    },
    /// Withdraws a release waiting for the customer's code: the account is
    /// ours again. A console account's needs the engineer's word (`attest`).
    CancelRelease {
        account_id: AccountId,
        reason: String,
        ticket: String,
        #[serde(default)]
        attest: Option<String>,
    },
    /// Closes a member account through AWS Organizations; a console
    /// account (or a member that has left the organization) is closed in its
    /// console, and the engineer's word (`attest`) records it.
    Close {
        account_id: AccountId,
        reason: String,
        #[serde(default)]
        attest: Option<String>,
    },
    /// Records a closed account open again once AWS Support has reopened
    /// it: a member when AWS Organizations shows it active; a console
    /// account (or a member that has left the organization) on the
    /// engineer's word (`attest`).
    Reopen {
        account_id: AccountId,
        reason: String,
        #[serde(default)]
        attest: Option<String>,
    },
}

/// The answer. Only `Access` carries secrets, as plain text for the one
/// person who asked (after the audit record is written).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum OperatorAnswer {
    Status {
        rotation: Box<Rotation>,
        audit: Vec<AuditEntry>,
    },
    Access(GrantView),
    /// The verification code, for the one person who asked.
    Code {
        root_email: EmailAddress,
        code: HandedSecret,
    },
    /// The two consecutive codes the console asks for when assigning the device.
    MfaCodes {
        first: HandedSecret,
        second: HandedSecret,
    },
    Steps {
        trail: Vec<StepOutput>,
    },
}

/// Break-glass credentials as sent to the person who asked for them.
#[derive(Debug, Serialize, Deserialize)]
pub struct GrantView {
    pub who: String,
    pub root_email: EmailAddress,
    pub password: HandedSecret,
    pub totp_code: Option<HandedSecret>,
    pub reset_link: Option<HandedSecret>,
    pub pending: bool,
    pub unsent_notices: Vec<String>,
}

/// A secret in an answer, for the one person who asked: serialized as its
/// value (the answer goes to them alone), but `Debug` and `Display` never
/// show it, so a log line of an answer holds no credential.
#[derive(Clone, PartialEq, Eq)]
pub struct HandedSecret(SecretValue);

impl HandedSecret {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl From<&SecretValue> for HandedSecret {
    fn from(secret: &SecretValue) -> Self {
        Self(secret.clone())
    }
}

impl std::fmt::Debug for HandedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for HandedSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose())
    }
}

impl<'de> Deserialize<'de> for HandedSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|value| Self(SecretValue::new(value)))
    }
}

impl GrantView {
    fn from_grant(who: &str, grant: &AccessGrant) -> Self {
        Self {
            who: who.to_string(),
            root_email: grant.root_email.clone(),
            password: HandedSecret::from(&grant.password),
            totp_code: grant.totp_code.as_ref().map(HandedSecret::from),
            reset_link: grant.reset_link.as_ref().map(HandedSecret::from),
            pending: grant.pending,
            unsent_notices: grant.unsent_notices.clone(),
        }
    }
}

/// A person's words (a statement, an attestation) are at most
/// [`steps::MAX_REASON_CHARS`] characters: the audit row, the ticket note
/// and `rotation status` carry them (see the limit's comment). An access's
/// reason and ticket are checked with its other fields; a closure's words by
/// the closure, on every path to it.
fn within_length(request: &OperatorRequest) -> LifecycleResult<()> {
    let words = match request {
        OperatorRequest::Attest { statement, .. } => Some(statement.as_str()),
        OperatorRequest::Complete { attest, .. }
        | OperatorRequest::CancelRelease { attest, .. } => attest.as_deref(),
        _ => None,
    };
    steps::words_within_limit([words])
}

/// Performs `request` as `who` at `now`. In AWS the take-over's state machine
/// activates the account once the engineer's task is answered; locally the
/// caller runs `activate` after a completed engineer task.
pub async fn perform<P: LifecyclePorts>(
    p: &P,
    who: &str,
    request: &OperatorRequest,
    now: u64,
) -> LifecycleResult<OperatorAnswer> {
    let trail = |step: StepOutput| OperatorAnswer::Steps { trail: vec![step] };
    within_length(request)?;
    match request {
        OperatorRequest::Status { account_id } => status(p, account_id).await,
        OperatorRequest::Access {
            account_id,
            reason,
            ticket,
        } => break_glass(p, &access_request(who, account_id, reason, ticket), now).await,
        OperatorRequest::Complete {
            account_id,
            otp,
            attest,
        } => complete(p, account_id, who, otp.as_ref(), attest.as_deref(), now)
            .await
            .map(trail),
        OperatorRequest::ReadCode {
            account_id,
            reason,
            ticket,
        } => verification_code(p, &access_request(who, account_id, reason, ticket), now).await,
        OperatorRequest::Attest {
            account_id,
            statement,
        } => console::attest_email_change(p, account_id, who, statement, now)
            .await
            .map(trail),
        OperatorRequest::EnrollMfa {
            account_id,
            secret_key,
            replace,
        } => mfa_codes(p, account_id, who, (secret_key, *replace), now).await,
        OperatorRequest::Release { .. } | OperatorRequest::CancelRelease { .. } => {
            release(p, who, request, now).await.map(trail)
        }
        OperatorRequest::Close { .. } | OperatorRequest::Reopen { .. } => {
            closure_or_reopening(p, who, request, now).await.map(trail)
        }
    }
}

/// An account closed, or recorded open again.
async fn closure_or_reopening<P: LifecyclePorts>(
    p: &P,
    who: &str,
    request: &OperatorRequest,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let (OperatorRequest::Close {
        account_id,
        reason,
        attest,
    }
    | OperatorRequest::Reopen {
        account_id,
        reason,
        attest,
    }) = request
    else {
        return Err(LifecycleError::Refused("not a closure request".into()));
    };
    let words = Closure {
        account: account_id,
        who,
        reason,
        attest: attest.as_deref(),
    };
    match request {
        OperatorRequest::Reopen { .. } => closure::reopen(p, &words, now).await,
        _ => closure::close(p, &words, now).await,
    }
}

/// A release started, or withdrawn while it waits for the customer.
async fn release<P: LifecyclePorts>(
    p: &P,
    who: &str,
    request: &OperatorRequest,
    now: u64,
) -> LifecycleResult<StepOutput> {
    match request {
        OperatorRequest::Release {
            account_id,
            customer_email,
            reason,
            ticket,
        } => {
            let request = access_request(who, account_id, reason, ticket);
            steps::start_release(p, &request, customer_email, now).await
        }
        OperatorRequest::CancelRelease {
            account_id,
            reason,
            ticket,
            attest,
        } => {
            let request = access_request(who, account_id, reason, ticket);
            steps::cancel_release(p, &request, attest.as_deref(), now).await
        }
        _ => Err(LifecycleError::Refused("not a release request".into())),
    }
}

/// Break-glass access: the root credentials, for the person who asked.
async fn break_glass<P: LifecyclePorts>(
    p: &P,
    access: &AccessRequest,
    now: u64,
) -> LifecycleResult<OperatorAnswer> {
    let grant = steps::access(p, access, now).await?;
    Ok(OperatorAnswer::Access(GrantView::from_grant(
        &access.who,
        &grant,
    )))
}

/// A console take-over's verification code, for the person who asked.
async fn verification_code<P: LifecyclePorts>(
    p: &P,
    access: &AccessRequest,
    now: u64,
) -> LifecycleResult<OperatorAnswer> {
    let grant = console::read_code(p, access, now).await?;
    Ok(OperatorAnswer::Code {
        root_email: grant.root_email,
        code: HandedSecret::from(&grant.code),
    })
}

/// Vaults the console's MFA secret key and answers with the two codes the
/// console asks for.
async fn mfa_codes<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    who: &str,
    (secret_key, replace): (&SecretValue, bool),
    now: u64,
) -> LifecycleResult<OperatorAnswer> {
    let key = secret_key.expose();
    let codes = match replace {
        true => console::replace_mfa(p, account, who, key, now).await?,
        false => console::enroll_mfa(p, account, who, key, now).await?,
    };
    Ok(OperatorAnswer::MfaCodes {
        first: HandedSecret::from(&codes.first),
        second: HandedSecret::from(&codes.second),
    })
}

/// A read of a root secret, as the audit records it: who, why, which ticket.
fn access_request(who: &str, account: &AccountId, reason: &str, ticket: &str) -> AccessRequest {
    AccessRequest {
        account_id: account.clone(),
        who: who.to_string(),
        reason: reason.to_string(),
        ticket: ticket.to_string(),
    }
}

async fn status<P: LifecyclePorts>(p: &P, account: &AccountId) -> LifecycleResult<OperatorAnswer> {
    let Some(mut rotation) = p.rotations().get(account).await? else {
        return Err(LifecycleError::Refused(format!(
            "account {account} has no lifecycle record"
        )));
    };
    // A task token answers a workflow: it never leaves the function.
    rotation.task_token = None;
    let audit = p.audit().entries(account).await?;
    Ok(OperatorAnswer::Status {
        rotation: Box::new(rotation),
        audit,
    })
}

/// Whatever waits for a person: the engineer's console steps of a vaulted
/// take-over, or a release waiting for the customer's code.
pub async fn complete<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    who: &str,
    otp: Option<&SecretValue>,
    attest: Option<&str>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let rotation = p.rotations().get(account).await?;
    let phase = rotation.as_ref().map(|r| r.phase);
    // Waiting for AWS's code, or holding it with the task not yet answered.
    let waits_for_code = rotation
        .as_ref()
        .is_some_and(|r| r.waiting_for == Some(Kind::RootEmailOtp));
    let console_change = (rotation.as_ref()).is_some_and(|r| r.mode == Mode::Console);
    let told = rotation.is_some_and(|r| r.task_token.is_none());
    match (phase, otp) {
        (Some(Phase::AwaitingEngineer), _) => {
            steps::complete_engineer_task(p, account, who, attest, now).await
        }
        // Done before, but its workflow was never told (the answer failed).
        (Some(Phase::Secured), _) if !told => steps::resume_secured(p, account, now).await,
        (Some(Phase::AwaitingOtp | Phase::OtpReceived), code) if waits_for_code => {
            steps::enter_root_email_code(p, account, who, code, now).await
        }
        (Some(Phase::AwaitingCustomerOtp), Some(otp)) => {
            let confirmation = ReleaseConfirmation::CustomerCode(otp);
            steps::complete_release(p, account, confirmation, who, now).await
        }
        (Some(Phase::AwaitingCustomerOtp), None) => {
            let confirmation = ReleaseConfirmation::Attested(attest.unwrap_or_default());
            steps::complete_release(p, account, confirmation, who, now).await
        }
        (Some(Phase::EmailAccepted), _) if console_change => Err(LifecycleError::Refused(format!(
            "account {account} waits for its root email change to be confirmed: by AWS's mail to our address, or `rootmail rotation attest --account {account} --statement ...`"
        ))),
        (Some(phase), _) => Err(LifecycleError::Refused(format!(
            "account {account} waits for nobody ({})",
            phase.as_str()
        ))),
        (None, _) => Err(LifecycleError::Refused(format!(
            "account {account} has no lifecycle record"
        ))),
    }
}

/// A required secret in a request: a [`SecretValue`] on arrival, plain text on the wire.
mod secret_text {
    use rootmail_domain::SecretValue;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &SecretValue, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretValue, D::Error> {
        Ok(SecretValue::new(String::deserialize(d)?))
    }
}

/// A code in a request: a [`SecretValue`] on arrival, plain text on the wire.
mod secret_option {
    use rootmail_domain::SecretValue;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<SecretValue>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(secret) => s.serialize_some(secret.expose()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretValue>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        Ok(text
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(SecretValue::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer may be logged (an error path, a debug line); the person who
    /// asked still receives the secrets, in the serialized answer alone.
    #[test]
    fn an_answer_shows_its_secrets_only_when_serialized() {
        let secret = |s: &str| SecretValue::new(s.to_string());
        let grant = AccessGrant {
            root_email: EmailAddress::parse("root+1@msp.example").unwrap(),
            password: secret("Tr0ub4dor&3-vaulted"),
            totp_code: Some(secret("493817")),
            reset_link: Some(secret(
                "https://signin.aws.amazon.com/resetpassword?token=Zq9",
            )),
            pending: false,
            unsent_notices: vec![],
        };
        let answers = [
            OperatorAnswer::Access(GrantView::from_grant("alice", &grant)),
            OperatorAnswer::Code {
                root_email: grant.root_email.clone(),
                code: HandedSecret::from(&secret("493817")),
            },
            OperatorAnswer::MfaCodes {
                first: HandedSecret::from(&secret("493817")),
                second: HandedSecret::from(&secret("Tr0ub4dor&3-vaulted")),
            },
        ];
        for answer in answers {
            let logged = format!("{answer:?}");
            for shown in ["Tr0ub4dor", "493817", "token=Zq9"] {
                assert!(!logged.contains(shown), "{logged}");
            }
            let sent = serde_json::to_string(&answer).unwrap();
            assert!(sent.contains("493817"), "{sent}");
            let received: OperatorAnswer = serde_json::from_str(&sent).unwrap();
            assert_eq!(serde_json::to_string(&received).unwrap(), sent);
        }
    }
}
