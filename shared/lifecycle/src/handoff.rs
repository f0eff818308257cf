//! The lifecycle as the mail pipeline's `Handoffs` port sees it; the AWS and
//! local adapters both answer the port with these two functions.

use crate::ports::{LifecycleError, LifecyclePorts, Rotations};
use crate::steps::hand_over;
use rootmail_domain::{AccountId, Kind, SecretValue};
use rootmail_pipeline::{PortError, PortResult};

/// The (account, kind) pairs among `accounts` whose rotation waits now.
pub async fn waiting<P: LifecyclePorts>(
    p: &P,
    accounts: &[AccountId],
    now: u64,
) -> PortResult<Vec<(AccountId, Kind)>> {
    let mut waiting = Vec::new();
    for account in accounts {
        let rotation = p.rotations().get(account).await.map_err(into_port)?;
        if let Some(kind) =
            rotation.and_then(|r| r.waiting_for.filter(|k| r.is_waiting_for(*k, now)))
        {
            waiting.push((account.clone(), kind));
        }
    }
    Ok(waiting)
}

/// Hands a verified secret to its rotation. `false`: it stopped waiting
/// meanwhile, and the mail is an alert after all.
pub async fn hand_over_from_mail<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    kind: Kind,
    secret: &SecretValue,
    now: u64,
) -> PortResult<bool> {
    match hand_over(p, account, kind, secret, now).await {
        Ok(reference) => {
            tracing::info!(account = %account, kind = kind.as_str(), %reference, "secret handed over");
            Ok(true)
        }
        Err(LifecycleError::Refused(reason) | LifecycleError::NotYet(reason)) => {
            tracing::warn!(account = %account, %reason, "secret not handed over");
            Ok(false)
        }
        Err(LifecycleError::Port(e)) => Err(e),
    }
}

/// A lifecycle error where the pipeline expects a port error.
pub fn into_port(e: LifecycleError) -> PortError {
    match e {
        LifecycleError::Port(e) => e,
        other => PortError::Permanent {
            port: "lifecycle",
            message: other.to_string(),
        },
    }
}
