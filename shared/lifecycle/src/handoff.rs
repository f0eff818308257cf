//! The lifecycle as the mail pipeline's `Handoffs` port sees it: one
//! implementation over any store's ports (AWS, local).

use crate::ports::{LifecycleError, LifecyclePorts, Rotations};
use crate::steps::{Handover, hand_over};
use rootmail_domain::{AccountId, Handoff, Kind, UnreadSecret, WaitingRotation};
use rootmail_pipeline::{Evidence, Handoffs, PortError, PortResult};
use std::ops::Deref;

/// A lifecycle's rotations as the mail pipeline's handoffs: what waits, and
/// where a verified secret or awaited evidence goes. Holds the lifecycle by
/// reference or box.
pub struct MailHandoffs<P>(pub P);

impl<P> Handoffs for MailHandoffs<P>
where
    P: Deref + Sync,
    P::Target: LifecyclePorts + Sized,
{
    async fn waiting(&self, accounts: &[AccountId], now: u64) -> PortResult<Vec<WaitingRotation>> {
        waiting(&*self.0, accounts, now).await
    }

    async fn hand_over(
        &self,
        account: &AccountId,
        handoff: &Handoff,
        now: u64,
    ) -> PortResult<bool> {
        hand_over_from_mail(&*self.0, account, handoff, now).await
    }

    async fn witness(
        &self,
        account: &AccountId,
        evidence: &Evidence,
        now: u64,
    ) -> PortResult<bool> {
        witness_from_mail(&*self.0, account, evidence, now).await
    }

    async fn secret_came_unread(&self, unread: &UnreadSecret, now: u64) -> PortResult<bool> {
        let account = &unread.waiting.account;
        let told = match unread.waiting.kind {
            Kind::RootEmailOtp => crate::code_mail::code_came_unread(&*self.0, unread, now).await,
            _ => Ok(false),
        };
        match told {
            Ok(went_on) => Ok(went_on),
            Err(LifecycleError::Refused(reason) | LifecycleError::NotYet(reason)) => {
                tracing::warn!(account = %account, %reason, "unread code mail not recorded");
                Ok(false)
            }
            Err(LifecycleError::Port(e)) => Err(e),
        }
    }
}

/// The rotations among `accounts` that wait now, and the address each waits at.
pub async fn waiting<P: LifecyclePorts>(
    p: &P,
    accounts: &[AccountId],
    now: u64,
) -> PortResult<Vec<WaitingRotation>> {
    let mut waiting = Vec::new();
    for account in accounts {
        let Some(rotation) = p.rotations().get(account).await.map_err(into_port)? else {
            continue;
        };
        if let Some(kind) = rotation
            .waiting_for
            .filter(|k| rotation.is_waiting_for(*k, now))
        {
            waiting.push(WaitingRotation {
                account: account.clone(),
                kind,
                address: rotation.target_email.clone(),
            });
        }
        // A console take-over AWS's code mail reached still hears it until
        // the change is confirmed: a later code replaces the one held
        // (`code_mail::later_code`), and a redelivery writes an audit row the
        // first delivery lost.
        if rotation.hears_a_later_code(now) {
            waiting.push(WaitingRotation {
                account: account.clone(),
                kind: Kind::RootEmailOtp,
                address: rotation.target_email.clone(),
            });
        }
        // An enrolled MFA device is confirmed by AWS's notice (evidence only).
        if rotation.mfa_enrolled_at.is_some() && rotation.mfa_confirmed_at.is_none() {
            waiting.push(WaitingRotation {
                account: account.clone(),
                kind: Kind::MfaChange,
                address: rotation.target_email.clone(),
            });
        }
    }
    Ok(waiting)
}

/// Records evidence a rotation waits for (see [`crate::console::witness`]).
pub async fn witness_from_mail<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    evidence: &Evidence,
    now: u64,
) -> PortResult<bool> {
    match crate::console::witness(p, account, evidence, now).await {
        Ok(recorded) => Ok(recorded),
        Err(LifecycleError::Refused(reason) | LifecycleError::NotYet(reason)) => {
            tracing::warn!(account = %account, %reason, "evidence not recorded");
            Ok(false)
        }
        Err(LifecycleError::Port(e)) => Err(e),
    }
}

/// Hands a verified secret to its rotation. `false`: it stopped waiting
/// meanwhile, and the mail is an alert after all.
pub async fn hand_over_from_mail<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    handoff: &Handoff,
    now: u64,
) -> PortResult<bool> {
    match hand_over(p, account, handoff, now).await {
        Ok(Handover::Stored(reference)) => {
            tracing::info!(account = %account, kind = handoff.kind.as_str(), %reference, "secret handed over");
            Ok(true)
        }
        Ok(Handover::Kept(reference)) => {
            // The same mail again, or a late older one: the audit says which.
            tracing::info!(account = %account, kind = handoff.kind.as_str(), %reference, "secret mail taken, the secret held kept");
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
        other => PortError::permanent("lifecycle", other.to_string()),
    }
}
