//! AWS Organizations on one member account: its state (`DescribeAccount`)
//! and its closure (`CloseAccount`), called without the SDK's client
//! ([`crate::aws_json`]) from the organization's management account.

use crate::aws_json::JsonClient;
use rootmail_domain::AccountId;
use rootmail_lifecycle::{LifecycleError, LifecycleResult, MemberState};
use rootmail_pipeline::PortError;
use serde::Deserialize;
use serde_json::json;

const PORT: &str = "organizations";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Described {
    account: DescribedAccount,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribedAccount {
    /// Since 2025; AWS retires `Status` for it.
    state: Option<String>,
    status: Option<String>,
}

/// `State` when AWS gives it, else the older `Status` (retired in September
/// 2026) where it is unambiguous: its `SUSPENDED` stood both for a closed
/// account and one AWS suspended, so it is not read.
fn state_of(account: &DescribedAccount) -> Option<MemberState> {
    match (account.state.as_deref(), account.status.as_deref()) {
        (Some("PENDING_ACTIVATION"), _) => Some(MemberState::PendingActivation),
        (Some("ACTIVE"), _) => Some(MemberState::Active),
        (Some("SUSPENDED"), _) => Some(MemberState::Suspended),
        (Some("PENDING_CLOSURE"), _) => Some(MemberState::PendingClosure),
        (Some("CLOSED"), _) => Some(MemberState::Closed),
        (Some(_), _) => None,
        (None, Some("ACTIVE")) => Some(MemberState::Active),
        (None, Some("PENDING_CLOSURE")) => Some(MemberState::PendingClosure),
        (None, _) => None,
    }
}

/// What AWS Organizations says of `account`; `None` when it is not a member
/// of this organization (or there is no organization).
pub(crate) async fn member_state(
    client: &JsonClient,
    account: &AccountId,
) -> LifecycleResult<Option<MemberState>> {
    let input = json!({ "AccountId": account.as_str() });
    let described: Described = match client.call_for("DescribeAccount", &input).await {
        Ok(described) => described,
        Err(e) if not_a_member(&e) => return Ok(None),
        Err(e) => return Err(port_error(account, "read", retried_if_busy(e))),
    };
    state_of(&described.account).map(Some).ok_or_else(|| {
        LifecycleError::Port(PortError::permanent(
            PORT,
            format!(
                "AWS Organizations gave account {account} a state rootmail does not know ({})",
                described
                    .account
                    .state
                    .or(described.account.status)
                    .unwrap_or_default()
            ),
        ))
    })
}

/// Asks AWS Organizations to close `account`. One already closed is done.
pub(crate) async fn close_member(client: &JsonClient, account: &AccountId) -> LifecycleResult<()> {
    let input = json!({ "AccountId": account.as_str() });
    match client.call("CloseAccount", &input).await {
        Ok(_) => Ok(()),
        Err(e) if e.code.as_deref() == Some("AccountAlreadyClosedException") => Ok(()),
        Err(e) => Err(closure_refusal(account, &e)
            .unwrap_or_else(|| port_error(account, "close", retried_if_busy(e)))),
    }
}

/// AWS Organizations answers "the entity is being modified by a different
/// request; try again later" with a 400 (`ConcurrentModificationException`):
/// worth trying again, as a server's trouble is.
fn retried_if_busy(error: PortError) -> PortError {
    if error.code.as_deref() != Some("ConcurrentModificationException") {
        return error;
    }
    let code = error.code.clone();
    PortError::transient(PORT, error.message).with_code(code)
}

fn not_a_member(error: &PortError) -> bool {
    matches!(
        error.code.as_deref(),
        Some("AccountNotFoundException" | "AWSOrganizationsNotInUseException")
    )
}

/// Why AWS will not close the account: a sentence a person can act on. A
/// refusal where asking again the same way fails the same way; not yet where
/// AWS is busy with other closures or this account and the same request
/// succeeds later (the close step's `NotYet` retry asks again for hours,
/// where a refusal failed each account of a bulk offboarding).
fn closure_refusal(account: &AccountId, error: &PortError) -> Option<LifecycleError> {
    let reason = error.answer.as_deref().unwrap_or("");
    let sentence = match (error.code.as_deref()?, reason) {
        ("ConstraintViolationException", "CLOSE_ACCOUNT_QUOTA_EXCEEDED") => format!(
            "AWS Organizations closes at most 20% of an organization's member accounts, or 250 \
             if that is more, and never more than 1,000, in any 30 days, and that quota is used \
             up: close account {account} in its console as its root user, then run close again, \
             which records it once AWS Organizations shows it closing"
        ),
        ("ConstraintViolationException", "CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED") => {
            return Some(LifecycleError::NotYet(format!(
                "AWS Organizations is closing as many accounts at once as it allows: account \
                 {account}'s closure is not taken yet (the close state machine asks again for \
                 hours; from the command line, run close again later)"
            )));
        }
        ("ConstraintViolationException", reason) => format!(
            "AWS Organizations will not close account {account} (ConstraintViolationException{}{})",
            if reason.is_empty() { "" } else { ": " },
            reason
        ),
        ("AccountNotFoundException", _) => format!(
            "account {account} is not a member of this organization: if it has left it, close \
             it in its console as its root user, then run close again with --attest \"what you \
             did\""
        ),
        ("ConflictException", _) => {
            return Some(LifecycleError::NotYet(format!(
                "AWS Organizations is changing account {account} already (ConflictException): \
                 its closure is not taken yet (the close state machine asks again for hours; \
                 from the command line, run close again in a few minutes)"
            )));
        }
        ("AccessDeniedException", _) => format!(
            "AWS Organizations will not close account {account} for this role: only the \
             organization's management account closes member accounts (a stack in a delegated \
             administrator account cannot). Close it in the AWS Organizations console of the \
             management account, then run close again: rootmail records it once AWS shows it \
             closing"
        ),
        (code @ ("AWSOrganizationsNotInUseException" | "UnsupportedAPIEndpointException"), _) => {
            format!(
                "AWS Organizations cannot close account {account} from here ({code}): run \
                 rootmail in the organization's management account"
            )
        }
        _ => return None,
    };
    Some(LifecycleError::Refused(sentence))
}

fn port_error(account: &AccountId, doing: &str, error: PortError) -> LifecycleError {
    let message = match error.code.as_deref() {
        Some("AccessDeniedException") => format!(
            "AWS Organizations refused to {doing} account {account}: this role may not \
             (organizations:DescribeAccount and organizations:CloseAccount, from the \
             organization's management account)"
        ),
        _ => format!(
            "AWS Organizations could not {doing} account {account}: {}",
            error.message
        ),
    };
    let reworded = error.reworded(message).of_port(PORT);
    LifecycleError::Port(reworded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(state: Option<&str>, status: Option<&str>) -> Option<MemberState> {
        state_of(&DescribedAccount {
            state: state.map(str::to_string),
            status: status.map(str::to_string),
        })
    }

    #[test]
    fn the_state_is_read_before_the_older_status() {
        assert_eq!(
            described(Some("SUSPENDED"), Some("SUSPENDED")),
            Some(MemberState::Suspended),
            "State's SUSPENDED is AWS's suspension, not a closure"
        );
        assert_eq!(
            described(Some("CLOSED"), Some("SUSPENDED")),
            Some(MemberState::Closed)
        );
        assert_eq!(
            described(None, Some("SUSPENDED")),
            None,
            "the old Status's SUSPENDED was closed or suspended: not read"
        );
        assert_eq!(
            described(None, Some("PENDING_CLOSURE")),
            Some(MemberState::PendingClosure)
        );
        assert_eq!(described(None, Some("ACTIVE")), Some(MemberState::Active));
        assert_eq!(described(Some("SOMETHING_NEW"), Some("ACTIVE")), None);
        assert_eq!(described(None, None), None);
    }

    #[test]
    fn a_closure_quota_is_a_refusal_that_says_what_to_do() {
        let account = AccountId::parse("444455556666").unwrap();
        let error = PortError::permanent(PORT, "CloseAccount: HTTP 400")
            .with_code(Some("ConstraintViolationException".into()))
            .with_answer("CLOSE_ACCOUNT_QUOTA_EXCEEDED");
        let refusal = closure_refusal(&account, &error).unwrap().to_string();
        assert!(
            refusal.contains("20%") && refusal.contains("once AWS Organizations shows it closing"),
            "{refusal}"
        );
        for (code, answer) in [
            (
                "ConstraintViolationException",
                "CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED",
            ),
            ("ConflictException", ""),
        ] {
            let busy = PortError::permanent(PORT, "CloseAccount: HTTP 400")
                .with_code(Some(code.into()))
                .with_answer(answer);
            let later = closure_refusal(&account, &busy).unwrap();
            assert_eq!(later.error_name(), "NotYet", "{code}: {later}");
        }
        let throttled =
            PortError::transient(PORT, "x").with_code(Some("TooManyRequestsException".into()));
        assert!(closure_refusal(&account, &throttled).is_none());
        let denied =
            PortError::permanent(PORT, "x").with_code(Some("AccessDeniedException".into()));
        let refusal = closure_refusal(&account, &denied).unwrap().to_string();
        assert!(refusal.contains("management account"), "{refusal}");
        let unsupported = PortError::permanent(PORT, "x")
            .with_code(Some("UnsupportedAPIEndpointException".into()));
        let refusal = closure_refusal(&account, &unsupported).unwrap().to_string();
        assert!(
            refusal.contains("(UnsupportedAPIEndpointException)"),
            "{refusal}"
        );
    }

    #[test]
    fn a_concurrent_modification_is_tried_again() {
        let busy = PortError::permanent(PORT, "x")
            .with_code(Some("ConcurrentModificationException".into()));
        let retried = retried_if_busy(busy);
        assert!(retried.is_transient());
        assert_eq!(
            retried.code.as_deref(),
            Some("ConcurrentModificationException")
        );
        let invalid =
            PortError::permanent(PORT, "x").with_code(Some("InvalidInputException".into()));
        assert!(!retried_if_busy(invalid).is_transient());
    }
}
