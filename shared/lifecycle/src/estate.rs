//! The estate: every account with where its lifecycle is, when AWS last wrote
//! to its root address, and who last read its root credentials. Pure: the
//! CLI gathers the records (local files, or the tables with `--aws`).

use crate::model::{AuditEntry, Mode, Phase, Rotation};
use rootmail_domain::{Account, AccountId};
use serde::Serialize;
use std::collections::HashMap;

/// One account's line in `rootmail accounts list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EstateRow {
    pub account_id: AccountId,
    pub customer: String,
    /// The payer (management) account of the customer's organization, when known.
    pub payer: Option<AccountId>,
    pub root_email: String,
    /// The directory's status (active, onboarding, released, closed...).
    pub status: String,
    pub mode: Option<Mode>,
    pub phase: Option<Phase>,
    /// When verified AWS mail last reached the root address (seconds).
    pub last_aws_mail: Option<u64>,
    /// The latest read of a root secret: break-glass access or a code read.
    pub last_access: Option<LastAccess>,
    /// What the account's lifecycle waits for, if anything, and since when.
    pub waiting_for: Option<String>,
    pub waiting_since: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastAccess {
    pub who: String,
    /// Seconds since the epoch.
    pub at: u64,
    pub reason: Option<String>,
    pub ticket: Option<String>,
}

/// Audit actions that read a root secret.
pub const ACCESS_ACTIONS: &[&str] = &["break-glass access", "verification code read"];

/// What to show.
#[derive(Debug, Clone, Copy, Default)]
pub struct EstateFilter {
    pub phase: Option<Phase>,
    /// Only accounts AWS has not written to for this long (or never).
    pub silent_for: Option<u64>,
    pub now: u64,
}

/// The latest access per account, from audit entries in any order.
pub fn last_accesses<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> HashMap<AccountId, LastAccess> {
    let mut latest: HashMap<AccountId, LastAccess> = HashMap::new();
    for e in entries {
        if !ACCESS_ACTIONS.contains(&e.action.as_str()) {
            continue;
        }
        let at = e.at / 1000;
        if latest.get(&e.account_id).is_some_and(|l| l.at >= at) {
            continue;
        }
        latest.insert(
            e.account_id.clone(),
            LastAccess {
                who: e.actor.clone(),
                at,
                reason: e.reason.clone(),
                ticket: e.ticket.clone(),
            },
        );
    }
    latest
}

/// The estate, one row per account (directory accounts and accounts with a
/// lifecycle record), ordered by customer then account. Linear in the input.
pub fn estate(
    accounts: &[Account],
    rotations: &[Rotation],
    last_mail: &HashMap<String, u64>,
    last_access: &HashMap<AccountId, LastAccess>,
    filter: EstateFilter,
) -> Vec<EstateRow> {
    let by_id: HashMap<&AccountId, &Rotation> =
        rotations.iter().map(|r| (&r.account_id, r)).collect();
    // The directory may know an account by several addresses (ours, and the
    // customer's after a release): the rotation's current one wins.
    let mut rows: HashMap<&AccountId, EstateRow> = HashMap::new();
    for account in accounts {
        let rotation = by_id.get(&account.account_id).copied();
        let current = rotation.map(|r| r.target_email.as_str());
        if rows.contains_key(&account.account_id) && current != Some(account.root_email.as_str()) {
            continue;
        }
        rows.insert(&account.account_id, row(account_row(account), rotation));
    }
    for rotation in rotations {
        rows.entry(&rotation.account_id).or_insert_with(|| {
            row(
                EstateRow {
                    account_id: rotation.account_id.clone(),
                    customer: rotation.customer.clone(),
                    root_email: rotation.target_email.to_string(),
                    status: "-".into(),
                    ..blank(&rotation.account_id)
                },
                Some(rotation),
            )
        });
    }
    let mut out: Vec<EstateRow> = rows
        .into_values()
        .map(|mut r| {
            r.last_aws_mail = last_mail.get(r.account_id.as_str()).copied();
            r.last_access = last_access.get(&r.account_id).cloned();
            r
        })
        .filter(|r| filter.phase.is_none_or(|p| r.phase == Some(p)))
        .filter(|r| {
            filter.silent_for.is_none_or(|window| {
                r.last_aws_mail
                    .is_none_or(|at| filter.now.saturating_sub(at) >= window)
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.customer, &a.account_id).cmp(&(&b.customer, &b.account_id)));
    out
}

fn blank(account: &AccountId) -> EstateRow {
    EstateRow {
        account_id: account.clone(),
        customer: String::new(),
        payer: None,
        root_email: String::new(),
        status: String::new(),
        mode: None,
        phase: None,
        last_aws_mail: None,
        last_access: None,
        waiting_for: None,
        waiting_since: None,
    }
}

fn account_row(account: &Account) -> EstateRow {
    EstateRow {
        customer: account.customer.clone(),
        payer: account.payer.clone(),
        root_email: account.root_email.to_string(),
        status: account.status.as_str().to_string(),
        ..blank(&account.account_id)
    }
}

fn row(mut out: EstateRow, rotation: Option<&Rotation>) -> EstateRow {
    let Some(r) = rotation else {
        return out;
    };
    out.mode = Some(r.mode);
    out.phase = Some(r.phase);
    out.root_email = r.target_email.to_string();
    out.waiting_for = waiting_for(r);
    let since = r.closure_requested_at.unwrap_or(r.updated_at);
    out.waiting_since = out.waiting_for.as_ref().map(|_| since);
    out
}

/// Who or what a rotation waits for, in words (`accounts list`, `rotation
/// status`).
pub fn waiting_for(r: &Rotation) -> Option<String> {
    if r.closure_requested_at.is_some() && r.phase != Phase::Closed {
        let text =
            "AWS Organizations to show the closure it accepted (then close again records it)";
        return Some(text.to_string());
    }
    let text = match r.phase {
        Phase::Registered => "the take-over to start",
        Phase::AwaitingOtp if r.mode == Mode::Console => {
            "the root email change in the console (AWS's code)"
        }
        Phase::AwaitingOtp => {
            "AWS's code mail (where no rule read its code: rotation complete --otp-stdin)"
        }
        Phase::OtpReceived if r.mode == Mode::Console => "an engineer to read the code",
        Phase::OtpReceived => "the workflow to accept the code",
        // AWS's code mail came, but no rule read its code (nothing handed over).
        Phase::EmailAccepted if r.moved_on_by_an_unread_code() => {
            "the code in AWS's original mail entered in the console, then evidence (AWS mail or attestation)"
        }
        Phase::EmailAccepted if r.mode == Mode::Console => {
            "evidence of the email change (AWS mail or attestation)"
        }
        Phase::EmailAccepted | Phase::EmailConfirmed => "the workflow",
        Phase::AwaitingEngineer => "an engineer's console steps",
        Phase::AwaitingCustomerOtp => "the customer (release)",
        Phase::Secured => "activation",
        Phase::Active | Phase::Released | Phase::Closed | Phase::Failed => return None,
    };
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootmail_domain::{AccountStatus, EmailAddress};

    fn account(id: &str, customer: &str) -> Account {
        Account {
            root_email: EmailAddress::parse(&format!("root-{id}@example.com")).unwrap(),
            account_id: AccountId::parse(id).unwrap(),
            customer: customer.into(),
            status: AccountStatus::Active,
            payer: None,
        }
    }

    #[test]
    fn silent_accounts_are_those_aws_has_not_written_to_within_the_window() {
        let accounts = [account("111111111111", "A"), account("222222222222", "B")];
        let mail = HashMap::from([("111111111111".to_string(), 1_000u64)]);
        let filter = EstateFilter {
            silent_for: Some(500),
            now: 1_400,
            ..Default::default()
        };
        let rows = estate(&accounts, &[], &mail, &HashMap::new(), filter);
        let ids: Vec<&str> = rows.iter().map(|r| r.account_id.as_str()).collect();
        assert_eq!(ids, ["222222222222"], "the one never written to");
        let later = EstateFilter {
            now: 1_600,
            ..filter
        };
        assert_eq!(
            estate(&accounts, &[], &mail, &HashMap::new(), later).len(),
            2
        );
    }

    #[test]
    fn the_latest_access_wins_whatever_the_order() {
        let id = AccountId::parse("111111111111").unwrap();
        let entry = |at: u64, who: &str, action: &str| AuditEntry {
            account_id: id.clone(),
            at,
            actor: who.into(),
            action: action.into(),
            reason: Some("r".into()),
            ticket: None,
            detail: String::new(),
        };
        let entries = [
            entry(5_000, "bob", "break-glass access"),
            entry(9_000, "carol", "closed"),
            entry(2_000, "alice", "verification code read"),
        ];
        let latest = last_accesses(&entries);
        assert_eq!(latest[&id].who, "bob");
        assert_eq!(latest[&id].at, 5);
    }
}
