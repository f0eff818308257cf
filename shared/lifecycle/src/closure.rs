//! Closing an account, as AWS closes it, and reopening it.
//!
//! A member account of this organization is closed through AWS
//! Organizations (`CloseAccount`, asked by the closure itself; AWS closes it
//! in the background and `DescribeAccount` shows `PENDING_CLOSURE`, then
//! `CLOSED`). A payer (management) account of another organization or a
//! standalone account closes only in its console, signed in as its root
//! user: the engineer does it there and attests, as for the console's other
//! steps. Either way the record becomes `closed`; the archive and the vault
//! are kept, since AWS keeps a closed account 90 days (sign-in, reopening, a
//! last bill).
//!
//! Only AWS Support reopens a closed account, within those 90 days. `reopen`
//! records it once AWS shows the member `ACTIVE` (or, for a console account,
//! on the engineer's word): the record goes back to what it was when it was
//! closed, and its mail is ticketed again.

use crate::model::{AskedBy, Failure, Mode, Phase, Rotation};
use crate::ports::{
    AccountApi, AuditLog, LifecycleError, LifecyclePorts, LifecycleResult, MemberState,
};
use crate::steps::{
    StepOutput, advance_justified, change_record, record, refused, rotation_of, save_marked,
    set_status, words_within_limit,
};
use rootmail_domain::{AccountId, AccountStatus};

/// A person's request to close an account (or to reopen it: [`Reopening`]).
#[derive(Debug, Clone, Copy)]
pub struct Closure<'a> {
    pub account: &'a AccountId,
    pub who: &'a str,
    pub reason: &'a str,
    /// What the engineer did in the console (a payer or standalone account,
    /// or a member that has left this organization).
    pub attest: Option<&'a str>,
}

/// A person's request to record a closed account open again: the same words
/// (who, why, and what the engineer saw where no API of ours shows it).
pub type Reopening<'a> = Closure<'a>;

/// Closes the account (a member through AWS Organizations, any other as the
/// engineer attests), then records it `closed`. Run again after a failure,
/// it asks AWS nothing that is already done.
pub async fn close<P: LifecyclePorts>(
    p: &P,
    request: &Closure<'_>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let attest = checked(request)?;
    let account = request.account;
    let mut rotation = rotation_of(p, account).await?;
    if rotation.phase == Phase::Closed {
        return closed_before(p, &rotation, request, now).await;
    }
    no_release_starting(&rotation, now)?;
    let how = match (rotation.mode, attest) {
        (Mode::Console, Some(statement)) => format!("in the console, as attested: {statement}"),
        (Mode::Console, None) => return refused(console_steps(account)),
        (Mode::Vaulted | Mode::Rootless, _) => {
            close_member(p, &mut rotation, request, attest, now).await?
        }
    };
    set_status(p, &rotation, AccountStatus::Closed).await?;
    rotation.closed_from = Some(rotation.phase);
    rotation.phase = Phase::Closed;
    rotation.waiting_for = None;
    rotation.task_token = None;
    rotation.closure_claimed_at = None;
    rotation.asked_by = Some(asked_by(request));
    let detail = format!("account closed {how}; archive and vault kept");
    advance_justified(
        p,
        &mut rotation,
        now,
        (request.who, CLOSED, Some(request.reason), None, detail),
    )
    .await
}

/// The request's words: a reason, and a statement when one is given, each
/// within what the audit row and the ticket note carry. The statement, trimmed.
fn checked<'a>(request: &Closure<'a>) -> LifecycleResult<Option<&'a str>> {
    if request.reason.trim().is_empty() {
        return refused("closing or reopening an account needs a reason".into());
    }
    let attest = request.attest.map(str::trim);
    if attest == Some("") {
        return refused("an attestation needs a statement of what was done".into());
    }
    words_within_limit([Some(request.reason), attest])?;
    Ok(attest)
}

/// An account already closed: refused, unless this is the closure that
/// closed it, run again (Step Functions retries a step whose answer was
/// lost; a person runs it again): the same person and reason, answered as
/// before. Its save went through and its audit row did not: the row is
/// written now.
async fn closed_before<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    request: &Closure<'_>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let refusal = format!("account {} is already closed", rotation.account_id);
    let lost = "account closed; written when the close ran again: its first run saved, then \
                stopped";
    answered_before(p, rotation, request, (CLOSED, refusal, lost), now).await
}

/// The change `action` last saved to `rotation`, asked for again: the same
/// person and reason are answered as before, anyone else is refused. If the
/// first run saved and stopped, its audit row is written now, in the name of
/// who asked for the change (kept on the record), whoever runs it again.
async fn answered_before<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    request: &Closure<'_>,
    (action, refusal, lost): (&str, String, &str),
    now: u64,
) -> LifecycleResult<StepOutput> {
    let since = rotation.updated_at * 1000;
    let audited = p.audit().entries(&rotation.account_id).await?;
    let row = audited.iter().find(|e| e.action == action && e.at >= since);
    match row {
        Some(row) if row.actor == request.who && row.reason.as_deref() == Some(request.reason) => {
            Ok(StepOutput::from(rotation))
        }
        Some(_) => refused(refusal),
        None => {
            // A record from before the asker was kept: the one asking now.
            let (who, reason) = rotation
                .asked_by
                .as_ref()
                .map_or((request.who, request.reason), |a| (&a.who, &a.reason));
            let asker = Closure {
                who,
                reason,
                ..*request
            };
            audit(p, rotation, &asker, (action, lost.to_string()), now).await?;
            match (who, reason) == (request.who, request.reason) {
                true => Ok(StepOutput::from(rotation)),
                false => refused(refusal),
            }
        }
    }
}

fn asked_by(request: &Closure<'_>) -> AskedBy {
    AskedBy {
        who: request.who.to_string(),
        reason: request.reason.to_string(),
    }
}

const CLOSED: &str = "closed";

/// An audit row (and ticket note) of this closure: who asked, and why.
async fn audit<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    request: &Closure<'_>,
    (action, detail): (&str, String),
    now: u64,
) -> LifecycleResult<()> {
    let entry = (request.who, action, Some(request.reason), None, detail);
    record(p, request.account, &rotation.customer, now, entry).await
}

/// What the engineer does for an account no API of ours closes.
fn console_steps(account: &AccountId) -> String {
    format!(
        "account {account} is a payer or standalone account (mode console): AWS closes it only \
         in its console. Sign in as its root user, open Account and choose Close account (a \
         management account: first remove every member account from its organization and \
         delete the organization), then run close again with --attest \"what you did\""
    )
}

/// A member account: closed in AWS Organizations. The record is claimed
/// first (saved, so a release that read it meanwhile fails its own save),
/// and the request audited, before AWS is asked; a failure is audited too.
/// Once AWS accepted, the record says so (`closure_requested_at`): the
/// closure is not asked for again, nor a release started, while AWS
/// finishes it. Returns how it was closed, for the record's audit row.
async fn close_member<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    request: &Closure<'_>,
    attest: Option<&str>,
    now: u64,
) -> LifecycleResult<String> {
    let account = request.account;
    let state = p.api().member_state(account).await?;
    if let Some(asked_at) = rotation.closure_requested_at {
        return match accepted_closure(account, state) {
            Err(LifecycleError::NotYet(_)) if now >= asked_at + CLOSURE_SHOWN_WITHIN_SECS => {
                lapsed(p, rotation, request, state, now).await
            }
            shown => shown,
        };
    }
    let customers = matches!(rotation.phase, Phase::Released | Phase::AwaitingCustomerOtp);
    if let Some(done) = closed_without_asking(account, state, attest, customers)? {
        return Ok(done);
    }
    claim_held_by_another(rotation, now)?;
    rotation.closure_claimed_at = Some(now);
    save_marked(p, rotation).await?;
    let asked = format!("asking AWS Organizations to close account {account} (CloseAccount)");
    if let Err(error) = audit(p, rotation, request, ("closure requested", asked), now).await {
        // AWS is not asked: the claim goes (best effort; it lapses anyway).
        let _ = change_record(p, account, |r| r.closure_claimed_at = None).await;
        return Err(error);
    }
    if let Err(error) = p.api().close_member(account).await {
        let detail = match &error {
            LifecycleError::Refused(why) => format!("AWS Organizations did not close it: {why}"),
            LifecycleError::NotYet(why) => format!("AWS Organizations did not take it yet: {why}"),
            other => format!("asking AWS Organizations failed, the account is as it was: {other}"),
        };
        // Best effort: an unreleased claim lapses by itself.
        let _ = change_record(p, account, |r| r.closure_claimed_at = None).await;
        audit(p, rotation, request, ("closure failed", detail), now).await?;
        return Err(error);
    }
    *rotation = change_record(p, account, |r| {
        r.closure_requested_at.get_or_insert(now);
        r.closure_claimed_at = None;
    })
    .await?;
    accepted_closure(account, p.api().member_state(account).await?)
}

/// How long a claim stops a release or a take-over: longer than a run of
/// the close step (a Lambda runs 15 minutes at most); a claim older than
/// that is a run that stopped before AWS answered.
pub const CLAIM_HELD_SECS: u64 = 15 * 60;

/// A claim (a closure's or a release's) made less than [`CLAIM_HELD_SECS`]
/// before `now`: when it was made.
pub(crate) fn held(claimed_at: Option<u64>, now: u64) -> Option<u64> {
    claimed_at.filter(|at| now < at + CLAIM_HELD_SECS)
}

/// A release claimed the record and is mailing `NoticeTo` or asking AWS for
/// the email change: the closure waits (`NotYet`), and once the release has
/// started, is refused as for any account being released.
fn no_release_starting(rotation: &Rotation, now: u64) -> LifecycleResult<()> {
    match held(rotation.release_starting_since, now) {
        Some(at) => Err(LifecycleError::NotYet(format!(
            "a release of account {} has been starting since {}: run close again in a few \
             minutes",
            rotation.account_id,
            rootmail_domain::dates::utc(at)
        ))),
        None => Ok(()),
    }
}

/// Another run (a second person, or the state machine) is asking AWS to
/// close the account: this one waits (`NotYet`) rather than ask twice.
fn claim_held_by_another(rotation: &Rotation, now: u64) -> LifecycleResult<()> {
    match held(rotation.closure_claimed_at, now) {
        Some(at) => Err(LifecycleError::NotYet(format!(
            "a closure of account {} has asked AWS Organizations since {}: run close again in a \
             few minutes",
            rotation.account_id,
            rootmail_domain::dates::utc(at)
        ))),
        None => Ok(()),
    }
}

/// How long after AWS accepted a closure it must show it closing: AWS says
/// "a few minutes"; a day later, AWS did not close it (it failed in the
/// background, or the account was reopened).
const CLOSURE_SHOWN_WITHIN_SECS: u64 = 24 * 60 * 60;

/// AWS accepted the closure a day ago and still does not show it closing:
/// it did not close it. The note goes (a release may start again), the
/// audit says so, and the person is told to ask anew.
async fn lapsed<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    request: &Closure<'_>,
    state: Option<MemberState>,
    now: u64,
) -> LifecycleResult<String> {
    let account = request.account;
    let shown = state.map_or("nothing", MemberState::as_str);
    rotation.closure_requested_at = None;
    save_marked(p, rotation).await?;
    let detail = format!(
        "AWS Organizations accepted the closure a day or more ago and shows the account {shown}: \
         it did not close it"
    );
    audit(p, rotation, request, ("closure lapsed", detail), now).await?;
    refused(format!(
        "AWS Organizations accepted the closure of account {account} but shows it {shown} a day \
         later: it did not close it. Run close again to ask AWS anew"
    ))
}

/// A closure AWS accepted, by what it shows now: closing (or gone from the
/// organization), it is recorded; anything else is AWS's view lagging behind
/// (`NotYet`: the state machine runs the step again, which asks nothing).
fn accepted_closure(account: &AccountId, state: Option<MemberState>) -> LifecycleResult<String> {
    let shown = match state {
        Some(state) if state.closing() => format!("it shows {state}, and AWS finishes it"),
        None => "it no longer lists the account".to_string(),
        Some(state) => {
            return Err(LifecycleError::NotYet(format!(
                "AWS Organizations accepted the closure of account {account} but shows it \
                 {state} still: run close again in a few minutes (the close state machine retries \
                 for about four hours), and rootmail records it once AWS shows it closing"
            )));
        }
    };
    Ok(format!(
        "through AWS Organizations (CloseAccount accepted; {shown})"
    ))
}

/// A release may not start, nor be cancelled, nor a take-over start, while
/// AWS is asked to close the account (the record claimed) or once it
/// accepted.
pub(crate) fn no_closure_under_way(rotation: &Rotation, now: u64) -> LifecycleResult<()> {
    let account = &rotation.account_id;
    if rotation.closure_requested_at.is_some() {
        return refused(format!(
            "AWS Organizations is closing account {account}: run close again to record it"
        ));
    }
    match held(rotation.closure_claimed_at, now) {
        Some(_) => refused(format!(
            "AWS Organizations is being asked to close account {account}: run close again to \
             see what it answered"
        )),
        None => Ok(()),
    }
}

/// What AWS Organizations' `state` of a member means for its closure: how
/// it is closed already (`Some`), that AWS is to be asked (`None`), or why
/// neither.
fn closed_without_asking(
    account: &AccountId,
    state: Option<MemberState>,
    attest: Option<&str>,
    customers: bool,
) -> LifecycleResult<Option<String>> {
    match (state, attest) {
        (Some(state), attest) if state.closing() => Ok(Some(format!(
            "in AWS (AWS Organizations shows it {state}){}",
            attested(attest)
        ))),
        (None, Some(statement)) => Ok(Some(outside_the_organization(statement))),
        (None, None) if customers => refused(format!(
            "AWS Organizations does not know account {account} as a member of this \
             organization, and it is released to its customer: once the customer has closed it, \
             run close again with --attest \"how you know\""
        )),
        (None, None) => refused(format!(
            "AWS Organizations does not know account {account} as a member of this \
             organization: if it has left it, close it in its console as its root user, then \
             run close again with --attest \"what you did\""
        )),
        (Some(_), _) if customers => refused(format!(
            "account {account} is released to its customer, or being released: its root user \
             is theirs, and rootmail does not close it. Once it is closed (by the customer, or \
             in AWS Organizations if that is agreed), run close again"
        )),
        (Some(state), Some(_)) => refused(format!(
            "AWS Organizations shows account {account} {state}, not closed: run close without \
             --attest to close it through AWS Organizations"
        )),
        (Some(_), None) => Ok(None),
    }
}

/// Records a closed account open again, once AWS Support has reopened it
/// (within 90 days of its closure): a member when AWS Organizations shows it
/// `ACTIVE`, a console account (or a member that has left this
/// organization) on the engineer's word. The record goes back to what the
/// closure found ([`restore`]), then the directory ([`list_reopened`]). Run
/// again, the same request is answered as before.
pub async fn reopen<P: LifecyclePorts>(
    p: &P,
    request: &Reopening<'_>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let attest = checked(request)?;
    let account = request.account;
    let mut rotation = rotation_of(p, account).await?;
    if rotation.phase != Phase::Closed {
        return reopened_before(p, &rotation, request, now).await;
    }
    within_reopening_window(&rotation, now)?;
    let how = match (rotation.mode, attest) {
        (Mode::Console, Some(statement)) => format!("as attested: {statement}"),
        (Mode::Console, None) => return refused(console_reopen_steps(account)),
        (Mode::Vaulted | Mode::Rootless, _) => {
            open_in_aws(account, p.api().member_state(account).await?, attest)?
        }
    };
    let reopened_as = restore(&mut rotation);
    rotation.reopened_at = Some(now);
    rotation.asked_by = Some(asked_by(request));
    let detail = format!("account reopened {how}; {reopened_as}");
    let entry = (request.who, REOPENED, Some(request.reason), None, detail);
    let output = advance_justified(p, &mut rotation, now, entry).await?;
    list_reopened(p, &rotation).await?;
    Ok(output)
}

const REOPENED: &str = "reopened";

/// How long AWS keeps a closed account reopenable; then it closes it for
/// good (and removes a member from its organization).
const REOPENABLE_WITHIN_SECS: u64 = 90 * 24 * 60 * 60;

/// AWS reopens an account only within 90 days of its closure, which is no
/// later than the record says it was closed.
fn within_reopening_window(closed: &Rotation, now: u64) -> LifecycleResult<()> {
    if now <= closed.updated_at + REOPENABLE_WITHIN_SECS {
        return Ok(());
    }
    refused(format!(
        "account {} was recorded closed on {}, more than 90 days ago: AWS reopens a closed \
         account only within 90 days of its closure, then closes it for good",
        closed.account_id,
        rootmail_domain::dates::utc(closed.updated_at)
    ))
}

/// An account that is not closed: refused, unless its last save was this
/// reopening, asked again (its answer lost, or its audit row or directory
/// write failed): answered as before, and what failed written now.
async fn reopened_before<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    request: &Reopening<'_>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let refusal = format!(
        "account {} is not closed ({})",
        rotation.account_id,
        rotation.phase.as_str()
    );
    if rotation.reopened_at != Some(rotation.updated_at) {
        return refused(refusal);
    }
    let lost = "account reopened; written when reopen ran again: its first run saved, then \
                stopped";
    let answer = answered_before(p, rotation, request, (REOPENED, refusal, lost), now).await;
    // The record says reopened, whoever asks again.
    list_reopened(p, rotation).await?;
    answer
}

/// What the engineer does for an account no API of ours shows.
fn console_reopen_steps(account: &AccountId) -> String {
    format!(
        "account {account} is a payer or standalone account (mode console): only AWS Support \
         reopens a closed account, within 90 days of its closure. Once it has, sign in as its \
         root user to see it open, then run reopen again with --attest \"what you saw\""
    )
}

/// What AWS Organizations' `state` of a closed member means for reopening
/// it: how it is open (`Ok`), or why it is not recorded open.
fn open_in_aws(
    account: &AccountId,
    state: Option<MemberState>,
    attest: Option<&str>,
) -> LifecycleResult<String> {
    match (state, attest) {
        (Some(MemberState::Active), attest) => Ok(format!(
            "in AWS (AWS Organizations shows it ACTIVE){}",
            attested(attest)
        )),
        (Some(state), _) if state.closing() => refused(format!(
            "AWS Organizations shows account {account} {state}: only AWS Support reopens a \
             closed account, within 90 days of its closure. Once AWS shows it ACTIVE, run reopen \
             again"
        )),
        (Some(state), _) => refused(format!(
            "AWS Organizations shows account {account} {state}, not ACTIVE: run reopen again \
             once it does"
        )),
        (None, Some(statement)) => Ok(outside_the_organization(statement)),
        (None, None) => refused(format!(
            "AWS Organizations does not know account {account} as a member of this \
             organization: if it has left it and is open again, run reopen with --attest \
             \"how you know\""
        )),
    }
}

/// A statement kept next to what AWS shows.
fn attested(attest: Option<&str>) -> String {
    attest.map_or(String::new(), |a| format!("; attested: {a}"))
}

fn outside_the_organization(statement: &str) -> String {
    format!("outside this organization, as attested: {statement}")
}

/// The record as the closure found it: an account closed while taken over
/// (`active`, or `secured` with only its activation left), released, or
/// being released is so again. A take-over the closure interrupted (or one
/// that had failed) ended with it: the record says `failed`, and a new
/// take-over may start (the old execution, should it still wait, cannot
/// fail the new one: `Rotation::execution`). Returns what the account is
/// now, for the audit.
fn restore(rotation: &mut Rotation) -> String {
    rotation.closure_requested_at = None;
    rotation.closure_claimed_at = None;
    let closed_from = rotation.closed_from.take();
    if closed_from == Some(Phase::Secured) {
        // Only the activate step was left: its root credentials are in place.
        rotation.phase = Phase::Active;
        return "active: its take-over had secured the root credentials, and only its \
                activation was left"
            .to_string();
    }
    if let Some(phase @ (Phase::Active | Phase::Released | Phase::AwaitingCustomerOtp)) =
        closed_from
    {
        rotation.phase = phase;
        return match phase {
            Phase::AwaitingCustomerOtp => "its release waits for the customer again: AWS let \
                                           the code it mailed them expire after 24 hours, so \
                                           start the release again or cancel it"
                .to_string(),
            phase => format!("{} again", phase.as_str()),
        };
    }
    let (failure, ended) = match (closed_from, rotation.failure.take()) {
        (Some(Phase::Failed), Some(failed)) => (failed, "had failed before the closure"),
        (Some(interrupted), _) => {
            let reason = "the account was closed during the take-over".to_string();
            let failed = Failure {
                phase: interrupted,
                reason,
            };
            (failed, "ended with the closure")
        }
        (None, _) => {
            let reason = "closed before rootmail recorded what it was closed from".to_string();
            let unknown = Failure {
                phase: Phase::Closed,
                reason,
            };
            (unknown, "is not known")
        }
    };
    let detail = format!(
        "failed: its take-over ({}) {ended}; start it again",
        failure.phase.as_str()
    );
    rotation.phase = Phase::Failed;
    rotation.failure = Some(failure);
    detail
}

/// The directory, once the reopened record is saved (a save that fails
/// leaves it closed with the record): the account's mail is ticketed again
/// as its phase wants. A failed take-over's address stays closed where AWS
/// never took it, or nobody knows whether it did.
async fn list_reopened<P: LifecyclePorts>(p: &P, rotation: &Rotation) -> LifecycleResult<()> {
    let status = match (rotation.phase, &rotation.failure) {
        (Phase::Released, _) => AccountStatus::Released,
        (Phase::Active | Phase::AwaitingCustomerOtp, _) => AccountStatus::Active,
        (Phase::Failed, Some(failed))
            if !matches!(failed.phase, Phase::Closed | Phase::Failed)
                && !failed.phase.before_email_change(rotation.mode) =>
        {
            AccountStatus::Onboarding
        }
        _ => return Ok(()),
    };
    set_status(p, rotation, status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_recorded_open_only_once_aws_shows_it_active() {
        let account = AccountId::parse("444455556666").unwrap();
        let decide =
            |state, attest| open_in_aws(&account, state, attest).map_err(|e| e.to_string());
        let open = decide(Some(MemberState::Active), None).unwrap();
        assert_eq!(open, "in AWS (AWS Organizations shows it ACTIVE)");
        let said = decide(Some(MemberState::Active), Some("support case 42")).unwrap();
        assert!(said.ends_with("; attested: support case 42"), "{said}");
        for state in [MemberState::PendingClosure, MemberState::Closed] {
            for attest in [None, Some("support says it is open")] {
                let closing = decide(Some(state), attest).unwrap_err();
                assert!(closing.contains("only AWS Support"), "{closing}");
            }
        }
        for state in [MemberState::Suspended, MemberState::PendingActivation] {
            let other = decide(Some(state), Some("open")).unwrap_err();
            assert!(other.contains("not ACTIVE"), "{other}");
        }
        let gone = decide(
            None,
            Some("left the organization; its console shows it open"),
        );
        assert!(
            gone.unwrap()
                .contains("outside this organization, as attested")
        );
        let unknown = decide(None, None).unwrap_err();
        assert!(unknown.contains("--attest"), "{unknown}");
    }

    #[test]
    fn aws_is_asked_only_for_a_member_that_is_ours_and_not_closing() {
        let account = AccountId::parse("444455556666").unwrap();
        let decide = |state, attest, customers| {
            closed_without_asking(&account, state, attest, customers).map_err(|e| e.to_string())
        };
        for state in [
            MemberState::PendingActivation,
            MemberState::Active,
            MemberState::Suspended,
        ] {
            assert_eq!(decide(Some(state), None, false), Ok(None), "{state}");
            for attest in [None, Some("done")] {
                let theirs = decide(Some(state), attest, true).unwrap_err();
                assert!(theirs.contains("released to its customer"), "{theirs}");
            }
            let attested = decide(Some(state), Some("done"), false).unwrap_err();
            assert!(attested.contains("without --attest"), "{attested}");
        }
        for state in [MemberState::PendingClosure, MemberState::Closed] {
            let done = decide(Some(state), None, true).unwrap().unwrap();
            assert_eq!(done, format!("in AWS (AWS Organizations shows it {state})"));
        }
        let kept = decide(
            Some(MemberState::Closed),
            Some("closed by the customer"),
            false,
        );
        let kept = kept.unwrap().unwrap();
        assert!(
            kept.ends_with("; attested: closed by the customer"),
            "{kept}"
        );
        let gone = decide(None, Some("closed it in the console"), false)
            .unwrap()
            .unwrap();
        assert!(
            gone.contains("as attested: closed it in the console"),
            "{gone}"
        );
        let unknown = decide(None, None, false).unwrap_err();
        assert!(unknown.contains("--attest"), "{unknown}");
    }
}
