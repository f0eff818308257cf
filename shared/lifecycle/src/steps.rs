//! The lifecycle's steps. Each moves one account from one phase to the next,
//! writes the audit trail first and comments on the account's lifecycle ticket.
//! A step called in the wrong phase is `Refused` and changes nothing, so Step
//! Functions retries and a person repeating a command are both harmless.

use crate::credentials::{new_root_address, new_root_password, totp_code};
use crate::model::{AuditEntry, Failure, Mode, Phase, Rotation, Stage, VaultItem};
use crate::ports::{
    AccountApi, AccountRegistry, AuditLog, EmailUpdateState, EmailUpdateStatus, LifecycleError,
    LifecyclePorts, LifecycleResult, Notices, RootAccess, Rotations, TaskTokens, Vault,
};
use rootmail_domain::{
    Account, AccountId, AccountStatus, EmailAddress, Handoff, Kind, SecretValue,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How long a take-over waits for AWS's code mail (the Step Functions task
/// token times out at the same time).
pub const OTP_WAIT_SECS: u64 = 24 * 3600;

/// How long the engineer's console task waits (the take-over state
/// machine's PrepareVault timeout): reset links are taken for as long.
pub const ENGINEER_WAIT_SECS: u64 = 7 * 24 * 3600;
/// Who automatic steps are recorded as.
pub const SYSTEM_ACTOR: &str = "rootmail";

/// Input of a take-over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakeOver {
    pub account_id: AccountId,
    pub customer: String,
    pub mode: Mode,
    /// Our domain for root addresses.
    pub root_domain: String,
    /// The Step Functions execution that runs it (none locally).
    pub execution: Option<String>,
}

/// The step output Step Functions passes on: references only, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutput {
    pub account_id: AccountId,
    pub mode: Mode,
    pub phase: Phase,
}

impl From<&Rotation> for StepOutput {
    fn from(r: &Rotation) -> Self {
        Self {
            account_id: r.account_id.clone(),
            mode: r.mode,
            phase: r.phase,
        }
    }
}

/// Break-glass access: who, why, and the ticket it is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessRequest {
    pub account_id: AccountId,
    pub who: String,
    pub reason: String,
    pub ticket: String,
}

/// What break-glass access hands out. Never serialized; prints as redacted.
#[derive(Debug)]
pub struct AccessGrant {
    pub root_email: EmailAddress,
    pub password: SecretValue,
    pub totp_code: Option<SecretValue>,
    /// A reset link handed over by mail while a vaulted take-over waits for it.
    pub reset_link: Option<SecretValue>,
    /// The credentials are the pending ones of an unfinished take-over.
    pub pending: bool,
    /// Notices that could not be sent: the person must know nobody was told.
    pub unsent_notices: Vec<String>,
}

pub(crate) fn refused<T>(message: String) -> LifecycleResult<T> {
    Err(LifecycleError::Refused(message))
}

pub(crate) async fn rotation_of<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
) -> LifecycleResult<Rotation> {
    match p.rotations().get(account).await? {
        Some(rotation) => Ok(rotation),
        None => refused(format!(
            "account {account} has no lifecycle record: take it over first"
        )),
    }
}

/// The account's rotation, which must be in one of the `wanted` phases to
/// do what `doing` says.
pub(crate) async fn rotation_in<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    wanted: &[Phase],
    doing: &str,
) -> LifecycleResult<Rotation> {
    let rotation = rotation_of(p, account).await?;
    expect_phase(&rotation, wanted, doing)?;
    Ok(rotation)
}

/// What a state machine step finds: its rotation to move on, or the output
/// it already gave.
enum StepStart {
    Run(Box<Rotation>),
    Done(StepOutput),
}

/// The rotation, in `from`, of a step that moves it to `to`; or, when it is
/// in `to` already, that step's output: the step saved, then its answer was
/// lost (stopped at the function's deadline, a Lambda service error) and
/// Step Functions runs it again. The audit row the step writes after its
/// save (`action`) is written then if the first run stopped before it.
async fn step_from<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    (from, to): (Phase, Phase),
    (doing, action): (&str, &str),
    now: u64,
) -> LifecycleResult<StepStart> {
    let rotation = rotation_in(p, account, &[from, to], doing).await?;
    if rotation.phase != to {
        return Ok(StepStart::Run(Box::new(rotation)));
    }
    let detail = || "written when the step ran again: its first run saved, then stopped".into();
    record_if_lost(p, &rotation, action, detail, now).await?;
    Ok(StepStart::Done(StepOutput::from(&rotation)))
}

/// The audit row `action` of the change last saved to `rotation`, written
/// now unless it is there: the save went through, then the row's write (or
/// the run) failed, and the step or mail that made the change came again.
pub(crate) async fn record_if_lost<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    action: &str,
    detail: impl FnOnce() -> String,
    now: u64,
) -> LifecycleResult<()> {
    record_once_for_mail(p, rotation, action, (None, None), detail, now).await
}

/// The audit row `action` of what a mail (its `Message-ID` and receiving
/// stamp) did, written now unless it is there: the mail came again, and its
/// first delivery's row may be what failed. The row is found by the
/// `Message-ID` its detail names; a mail without one, by a row `action`
/// since its stamp (or, without a stamp, since the record's last save).
pub(crate) async fn record_once_for_mail<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    action: &str,
    (message_id, delivered_at): (Option<&str>, Option<i64>),
    detail: impl FnOnce() -> String,
    now: u64,
) -> LifecycleResult<()> {
    let since = match delivered_at {
        Some(at) => u64::try_from(at).unwrap_or(0) * 1000,
        None => rotation.updated_at * 1000,
    };
    let audited = p.audit().entries(&rotation.account_id).await?;
    // As the details name it ("from mail ID", "code mail ID").
    let named = message_id
        .filter(|id| !id.is_empty())
        .map(|id| format!("mail {id}"));
    let written = |e: &AuditEntry| match &named {
        Some(named) => e.detail.contains(named.as_str()),
        None => e.at >= since,
    };
    if audited.iter().any(|e| e.action == action && written(e)) {
        return Ok(());
    }
    let entry = (SYSTEM_ACTOR, action, None, None, detail());
    record(p, &rotation.account_id, &rotation.customer, now, entry).await
}

pub(crate) fn expect_phase(
    rotation: &Rotation,
    wanted: &[Phase],
    doing: &str,
) -> LifecycleResult<()> {
    if wanted.contains(&rotation.phase) {
        return Ok(());
    }
    let wanted: Vec<&str> = wanted.iter().map(|p| p.as_str()).collect();
    refused(format!(
        "cannot {doing} for account {}: it is {}, and this needs {}",
        rotation.account_id,
        rotation.phase.as_str(),
        wanted.join(" or ")
    ))
}

/// Saves the next version of `rotation`, then audits and notes the change;
/// returns what the step ends with.
pub(crate) async fn advance<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    now: u64,
    (actor, action, detail): (&str, &str, String),
) -> LifecycleResult<StepOutput> {
    advance_justified(p, rotation, now, (actor, action, None, None, detail)).await
}

/// [`advance`] with the reason and ticket a person gave for the change.
pub(crate) async fn advance_justified<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    now: u64,
    entry: (&str, &str, Option<&str>, Option<&str>, String),
) -> LifecycleResult<StepOutput> {
    save_next_version(p, rotation, now).await?;
    record(p, &rotation.account_id, &rotation.customer, now, entry).await?;
    Ok(StepOutput::from(&*rotation))
}

/// Saves the next version of `rotation`, whole (`put`, on the version read),
/// updated `now`.
async fn save_next_version<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    now: u64,
) -> LifecycleResult<()> {
    rotation.updated_at = now;
    save_marked(p, rotation).await
}

/// Saves the next version of `rotation` as it is, `updated_at` kept (a
/// mark: `updated_at` dates a release's start for [`delete_ours`]). A change
/// by someone else since the record was read fails it, as any save.
pub(crate) async fn save_marked<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
) -> LifecycleResult<()> {
    let expected = rotation.version;
    rotation.version += 1;
    p.rotations().put(rotation, Some(expected)).await
}

/// Audit first, then the ticket note: the note is best effort, the audit is not.
pub(crate) async fn record<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    customer: &str,
    now: u64,
    (actor, action, reason, ticket, detail): (&str, &str, Option<&str>, Option<&str>, String),
) -> LifecycleResult<()> {
    p.audit()
        .append(&AuditEntry {
            account_id: account.clone(),
            at: now * 1000,
            actor: actor.to_string(),
            action: action.to_string(),
            reason: reason.map(str::to_string),
            ticket: ticket.map(str::to_string),
            detail: detail.clone(),
        })
        .await?;
    if let Err(e) = p
        .notices()
        .ticket_note(account, customer, &format!("{action}: {detail}"))
        .await
    {
        tracing::warn!(error = %e, account = %account, "lifecycle ticket note not written");
    }
    Ok(())
}

/// Take-over, step 1: a new unguessable root address, the account registered
/// as `onboarding` under it, and its lifecycle record.
pub async fn register<P: LifecyclePorts>(
    p: &P,
    request: &TakeOver,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let account = &request.account_id;
    let existing = p.rotations().get(account).await?;
    if let Some(own) = existing.as_ref().filter(|r| registered_by(r, request)) {
        // Its save went through, then its audit row or its answer was lost,
        // and Step Functions runs the step again: answered as before.
        let detail = || {
            format!(
                "take-over registered ({} mode); the root address will be {}; written when the \
                 step ran again",
                own.mode.as_str(),
                own.target_email
            )
        };
        record_if_lost(p, own, "take-over started", detail, now).await?;
        return Ok(StepOutput::from(own));
    }
    check_can_register(request, existing.as_ref(), now)?;
    reachable_through_account_api(p, request).await?;
    let target = unused_root_address(p, &request.root_domain).await?;
    let previous = register_onboarding(p, request, &target).await?;
    // A released account taken over again replaces its old record.
    let expected = existing.as_ref().map(|r| r.version);
    let mut rotation = registered_rotation(request, target.clone(), previous, expected, now);
    // A failed take-over's credentials AWS may hold: the console signs in
    // with them.
    let failed = existing.filter(|r| r.phase == Phase::Failed);
    rotation.earlier_credentials = failed.as_ref().and_then(credentials_held);
    rotation.earlier_seed_gone = failed.as_ref().is_some_and(|r| !seed_usable(r));
    p.rotations().put(&rotation, expected).await?;
    // A rootless take-over serves no credentials (it keeps what is known of
    // them for a take-over started over it).
    let earlier = match (rotation.earlier_credentials, request.mode) {
        (None, _) | (_, Mode::Rootless) => "",
        (Some(_), _) => {
            "; the failed take-over's root credentials stay readable (`rootmail creds get`) \
             until this one vaults its own"
        }
    };
    let detail = format!(
        "take-over registered ({} mode); the root address will be {target}{earlier}",
        request.mode.as_str()
    );
    record(
        p,
        account,
        &request.customer,
        now,
        (SYSTEM_ACTOR, "take-over started", None, None, detail),
    )
    .await?;
    Ok(StepOutput::from(&rotation))
}

/// A record this same execution registered, not yet moved on.
fn registered_by(rotation: &Rotation, request: &TakeOver) -> bool {
    rotation.phase == Phase::Registered
        && rotation.execution.is_some()
        && rotation.execution == request.execution
}

/// A take-over may start on an account with no record, or one released or
/// failed; never over a running or finished one, and never without a customer.
fn check_can_register(
    request: &TakeOver,
    existing: Option<&Rotation>,
    now: u64,
) -> LifecycleResult<()> {
    let account = &request.account_id;
    if let Some(existing) = existing {
        crate::closure::no_closure_under_way(existing, now)?;
        match existing.phase {
            Phase::Released | Phase::Failed => {}
            Phase::Closed => return refused(format!("account {account} is closed")),
            phase if phase.in_progress() => {
                return refused(format!(
                    "a take-over of account {account} is already running ({})",
                    phase.as_str()
                ));
            }
            _ => {
                return refused(format!(
                    "account {account} is already taken over ({})",
                    existing.phase.as_str()
                ));
            }
        }
    }
    if request.customer.trim().is_empty() {
        return refused("a take-over needs the customer's name".into());
    }
    Ok(())
}

/// The Account API reaches only member accounts of this organization, never
/// its management account: a payer or standalone account is taken over with
/// `--mode console`. Reading the account's root email through it first
/// refuses such an account before anything is registered, where the take-over
/// used to start and fail at its first change.
async fn reachable_through_account_api<P: LifecyclePorts>(
    p: &P,
    request: &TakeOver,
) -> LifecycleResult<()> {
    if request.mode == Mode::Console {
        return Ok(());
    }
    match p.api().primary_email(&request.account_id).await {
        Ok(_) => Ok(()),
        // The read's refusal says what AWS said; which mode fits is ours to say.
        Err(LifecycleError::Refused(why)) => refused(format!(
            "take-over of account {} not started: {why}. A payer (management) or \
             standalone account is taken over with --mode console",
            request.account_id
        )),
        Err(e) => Err(e),
    }
}

/// A new root address under `domain` that no account in the registry has, so
/// mail to it can only be for the account taken over.
async fn unused_root_address<P: LifecyclePorts>(
    p: &P,
    domain: &str,
) -> LifecycleResult<EmailAddress> {
    loop {
        let candidate =
            new_root_address(domain).map_err(|e| LifecycleError::Refused(e.to_string()))?;
        if p.registry().by_email(&candidate).await?.is_none() {
            return Ok(candidate);
        }
    }
}

/// Registers the account as `onboarding` under `target`, keeping the payer the
/// registry knew; returns the root address it had before, if any.
async fn register_onboarding<P: LifecyclePorts>(
    p: &P,
    request: &TakeOver,
    target: &EmailAddress,
) -> LifecycleResult<Option<EmailAddress>> {
    let known = p.registry().by_id(&request.account_id).await?;
    let previous = known.as_ref().map(|a| a.root_email.clone());
    p.registry()
        .save(&Account {
            root_email: target.clone(),
            account_id: request.account_id.clone(),
            customer: request.customer.clone(),
            status: AccountStatus::Onboarding,
            payer: known.and_then(|a| a.payer),
        })
        .await?;
    Ok(previous)
}

/// The lifecycle record of a take-over just registered: the version after
/// `expected` (the replaced record's), or the first.
fn registered_rotation(
    request: &TakeOver,
    target: EmailAddress,
    previous: Option<EmailAddress>,
    expected: Option<u64>,
    now: u64,
) -> Rotation {
    Rotation {
        account_id: request.account_id.clone(),
        customer: request.customer.clone(),
        mode: request.mode,
        phase: Phase::Registered,
        target_email: target,
        previous_email: previous,
        waiting_for: None,
        task_token: None,
        handed_over: None,
        reset_link_delivered_at: None,
        code_delivered_at: None,
        code_message_id: None,
        expires_at: None,
        failure: None,
        engineer_since: None,
        mfa_enrolled_at: None,
        mfa_confirmed_at: None,
        email_change_requested_at: None,
        credentials_deleted_at: None,
        closed_from: None,
        earlier_credentials: None,
        earlier_seed_gone: false,
        closure_requested_at: None,
        reopened_at: None,
        closure_claimed_at: None,
        execution: request.execution.clone(),
        asked_by: None,
        release_starting_since: None,
        release_starting_for: None,
        before_release: None,
        release_completing_since: None,
        email_evidence: None,
        started_at: now,
        updated_at: now,
        version: expected.map_or(1, |v| v + 1),
    }
}

/// Take-over, step 2 (a `waitForTaskToken` task): records the token first, so the
/// code mail finds a waiting rotation however fast it comes, then asks AWS to
/// change the root email. The workflow resumes when the pipeline hands the code over.
/// Run again after it saved, it takes the new attempt's token
/// ([`email_update_run_again`]).
pub async fn start_email_update<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    task_token: &str,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let mut rotation = rotation_of(p, account).await?;
    if rotation.mode == Mode::Console {
        // No Account API reaches it: a person changes it in the console.
        return crate::console::open_email_change(p, account, Some(task_token), now).await;
    }
    expect_phase(
        &rotation,
        &[Phase::Registered, Phase::AwaitingOtp, Phase::OtpReceived],
        "start the root email change",
    )?;
    if rotation.phase != Phase::Registered
        && let Some(output) = email_update_run_again(p, &mut rotation, task_token, now).await?
    {
        return Ok(output);
    }
    rotation.phase = Phase::AwaitingOtp;
    rotation.waiting_for = Some(Kind::RootEmailOtp);
    rotation.task_token = Some(task_token.to_string());
    rotation.expires_at = Some(now + OTP_WAIT_SECS);
    let detail = format!(
        "root email change to {} requested; waiting for AWS's code by mail",
        rotation.target_email
    );
    advance(
        p,
        &mut rotation,
        now,
        (SYSTEM_ACTOR, "root email change started", detail),
    )
    .await?;
    if let Err(e) = p
        .api()
        .start_email_update(account, &rotation.target_email)
        .await
    {
        return start_failed(p, rotation, e, now).await;
    }
    mark_email_change_requested(p, &mut rotation, now).await;
    Ok(StepOutput::from(&rotation))
}

/// Step 2's request to AWS failed: unless AWS took an earlier try all the
/// same, the record goes back so the step can be retried from the start.
async fn start_failed<P: LifecyclePorts>(
    p: &P,
    mut rotation: Rotation,
    e: LifecycleError,
    now: u64,
) -> LifecycleResult<StepOutput> {
    // The code may be on its way all the same (a change someone else
    // started earlier is not taken for it); the audit keeps AWS's answer
    // and says what was assumed.
    if taken_on_a_lost_answer(p, &rotation.account_id, now).await {
        let detail = format!(
            "AWS answered {e}, and holds a root email change started during this request, taken \
             as this request's (a try whose answer was lost): if no code reaches {} within 24 \
             hours, that change was someone else's",
            rotation.target_email
        );
        // Marked first: a retry after a failed audit write renews its token
        // (`email_update_run_again`) instead of deciding again more widely.
        mark_email_change_requested(p, &mut rotation, now).await;
        let entry = (
            SYSTEM_ACTOR,
            "root email change pending",
            None,
            None,
            detail,
        );
        record(p, &rotation.account_id, &rotation.customer, now, entry).await?;
        return Ok(StepOutput::from(&rotation));
    }
    rotation.phase = Phase::Registered;
    rotation.end_wait();
    let detail = format!("AWS refused the root email change: {e}");
    advance(
        p,
        &mut rotation,
        now,
        (SYSTEM_ACTOR, "root email change failed", detail),
    )
    .await?;
    Err(e)
}

/// Step 2 run again once it saved: Step Functions retries a failed attempt
/// (stopped at the deadline, a failed audit write, a Lambda service error)
/// with a new task token, the first attempt's being closed, so the rotation
/// takes the new one. A code already handed over answers the new task at
/// once. AWS is asked again (None) only when no earlier run recorded that AWS
/// took the request: a second request makes the code on its way stale.
async fn email_update_run_again<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    task_token: &str,
    now: u64,
) -> LifecycleResult<Option<StepOutput>> {
    let account = rotation.account_id.clone();
    if rotation.task_token.as_deref() == Some(task_token) {
        return Ok(Some(StepOutput::from(&*rotation)));
    }
    if let (Phase::OtpReceived, Some(reference)) = (rotation.phase, rotation.handed_over.clone()) {
        rotation.task_token = Some(task_token.to_string());
        answer_code_task(p, &account, rotation, Kind::RootEmailOtp, &reference).await?;
        match save_handover(p, rotation, now).await {
            // The answered task's next step saved first.
            Err(e) if !e.is_conflict() => return Err(e),
            _ => return Ok(Some(StepOutput::from(&*rotation))),
        }
    }
    if rotation.email_change_requested_at.is_none() && !pending_since_start(p, rotation).await? {
        return Ok(None);
    }
    renew_task_token(p, rotation, task_token, now)
        .await
        .map(Some)
}

/// Whether AWS holds a root email change of this account started since the
/// take-over began, still waiting for its code: the first run's request,
/// whose mark was not saved. Asking again would make the code on its way
/// stale (or be refused as a conflict: AWS does not document which).
async fn pending_since_start<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
) -> LifecycleResult<bool> {
    pending_since(p, &rotation.account_id, rotation.started_at).await
}

/// Whether AWS holds a root email change of `account` stamped at `since`
/// or later, still waiting for its code.
async fn pending_since<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    since: u64,
) -> LifecycleResult<bool> {
    let status = p.api().email_update_status(account).await?;
    Ok(status.is_some_and(|s| {
        s.state == EmailUpdateState::Pending && s.updated_at.is_some_and(|at| at >= since)
    }))
}

/// Gives AWS the code of the change under way, unless it took it already;
/// true when a try before this one had (see [`code_taken`]).
async fn accept_code<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    change: (&EmailAddress, Option<u64>),
    code: &SecretValue,
) -> LifecycleResult<bool> {
    if code_taken(p, account, change).await? {
        return Ok(true);
    }
    let target = change.0;
    match p.api().accept_email_update(account, target, code).await {
        // The SDK sends a request again when its answer is lost (a timeout,
        // a 500): AWS refuses the second one of a code it took, as no change
        // is pending any more. The change is made.
        Err(LifecycleError::Refused(_)) if code_taken(p, account, change).await? => Ok(false),
        answer => answer.map(|()| false),
    }
}

/// How much earlier than our clock AWS's may stamp a change: an accepted
/// change stamped within it of the one under way's start still counts as
/// that change. An older change's status (a read that lags just after a
/// release's start shows the take-over's) is hours or days older.
const CLOCK_MARGIN_SECS: u64 = 300;

/// Whether AWS has taken the code of the change under way (`change`: its
/// new address, and when it was asked for, if known): a try before this one
/// may have had AWS take it and lost the answer (the code is spent then).
/// The change's status says so at once, when it is stamped no earlier than
/// the change was asked for (else it is an older change's, and says
/// nothing of this one); the root email may take hours to show it (AWS: up
/// to four hours to propagate everywhere), so it only confirms.
async fn code_taken<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    (target, asked_at): (&EmailAddress, Option<u64>),
) -> LifecycleResult<bool> {
    let status = p.api().email_update_status(account).await?;
    if accepted_since(status, asked_at) {
        return Ok(true);
    }
    Ok(p.api().primary_email(account).await? == *target)
}

/// Whether the latest change's status is accepted and stamped no earlier
/// than `asked_at` (within [`CLOCK_MARGIN_SECS`]), so that it is the change
/// asked for then; without either time, an accepted status counts.
fn accepted_since(status: Option<EmailUpdateStatus>, asked_at: Option<u64>) -> bool {
    status.is_some_and(|s| s.state.accepted() && stamped_since(&s, asked_at))
}

/// Whether a status may be the change asked for at `asked_at`: stamped no
/// earlier (within [`CLOCK_MARGIN_SECS`]), or either time unknown.
fn stamped_since(status: &EmailUpdateStatus, asked_at: Option<u64>) -> bool {
    match (asked_at, status.updated_at) {
        (Some(asked), Some(at)) => at + CLOCK_MARGIN_SECS >= asked,
        _ => true,
    }
}

/// Whether AWS holds a change stamped during a request made `now` whose
/// call failed: AWS took an earlier try of it (the SDK's, its answer lost)
/// and refused or failed the retry. AWS does not say where a pending change
/// goes, so only one this recent is taken for the request's.
async fn taken_on_a_lost_answer<P: LifecyclePorts>(p: &P, account: &AccountId, now: u64) -> bool {
    let this_try = now.saturating_sub(CLOCK_MARGIN_SECS);
    pending_since(p, account, this_try).await.unwrap_or(false)
}

/// A `waitForTaskToken` step run again once it saved (see
/// [`email_update_run_again`]): the rotation waits on, answering the new
/// attempt's token; what the first run did stands.
pub(crate) async fn renew_task_token<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    task_token: &str,
    now: u64,
) -> LifecycleResult<StepOutput> {
    if rotation.task_token.as_deref() == Some(task_token) {
        // The same attempt once more: it waits already.
        return Ok(StepOutput::from(&*rotation));
    }
    rotation.task_token = Some(task_token.to_string());
    let detail = format!(
        "the workflow ran its step again (phase {}); the wait goes on for the new attempt",
        rotation.phase.as_str()
    );
    advance(
        p,
        rotation,
        now,
        (SYSTEM_ACTOR, "task token renewed", detail),
    )
    .await
}

/// Records that AWS took the root email change request. Best effort: the
/// request stands whatever happens here, and without the mark a run of the
/// step again only asks AWS a second time.
async fn mark_email_change_requested<P: LifecyclePorts>(p: &P, rotation: &mut Rotation, now: u64) {
    rotation.email_change_requested_at = Some(now);
    if let Err(e) = save_next_version(p, rotation, now).await {
        // A code mail that came first moved the record on: no mark needed.
        tracing::warn!(error = %e, account = %rotation.account_id, "root email change request not marked");
    }
}

/// The audit actions of a handover, and of a late older secret not kept
/// (here and in `code_mail`: a redelivery finds its rows by them).
pub(crate) const HANDED_OVER: &str = "secret handed over";
pub(crate) const OLDER_NOT_KEPT: &str = "older secret not kept";

/// What a handover did with the mail's secret, for the log line that says so
/// (the audit says it in full).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// Stored in the vault under this reference, the rotation told.
    Stored(String),
    /// Not stored: the secret held (this reference) stays. The same mail
    /// again (its handover finished, its lost audit row written), or a late
    /// older one.
    Kept(String),
}

impl Handover {
    /// The reference of the secret the rotation holds.
    pub fn reference(&self) -> &str {
        match self {
            Self::Stored(reference) | Self::Kept(reference) => reference,
        }
    }
}

/// Called by the mail pipeline with the secret of a verified AWS mail for an
/// account whose rotation waits for that kind, delivered to the rotation's own
/// address. Stores it in the vault and answers the waiting task with the
/// reference, never the secret.
pub async fn hand_over<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    handoff: &Handoff,
    now: u64,
) -> LifecycleResult<Handover> {
    hand_over_from(p, account, handoff, (SYSTEM_ACTOR, "received by mail"), now).await
}

/// `rootmail rotation complete --otp-stdin` on a member take-over waiting
/// for AWS's root email code: the engineer read the code in AWS's mail where
/// no rule read it (a layout the rules do not know, or a code shaped like a
/// word) and types it. Audited first; then it goes where a mail's code goes:
/// the vault, then the waiting task, whose next step gives it to AWS, which
/// refuses a wrong one (the take-over then fails, as with a wrong code from
/// mail). Run again after the task's answer failed, it answers with the code
/// stored first, and refuses a different one.
///
/// Not for a console take-over: nothing there checks a typed code (AWS's
/// console does, out of our sight), and its change is confirmed only once
/// AWS's code mail passed the trust checks.
pub async fn enter_root_email_code<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    who: &str,
    code: Option<&SecretValue>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let rotation = rotation_of(p, account).await?;
    if rotation.mode == Mode::Console {
        return refused(format!(
            "account {account} is taken over in the console: a typed code proves nothing there. The change goes on once AWS's code mail passed rootmail's checks; where no rule read its code, that mail moves the take-over on without it (`rotation status`): read the code in the original and enter it in the console"
        ));
    }
    let Some(code) = code else {
        return refused(format!(
            "account {account} waits for AWS's root email code, which comes by mail; where no rule read it, read it in the original and type it with --otp-stdin"
        ));
    };
    if !is_root_email_code(code.expose()) {
        return refused(
            "AWS's root email code is six letters and digits (all AcceptPrimaryEmailUpdate takes)"
                .to_string(),
        );
    }
    if let Some(at) = rotation.expires_at.filter(|at| now >= *at) {
        let why = format!("account {account}'s wait for AWS's code ended at {at}");
        return fail_expired(p, account, why, now).await;
    }
    refuse_a_second_code(p, &rotation, code).await?;
    let detail = format!(
        "{who} typed AWS's code for the root email change to {}, read in the original mail",
        rotation.target_email
    );
    let typed = (who, "root email code typed", None, None, detail);
    record(p, account, &rotation.customer, now, typed).await?;
    let handoff = Handoff {
        kind: Kind::RootEmailOtp,
        secret: code.clone(),
        recipient: rotation.target_email.clone(),
        delivered_at: None,
        message_id: None,
    };
    hand_over_from(p, account, &handoff, (who, "typed by the engineer"), now).await?;
    Ok(StepOutput::from(&rotation_of(p, account).await?))
}

/// A code stored already (its answer to the waiting task failed) is the one
/// answered: a different one typed now is refused, not silently dropped.
async fn refuse_a_second_code<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    code: &SecretValue,
) -> LifecycleResult<()> {
    let account = &rotation.account_id;
    // As `hand_over_from` reuses it: only a stored code not yet answered.
    if rotation.phase != Phase::OtpReceived || rotation.handed_over.is_none() {
        return Ok(());
    }
    match handed_over_secret(p, rotation).await? {
        Some(stored) if stored.expose() != code.expose() => refused(format!(
            "account {account}'s take-over holds another code already (typed, or from AWS's mail), which the workflow was not told of: check the code in the original mail; typing the stored one again tells the workflow"
        )),
        _ => Ok(()),
    }
}

/// The shape of the Account API's `Otp` (`[a-zA-Z0-9]{6}`).
fn is_root_email_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// [`hand_over`], with who brought the secret and how, for the audit.
async fn hand_over_from<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    handoff: &Handoff,
    brought: (&str, &str),
    now: u64,
) -> LifecycleResult<Handover> {
    let mut rotation = rotation_of(p, account).await?;
    if handoff.kind == Kind::RootEmailOtp && rotation.hears_a_later_code(now) {
        return crate::code_mail::later_code(p, rotation, handoff, now).await;
    }
    check_handoff(account, &rotation, handoff, now)?;
    let handover = match (&rotation.handed_over, rotation.phase) {
        // An earlier delivery stored the code, then could not answer the task:
        // answer it now with the same reference.
        (Some(reference), Phase::OtpReceived) => Handover::Kept(reference.clone()),
        (Some(reference), _) if is_older_reset_link(handoff, &rotation) => {
            return keep_later_link(p, &rotation, handoff, reference, now).await;
        }
        _ => {
            Handover::Stored(store_handoff(p, account, &mut rotation, handoff, brought, now).await?)
        }
    };
    let reference = handover.reference();
    // The rotation keeps waiting (and its token) until the task is answered, so
    // a redelivered mail can finish a handover whose answer failed.
    answer_code_task(p, account, &mut rotation, handoff.kind, reference).await?;
    // A reset link while an engineer works is kept for `creds get`, and the
    // rotation goes on waiting for reset links: AWS's link is time-sensitive,
    // and one the engineer requests again replaces it. The engineer's task
    // token stays for `rotation complete`.
    if handoff.kind != Kind::PasswordReset {
        rotation.waiting_for = None;
    }
    match save_handover(p, &mut rotation, now).await {
        // The answered task's next step ran at once and wrote the record
        // first, ending the wait itself: the handover is done.
        Err(e) if e.is_conflict() && !still_waits(p, account, handoff.kind, now).await? => {
            Ok(handover)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(handover),
    }
}

/// Whether `account`'s rotation (read again) still waits for a `kind` mail.
async fn still_waits<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    kind: Kind,
    now: u64,
) -> LifecycleResult<bool> {
    Ok(rotation_of(p, account).await?.is_waiting_for(kind, now))
}

/// Whether this is a reset link whose mail reached our servers before the
/// one of the link the rotation holds (by their receiving stamps; unknown:
/// no). A reset mail whose ingest failed comes back minutes later, after
/// the engineer has asked AWS again, and AWS's newer link is the one that
/// works.
fn is_older_reset_link(handoff: &Handoff, rotation: &Rotation) -> bool {
    handoff.kind == Kind::PasswordReset
        && matches!(
            (handoff.delivered_at, rotation.reset_link_delivered_at),
            (Some(this), Some(held)) if this < held
        )
}

/// A reset link older than the one held is not stored: the handover is done
/// (no alert is made of the mail) and the audit says so.
async fn keep_later_link<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    handoff: &Handoff,
    reference: &str,
    now: u64,
) -> LifecycleResult<Handover> {
    let mail = handoff.message_id.as_deref().unwrap_or("(no Message-ID)");
    let detail = || {
        format!(
            "a reset link delivered earlier than the one in the vault ({reference}) arrived late (mail {mail}); the later one is kept"
        )
    };
    let this = (handoff.message_id.as_deref(), handoff.delivered_at);
    record_once_for_mail(p, rotation, OLDER_NOT_KEPT, this, detail, now).await?;
    Ok(Handover::Kept(reference.to_string()))
}

/// Only a rotation waiting for this kind of mail takes it, and only when it
/// was delivered to the rotation's own address.
fn check_handoff(
    account: &AccountId,
    rotation: &Rotation,
    handoff: &Handoff,
    now: u64,
) -> LifecycleResult<()> {
    let kind = handoff.kind;
    if !rotation.is_waiting_for(kind, now) {
        return refused(format!(
            "no rotation of account {account} waits for a {kind} mail"
        ));
    }
    if handoff.recipient != rotation.target_email {
        return refused(format!(
            "the {kind} mail was delivered to {}, not to the rotation's address {}",
            handoff.recipient, rotation.target_email
        ));
    }
    Ok(())
}

/// Stores the handed-over secret in the vault and records the reference (the
/// code's arrival moves the take-over on), then audits it; returns the reference.
async fn store_handoff<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    rotation: &mut Rotation,
    handoff: &Handoff,
    (actor, how): (&str, &str),
    now: u64,
) -> LifecycleResult<String> {
    let kind = handoff.kind;
    let reference = p
        .vault()
        .put(
            account,
            VaultItem::Handover,
            Stage::Current,
            &handoff.secret,
        )
        .await?;
    rotation.handed_over = Some(reference.clone());
    if kind == Kind::PasswordReset {
        rotation.reset_link_delivered_at = handoff.delivered_at;
    }
    if kind == Kind::RootEmailOtp {
        rotation.phase = Phase::OtpReceived;
        rotation.code_delivered_at = handoff.delivered_at;
        rotation.code_message_id = handoff.message_id.clone();
    }
    save_handover(p, rotation, now).await?;
    let mail = (handoff.message_id.as_deref())
        .map(|id| format!(", from mail {id}"))
        .unwrap_or_default();
    let detail = format!("{kind} {how} and stored in the vault ({reference}){mail}");
    record(
        p,
        account,
        &rotation.customer,
        now,
        (actor, HANDED_OVER, None, None, detail),
    )
    .await?;
    Ok(reference)
}

/// Answers the take-over task waiting for the code with the vault reference
/// (never the code), then drops its token. A console take-over's task waits
/// on until the change is confirmed.
async fn answer_code_task<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    rotation: &mut Rotation,
    kind: Kind,
    reference: &str,
) -> LifecycleResult<()> {
    if kind == Kind::RootEmailOtp
        && rotation.mode != Mode::Console
        && let Some(token) = &rotation.task_token
    {
        p.tokens()
            .succeed(
                token,
                &json!({"account_id": account, "handed_over": reference}),
            )
            .await?;
        rotation.task_token = None;
        rotation.expires_at = None;
    }
    Ok(())
}

/// The secret the record says this take-over was handed (the vault version
/// it names), if any.
pub(crate) async fn handed_over_secret<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
) -> LifecycleResult<Option<SecretValue>> {
    match &rotation.handed_over {
        Some(reference) => {
            let account = &rotation.account_id;
            p.vault()
                .get_version(account, VaultItem::Handover, reference)
                .await
        }
        None => Ok(None),
    }
}

/// Saves the next version of `rotation` as a handover writes it.
pub(crate) async fn save_handover<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    now: u64,
) -> LifecycleResult<()> {
    let expected = rotation.version;
    rotation.version += 1;
    rotation.updated_at = now;
    p.rotations().save_handover(rotation, expected).await
}

/// The longest failure reason a record keeps (an error text can be long).
const MAX_FAILURE_CHARS: usize = 500;

/// A take-over that cannot go on (a step failed for good, or a wait timed
/// out; Step Functions' `Catch` and the local workflow call it): the record
/// says why and where, the task token is dropped, the account's ticket says
/// what to do, and `rootmail rotation start` may begin again. Repeating it
/// changes nothing; an account that is not in a take-over is refused.
pub async fn record_failure<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    (reason, execution): (&str, Option<&str>),
    now: u64,
) -> LifecycleResult<StepOutput> {
    let mut rotation = rotation_of(p, account).await?;
    if let (Some(owner), Some(execution)) = (rotation.execution.as_deref(), execution)
        && owner != execution
    {
        return refused(format!(
            "account {account}'s take-over is run by another execution ({owner}): this one \
             ({execution}) fails alone"
        ));
    }
    if rotation.phase == Phase::Failed {
        return Ok(StepOutput::from(&rotation));
    }
    if !rotation.phase.in_progress() || rotation.phase == Phase::AwaitingCustomerOtp {
        return refused(format!(
            "account {account} is not in a take-over ({}): nothing failed",
            rotation.phase.as_str()
        ));
    }
    let reason: String = reason.trim().chars().take(MAX_FAILURE_CHARS).collect();
    let failed_in = rotation.phase;
    rotation.failure = Some(Failure {
        phase: failed_in,
        reason: reason.clone(),
    });
    rotation.phase = Phase::Failed;
    rotation.end_wait();
    let detail = failure_detail(&rotation, &reason);
    let failed = advance(
        p,
        &mut rotation,
        now,
        (SYSTEM_ACTOR, "take-over failed", detail),
    )
    .await?;
    // AWS never took the new address: mail to it is nobody's. Only once the
    // failure is written: a step that moved the record on meanwhile (the
    // engineer read the code) refuses the write, and the address stays.
    if failed_in.before_email_change(rotation.mode) {
        p.registry().forget(&rotation.target_email).await?;
    }
    Ok(failed)
}

/// What the failure's audit row and ticket say: where it failed, whether
/// the root email may have changed, what is still readable, how to start again.
fn failure_detail(rotation: &Rotation, reason: &str) -> String {
    let account = &rotation.account_id;
    let failed_in = rotation
        .failure
        .as_ref()
        .map_or(rotation.phase, |f| f.phase);
    let email = if failed_in.before_email_change(rotation.mode) {
        "The root email did not change."
    } else {
        "AWS may already have changed the root email: check it (`rootmail rotation status`) before starting again."
    };
    // The engineer may have set the pending password and MFA in the console
    // already: they are then the only way in, and a console take-over
    // starts again by signing in.
    let credentials = match (rotation.mode, credentials_held(rotation)) {
        (Mode::Rootless, _) | (_, None) => "",
        (_, Some(_)) => {
            " Its root credentials stay readable with `rootmail creds get` (AWS holds pending \
             ones if they were set in the console), as they do for a take-over started again \
             until it vaults its own."
        }
    };
    format!(
        "take-over failed while {}: {reason}. {email}{credentials} Start again with `rootmail rotation start --account {account} --customer ... --mode ...`",
        failed_in.as_str()
    )
}

/// Take-over, step 3: gives AWS the code from the vault.
pub async fn accept_email_update<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let moves = (Phase::OtpReceived, Phase::EmailAccepted);
    let rotation = match step_from(
        p,
        account,
        moves,
        ("accept the root email change", "root email change accepted"),
        now,
    )
    .await?
    {
        StepStart::Run(rotation) => *rotation,
        StepStart::Done(output) => return Ok(output),
    };
    // The version the record names: a handover running beside this one may
    // have put another in the vault's stage since.
    let Some(code) = handed_over_secret(p, &rotation).await? else {
        return refused(format!(
            "the code for account {account} is not in the vault"
        ));
    };
    // The take-over's change was asked for after it began.
    let change = (&rotation.target_email, Some(rotation.started_at));
    accept_code(p, account, change, &code).await?;
    // The code is spent and its task answered: nothing waits any more. The
    // handover that answered may not have saved that yet (see `hand_over`).
    let accepted = |r: &mut Rotation| {
        r.phase = Phase::EmailAccepted;
        r.end_wait();
    };
    let detail = format!(
        "AWS accepted the code; root email is changing to {}",
        rotation.target_email
    );
    let entry = (SYSTEM_ACTOR, "root email change accepted", detail.as_str());
    let rotation = save_after_effect(p, rotation, accepted, now, entry).await?;
    Ok(StepOutput::from(&rotation))
}

/// Take-over, step 4 (polled): the root email is ours. The directory forgets the
/// old address so its later mail is not taken for this account's.
pub async fn confirm_email_update<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let moves = (Phase::EmailAccepted, Phase::EmailConfirmed);
    let mut rotation = match step_from(
        p,
        account,
        moves,
        ("confirm the root email change", "root email changed"),
        now,
    )
    .await?
    {
        StepStart::Run(rotation) => *rotation,
        StepStart::Done(output) => return Ok(output),
    };
    let current = if rotation.mode == Mode::Console {
        // No API reads a console account's root email: the evidence does.
        let Some(evidence) = rotation.email_evidence.clone() else {
            return Err(LifecycleError::NotYet(format!(
                "nothing shows account {account}'s root email is {} yet: AWS's mail to it, or `rootmail rotation attest`",
                rotation.target_email
            )));
        };
        tracing::info!(account = %account, %evidence, "console email change confirmed");
        rotation.target_email.clone()
    } else {
        p.api().primary_email(account).await?
    };
    if current != rotation.target_email {
        return Err(not_confirmed_yet(p, &rotation).await);
    }
    if let Some(previous) = rotation.previous_email.clone().filter(|e| *e != current) {
        p.registry().forget(&previous).await?;
    }
    rotation.phase = Phase::EmailConfirmed;
    // A console take-over's task was answered by the evidence.
    rotation.end_wait();
    let detail = format!("root email is now {current}");
    advance(
        p,
        &mut rotation,
        now,
        (SYSTEM_ACTOR, "root email changed", detail),
    )
    .await
}

/// Why the root email is not the rotation's yet: AWS failed the change (it
/// says so at once: the step fails instead of polling for hours), or it is
/// still on its way.
async fn not_confirmed_yet<P: LifecyclePorts>(p: &P, rotation: &Rotation) -> LifecycleError {
    let account = &rotation.account_id;
    let status = match rotation.mode {
        Mode::Console => Ok(None),
        _ => p.api().email_update_status(account).await,
    };
    match status {
        Err(e) => e,
        // A failure stamped before the take-over began is an older change's.
        Ok(Some(s))
            if s.state == EmailUpdateState::Failed
                && stamped_since(&s, Some(rotation.started_at)) =>
        {
            LifecycleError::Refused(format!(
                "AWS reports that the root email change of account {account} failed (GetPrimaryEmailUpdateStatus: FAILED)"
            ))
        }
        Ok(_) => LifecycleError::NotYet(format!(
            "account {account}'s root email is not {} yet",
            rotation.target_email
        )),
    }
}

/// Vaulted take-over, step 5 (a `waitForTaskToken` task): a new password,
/// pending in the vault, and a ticket telling an engineer what to do in the
/// console. AWS generates the MFA seed there; the engineer enrolls it with
/// `rootmail mfa enroll`. `rootmail rotation complete` resumes the workflow.
pub async fn prepare_vault<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    task_token: &str,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let mut rotation = rotation_of(p, account).await?;
    if rotation.mode == Mode::Console {
        return crate::console::prepare_vault(p, account, Some(task_token), now).await;
    }
    expect_phase(
        &rotation,
        &[Phase::EmailConfirmed, Phase::AwaitingEngineer],
        "prepare the vault",
    )?;
    if rotation.mode != Mode::Vaulted {
        return refused(format!(
            "account {account} is taken over rootless: nothing to vault"
        ));
    }
    if rotation.phase == Phase::AwaitingEngineer {
        // Run again once it saved: the credentials are cleared and the
        // password is pending (an engineer may be using it already).
        return renew_task_token(p, &mut rotation, task_token, now).await;
    }
    // Whatever the previous owner left (a password, access keys, signing
    // certificates, MFA devices) goes first; the engineer then sets our
    // password through "Forgot password" (the link comes to our address).
    let cleared = p.root().delete_all(account).await?;
    p.root().allow_password_recovery(account).await?;
    let password = new_root_password().map_err(crate::console::random_failed)?;
    let password_ref = p
        .vault()
        .put(account, VaultItem::Password, Stage::Pending, &password)
        .await?;
    rotation.phase = Phase::AwaitingEngineer;
    rotation.task_token = Some(task_token.to_string());
    rotation.waiting_for = Some(Kind::PasswordReset);
    rotation.expires_at = Some(now + ENGINEER_WAIT_SECS);
    rotation.engineer_since = Some(now);
    let detail = format!(
        "the previous owner's root credentials are deleted ({}). \
         A new password is pending ({password_ref}). An engineer now: \
         requests a root password reset for {email} in the console (rootmail keeps the link AWS mails), \
         reads the link and pending password with `rootmail creds get --account {account} --reason ... --ticket ...`, \
         sets the password, chooses Security credentials > Assign MFA device > Authenticator app > Show secret key, \
         pipes the key into `rootmail mfa enroll --account {account}`, types the two codes it prints, and runs \
         `rootmail rotation complete --account {account}`",
        cleared.describe(),
        email = rotation.target_email
    );
    advance(
        p,
        &mut rotation,
        now,
        (SYSTEM_ACTOR, "engineer task opened", detail),
    )
    .await
}

/// Vaulted take-over: the engineer says the console steps are done. Verified
/// through the root audit (password set, MFA on) before the pending secrets
/// become current and the workflow resumes.
pub async fn complete_engineer_task<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    who: &str,
    attestation: Option<&str>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let rotation = rotation_in(
        p,
        account,
        &[Phase::AwaitingEngineer],
        "complete the engineer's task",
    )
    .await?;
    // Its workflow stopped waiting then: the vault is not promoted, and no
    // answer (AWS says "already closed" for a task that timed out too) is
    // taken for success.
    if let Some(at) = rotation.expires_at.filter(|at| now >= *at) {
        let why = format!(
            "account {account}'s engineer task timed out ({ENGINEER_WAIT_SECS} s after it began, at {at})"
        );
        return fail_expired(p, account, why, now).await;
    }
    if rotation.mfa_enrolled_at.is_none() {
        return refused(format!(
            "account {account}'s MFA seed is not enrolled: assign the device in the console and pipe its secret key into `rootmail mfa enroll --account {account}` first"
        ));
    }
    let (action, verified) = engineer_work_verified(p, &rotation, who, attestation).await?;
    p.vault().promote(account, VaultItem::Password).await?;
    p.vault().promote(account, VaultItem::TotpSeed).await?;
    let detail = format!("{verified}; vault entries current");
    let secured = |r: &mut Rotation| {
        r.phase = Phase::Secured;
        r.waiting_for = None;
        r.expires_at = None;
    };
    let mut rotation = save_after_effect(p, rotation, secured, now, (who, action, &detail)).await?;
    answer_saved_task(p, &mut rotation, now).await?;
    Ok(StepOutput::from(&rotation))
}

/// What shows the engineer's console steps done, as the audit row's action
/// and detail: the root audit (see [`engineer_task_problem`]), or for a
/// console account, which no AssumeRoot reaches, the engineer's own
/// statement.
async fn engineer_work_verified<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    who: &str,
    attestation: Option<&str>,
) -> LifecycleResult<(&'static str, String)> {
    let account = &rotation.account_id;
    Ok(match (rotation.mode, attestation.map(str::trim)) {
        // No AssumeRoot reaches a console account: the engineer's word,
        // audited as such, and IAM's account summary where a role reads it.
        (Mode::Console, Some(statement)) if !statement.is_empty() => {
            console_work_verified(p, account, who, statement).await?
        }
        (Mode::Console, _) => {
            return refused(format!(
                "account {account} is held through the console, where rootmail cannot check the root user: \
                 say what you did with --attest \"...\" (password set, access keys and certificates deleted, our MFA device the only one)"
            ));
        }
        _ => {
            let report = p.root().audit(account).await?;
            if let Some(problem) = engineer_task_problem(&report, rotation.engineer_since) {
                return refused(format!(
                    "account {account}'s root user is not as the take-over leaves it: {problem} ({})",
                    report.describe()
                ));
            }
            (
                "root credentials vaulted",
                format!(
                    "root user checked: one MFA device, enabled since the task began, no access keys or certificates ({})",
                    report.describe()
                ),
            )
        }
    })
}

/// A console account's engineer's statement, checked against IAM's account
/// summary where the provider's role in the account reads it: a root access
/// key left behind, or no MFA enabled, refuses the completion however the
/// statement reads.
async fn console_work_verified<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    who: &str,
    statement: &str,
) -> LifecycleResult<(&'static str, String)> {
    let attested = format!("{who} attests the console steps are done: {statement}");
    match p.root().summary(account).await? {
        None => Ok(("root credentials vaulted (attested)", attested)),
        Some(summary) => match summary.problem() {
            Some(problem) => refused(format!(
                "account {account}'s root user is not as the take-over leaves it: {problem} \
                 (IAM's account summary: {}); finish in the console, then complete again",
                summary.describe()
            )),
            None => Ok((
                "root credentials vaulted (attested, checked)",
                format!("{attested}; IAM's account summary: {}", summary.describe()),
            )),
        },
    }
}

/// A person's step on a wait that has ended: the take-over is recorded as
/// failed (as the workflow's RecordFailure does, which repeating changes
/// nothing; a local run has no workflow to do it), so `rotation start` may
/// begin again, and the step is refused.
pub(crate) async fn fail_expired<P: LifecyclePorts, T>(
    p: &P,
    account: &AccountId,
    why: String,
    now: u64,
) -> LifecycleResult<T> {
    record_failure(p, account, (&why, None), now).await?;
    refused(format!("{why}: the take-over failed; start it again"))
}

/// How many times a step whose effect cannot be made twice saves again.
const SAVE_TRIES: usize = 3;

/// Saves `rotation` as `change` makes it, after an effect that cannot be
/// made twice (a vault promotion: a re-run finds nothing pending; a code
/// AWS took: a re-run would send it spent). A save that loses the race to
/// a handover field alone (AWS's "MFA activated" mail, a handover's last
/// save) reads the record again and saves once more; one that finds the
/// step's own result (a second run of it saved first) is done. Any other
/// change meanwhile (the MFA seed enrolled again) stays a conflict.
async fn save_after_effect<P: LifecyclePorts>(
    p: &P,
    rotation: Rotation,
    change: impl Fn(&mut Rotation),
    now: u64,
    (who, action, detail): (&str, &str, &str),
) -> LifecycleResult<Rotation> {
    let account = rotation.account_id.clone();
    let read = rotation.clone();
    let mut wanted = rotation;
    for _ in 0..SAVE_TRIES {
        change(&mut wanted);
        let target = wanted.phase;
        match advance(p, &mut wanted, now, (who, action, detail.to_string())).await {
            Err(e) if e.is_conflict() => {
                let stored = rotation_of(p, &account).await?;
                if stored.phase == target {
                    return Ok(stored);
                }
                if !differs_only_in_handover_fields(&read, &stored) {
                    return Err(e);
                }
                wanted = stored;
            }
            saved => return saved.map(|_| wanted),
        }
    }
    Err(LifecycleError::changed_meanwhile(&account))
}

/// Whether two versions of a record differ only in what a handover writes
/// ([`crate::HANDOVER_FIELDS`], named as the record is serialized).
fn differs_only_in_handover_fields(a: &Rotation, b: &Rotation) -> bool {
    let outside_handover = |r: &Rotation| {
        let mut fields = serde_json::to_value(r).ok();
        if let Some(serde_json::Value::Object(map)) = &mut fields {
            for name in crate::HANDOVER_FIELDS {
                map.remove(*name);
            }
        }
        fields
    };
    match (outside_handover(a), outside_handover(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Answers the workflow task the saved `rotation` still holds, if any, then
/// drops its token. The record is saved first, in its new phase, because
/// the next step reads it the moment the task is answered; and with the
/// token, so that an answer that failed (Step Functions throttled or down)
/// can be given again (`rotation complete`, `rotation attest` run again)
/// instead of the workflow waiting out its timeout. The wait ends with the
/// answer. The next step drops the token too: it may save before this does.
pub(crate) async fn answer_saved_task<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    now: u64,
) -> LifecycleResult<()> {
    let Some(token) = rotation.task_token.clone() else {
        return Ok(());
    };
    p.tokens()
        .succeed(&token, &json!(StepOutput::from(&*rotation)))
        .await?;
    rotation.end_wait();
    match save_handover(p, rotation, now).await {
        // The next step saved first; it dropped the token itself.
        Err(e) if e.is_conflict() => Ok(()),
        saved => saved,
    }
}

/// `rotation complete` again on a take-over whose vault is current but
/// whose waiting workflow was never told: tells it now.
pub async fn resume_secured<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let mut rotation = rotation_in(p, account, &[Phase::Secured], "resume the take-over").await?;
    answer_saved_task(p, &mut rotation, now).await?;
    Ok(StepOutput::from(&rotation))
}

/// What keeps a vaulted take-over from being done: the root user must have a
/// login profile, no access keys, no signing certificates, and exactly one
/// MFA device, enabled after the engineer's task began (so not one someone
/// else registered before). The device is the proof of the console steps:
/// assigning it takes a sign-in as the root user, with the password the
/// engineer set. The password itself cannot be checked: AWS shows only that
/// a login profile exists, and the task made one without a password (for
/// "Forgot password"), so a missing profile is all this catches. That the
/// password set is the vault's pending one rests on the engineer.
fn engineer_task_problem(
    report: &crate::model::RootCredentialReport,
    since: Option<u64>,
) -> Option<String> {
    if !report.password {
        return Some("it has no password".into());
    }
    if report.access_keys > 0 || report.signing_certificates > 0 {
        return Some("it has access keys or signing certificates".into());
    }
    if report.mfa_devices != 1 {
        return Some(format!(
            "it has {} MFA devices, not exactly one",
            report.mfa_devices
        ));
    }
    let since = since.unwrap_or(0);
    match report.mfa_enabled_at.first() {
        Some(at) if *at >= since => None,
        Some(_) => Some("its MFA device was enabled before the take-over's task began".into()),
        None => Some("when its MFA device was enabled is unknown".into()),
    }
}

/// Rootless take-over, step 5: deletes every root credential, then audits that
/// none is left.
pub async fn delete_root_credentials<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let moves = (Phase::EmailConfirmed, Phase::Secured);
    let mut rotation = match step_from(
        p,
        account,
        moves,
        ("delete the root credentials", "root credentials deleted"),
        now,
    )
    .await?
    {
        StepStart::Run(rotation) => *rotation,
        StepStart::Done(output) => return Ok(output),
    };
    if rotation.mode != Mode::Rootless {
        return refused(format!(
            "account {account} is taken over vaulted: its root credentials stay"
        ));
    }
    // From here a failure may leave some deleted: a take-over started over
    // this one is no longer served the earlier take-over's credentials.
    if rotation.earlier_credentials.take().is_some() {
        save_marked(p, &mut rotation).await?;
    }
    let deleted = p.root().delete_all(account).await?;
    let left = p.root().audit(account).await?;
    if !left.is_empty() {
        return Err(LifecycleError::NotYet(format!(
            "account {account}'s root user still has {}",
            left.describe()
        )));
    }
    rotation.phase = Phase::Secured;
    let detail = format!("deleted {}; the audit finds none left", deleted.describe());
    advance(
        p,
        &mut rotation,
        now,
        (SYSTEM_ACTOR, "root credentials deleted", detail),
    )
    .await
}

/// Take-over, last step: the account is `active`; its mail now becomes tickets.
pub async fn activate<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let moves = (Phase::Secured, Phase::Active);
    let mut rotation =
        match step_from(p, account, moves, ("activate", "take-over finished"), now).await? {
            StepStart::Run(rotation) => *rotation,
            StepStart::Done(output) => return Ok(output),
        };
    set_status(p, &rotation, AccountStatus::Active).await?;
    rotation.phase = Phase::Active;
    // The engineer's task was answered (that is how this step began).
    rotation.task_token = None;
    let detail = format!(
        "account is active; mail to {} becomes tickets",
        rotation.target_email
    );
    advance(
        p,
        &mut rotation,
        now,
        (SYSTEM_ACTOR, "take-over finished", detail),
    )
    .await
}

pub(crate) async fn set_status<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    status: AccountStatus,
) -> LifecycleResult<()> {
    let email = match rotation.phase {
        // From a release on, the directory knows the account by our old address.
        Phase::AwaitingCustomerOtp | Phase::Released => rotation
            .previous_email
            .clone()
            .unwrap_or(rotation.target_email.clone()),
        _ => rotation.target_email.clone(),
    };
    // The payer an import recorded stays.
    let payer = p.registry().by_email(&email).await?.and_then(|a| a.payer);
    p.registry()
        .save(&Account {
            root_email: email,
            account_id: rotation.account_id.clone(),
            customer: rotation.customer.clone(),
            status,
            payer,
        })
        .await
}

/// Break-glass access. The audit record is written first: if it cannot be, no
/// secret is read. Then the password and the current TOTP code, a note on the
/// account's ticket and an email saying that access happened.
pub async fn access<P: LifecyclePorts>(
    p: &P,
    request: &AccessRequest,
    now: u64,
) -> LifecycleResult<AccessGrant> {
    let account = &request.account_id;
    require_access_fields(request, "break-glass access")?;
    let rotation = rotation_of(p, account).await?;
    let pending = usable_credentials_pending(account, &rotation)?;
    let state = match rotation.phase {
        Phase::Closed => {
            "; the account is closed (AWS lets its root user sign in for 90 days after closure, to reopen it)"
        }
        Phase::Failed => {
            "; its take-over failed (AWS holds them only if they were set in the console before it did)"
        }
        _ => "",
    };
    let detail = format!(
        "break-glass access to the root user by {} ({}credentials){state}",
        request.who,
        if pending { "pending " } else { "" }
    );
    audit_secret_read(p, request, "break-glass access", detail.clone(), now).await?;
    let secrets = root_secrets(p, &rotation, pending, now).await?;
    let note = format!(
        "{detail}; reason: {}; ticket: {}",
        request.reason, request.ticket
    );
    // The audit record is what guards the secret; the notices are owed too, and
    // the person is told when one could not be sent.
    let unsent_notices = send_access_notices(p, account, &rotation.customer, &note).await;
    Ok(AccessGrant {
        root_email: current_root_email(&rotation),
        password: secrets.password,
        totp_code: secrets.totp_code,
        reset_link: secrets.reset_link,
        pending,
        unsent_notices,
    })
}

/// The root email the account has now: AWS moves it only when it accepts
/// the new address's code. During a release the rotation's target is
/// already the customer's address, so an engineer signing in (as a console
/// release begins) needs ours, the previous one; during a take-over started
/// over a failed one, the address that one gave it until AWS confirms the new.
fn current_root_email(rotation: &Rotation) -> EmailAddress {
    let phase = credentials_phase(rotation).unwrap_or(rotation.phase);
    let moving = matches!(
        phase,
        Phase::AwaitingCustomerOtp
            | Phase::Registered
            | Phase::AwaitingOtp
            | Phase::OtpReceived
            | Phase::EmailAccepted
    );
    match (moving, &rotation.previous_email) {
        (true, Some(before)) => before.clone(),
        _ => rotation.target_email.clone(),
    }
}

/// Whether break-glass access reads the pending credentials of an unfinished
/// take-over (`true`) or the current ones; refused when the account holds
/// none a person can use.
fn usable_credentials_pending(account: &AccountId, rotation: &Rotation) -> LifecycleResult<bool> {
    match (rotation.mode, credentials_held(rotation)) {
        (Mode::Rootless, _) => refused(format!(
            "account {account} is rootless: it has no root password; use centralized root access (sts:AssumeRoot)"
        )),
        (_, Some(pending)) => Ok(pending),
        (_, None) => refused(format!(
            "account {account} holds no usable root credentials ({})",
            rotation.phase.as_str()
        )),
    }
}

/// The root credentials in the vault that AWS may hold for the account:
/// pending ones (`true`) or current ones (`false`), or none a person can use.
/// A failed or closed account has those of the phase it failed or closed in:
/// the console signs in with them (a payer's new take-over starts there; a
/// closed account is reopened there). A take-over started over a failed one
/// has that one's until it vaults its own.
pub(crate) fn credentials_held(rotation: &Rotation) -> Option<bool> {
    if rotation.credentials_deleted_at.is_some() {
        return None;
    }
    // A rootless take-over vaults none: from Secured on it has deleted the
    // root user's; before, those of a take-over it started over are there
    // until its deletion starts (which drops them from the record).
    let vaulted = rotation.mode != Mode::Rootless;
    match credentials_phase(rotation)? {
        Phase::AwaitingEngineer => Some(true),
        // A release in progress: the account is still ours, and a console
        // release begins with the engineer signing in.
        Phase::Secured | Phase::Active | Phase::AwaitingCustomerOtp => vaulted.then_some(false),
        phase if phase.before_vault() => rotation.earlier_credentials,
        _ => None,
    }
}

/// The phase whose credentials the record has: for a failed or closed
/// account, the phase it failed or closed in.
fn credentials_phase(rotation: &Rotation) -> Option<Phase> {
    let mut phase = rotation.phase;
    if phase == Phase::Closed {
        phase = rotation.closed_from?;
    }
    if phase == Phase::Failed {
        phase = rotation.failure.as_ref()?.phase;
    }
    Some(phase)
}

/// The audit record of a person reading a secret (who, why, which ticket):
/// written before the secret is read, so no read goes unrecorded.
pub(crate) async fn audit_secret_read<P: LifecyclePorts>(
    p: &P,
    request: &AccessRequest,
    action: &str,
    detail: String,
    now: u64,
) -> LifecycleResult<()> {
    p.audit()
        .append(&AuditEntry {
            account_id: request.account_id.clone(),
            at: now * 1000,
            actor: request.who.clone(),
            action: action.into(),
            reason: Some(request.reason.clone()),
            ticket: Some(request.ticket.clone()),
            detail,
        })
        .await
}

/// What break-glass access reads from the vault.
struct RootSecrets {
    password: SecretValue,
    totp_code: Option<SecretValue>,
    reset_link: Option<SecretValue>,
}

/// Reads the root password and the current TOTP code (of the pending or the
/// current credentials) and, for pending ones, a reset link handed over by mail.
async fn root_secrets<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    pending: bool,
    now: u64,
) -> LifecycleResult<RootSecrets> {
    let account = &rotation.account_id;
    // Pending ones a promotion made current (its save lost) are current.
    let stages: &[Stage] = match pending {
        true => &[Stage::Pending, Stage::Current],
        false => &[Stage::Current],
    };
    let Some(password) = first_held(p, account, VaultItem::Password, stages).await? else {
        return refused(format!("the vault holds no password for account {account}"));
    };
    // A seed a release scheduled for deletion is none.
    let seed = match seed_usable(rotation) {
        false => None,
        true => match first_held(p, account, VaultItem::TotpSeed, stages).await {
            Err(LifecycleError::Refused(_)) => None,
            read => read?,
        },
    };
    let totp_code = seed.and_then(|seed| totp_code(&seed, now));
    // The handed-over item holds the take-over's email code until a reset
    // mail replaces it: only a link is a reset link to show. A take-over
    // handed nothing (a console one whose code mail came unread) leaves an
    // earlier take-over's item there, which is not shown.
    let reset_link = match pending {
        true => handed_over_secret(p, rotation)
            .await?
            .filter(|handed| handed.expose().starts_with("https://")),
        false => None,
    };
    Ok(RootSecrets {
        password,
        totp_code,
        reset_link,
    })
}

/// Whether the vault's MFA seed for the record's credentials may be of a
/// device AWS has: a member's take-over deleted every MFA device as it
/// opened the engineer's task, so a seed it did not enroll is of a device
/// AWS no longer has; a take-over started over one knows that of it.
fn seed_usable(rotation: &Rotation) -> bool {
    match credentials_phase(rotation) {
        Some(Phase::AwaitingEngineer) => {
            rotation.mode != Mode::Vaulted || rotation.mfa_enrolled_at.is_some()
        }
        Some(phase) if phase.before_vault() => !rotation.earlier_seed_gone,
        _ => true,
    }
}

/// The first of `stages` the vault holds `item` in.
async fn first_held<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    item: VaultItem,
    stages: &[Stage],
) -> LifecycleResult<Option<SecretValue>> {
    for stage in stages {
        if let Some(value) = p.vault().get(account, item, *stage).await? {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// Notes the access on the account's ticket and mails a notice of it; returns
/// the notices that could not be sent (they are logged too).
async fn send_access_notices<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    customer: &str,
    note: &str,
) -> Vec<String> {
    let mut unsent_notices = Vec::new();
    if let Err(e) = p.notices().ticket_note(account, customer, note).await {
        tracing::warn!(error = %e, account = %account, "break-glass ticket note not written");
        unsent_notices.push(format!("the note on the account's ticket: {e}"));
    }
    if let Err(e) = p
        .notices()
        .email(
            &format!("rootmail: break-glass access to AWS account {account}"),
            note,
        )
        .await
    {
        tracing::warn!(error = %e, account = %account, "break-glass email not sent");
        unsent_notices.push(format!("the notification email: {e}"));
    }
    unsent_notices
}

/// Who, why and which ticket: every read of a secret needs all three.
pub(crate) fn require_access_fields(request: &AccessRequest, doing: &str) -> LifecycleResult<()> {
    for (what, value, most) in [
        ("a reason", &request.reason, MAX_REASON_CHARS),
        ("who is asking", &request.who, MAX_REFERENCE_CHARS),
        ("a ticket reference", &request.ticket, MAX_REFERENCE_CHARS),
    ] {
        if value.trim().is_empty() {
            return refused(format!("{doing} needs {what}"));
        }
        if value.chars().nth(most).is_some() {
            return refused(format!("{doing} takes {what} of at most {most} characters"));
        }
    }
    Ok(())
}

/// The longest reason an access takes, and the longest name or ticket
/// reference. The audit row, the ticket note (an SQS message of at most
/// 256 KiB) and `rotation status` (every audit row, in one answer of at most
/// 6 MB) carry them: an unbounded one could drop the note that tells others
/// of the access, or make the account's status unreadable for good.
pub const MAX_REASON_CHARS: usize = 2000;
pub const MAX_REFERENCE_CHARS: usize = 200;

/// A person's words (a statement, an attestation, a reason) are at most
/// [`MAX_REASON_CHARS`] characters; words not given pass.
pub(crate) fn words_within_limit<'a>(
    words: impl IntoIterator<Item = Option<&'a str>>,
) -> LifecycleResult<()> {
    let too_long = |text: &str| text.chars().nth(MAX_REASON_CHARS).is_some();
    if words.into_iter().flatten().any(too_long) {
        return refused(format!(
            "a statement or reason of at most {MAX_REASON_CHARS} characters, please"
        ));
    }
    Ok(())
}

/// Release, step 1: moves the root email to the customer's address. AWS mails
/// the code to the customer, who gives it to the engineer. A console account
/// changes in the console: the ticket says how, and the engineer attests it.
/// A release waiting for the customer's code may start again (the code
/// lasts 24 hours; the address may have been mistyped): AWS sends a new code
/// to the address given now, and the address the account leaves stays ours.
///
/// A release hands the root user to whoever reads that mailbox, so like
/// break-glass access it needs a reason and a ticket, and security
/// (`NoticeTo`) is mailed before anything moves: a notice that cannot be
/// sent stops the release.
pub async fn start_release<P: LifecyclePorts>(
    p: &P,
    request: &AccessRequest,
    customer_email: &EmailAddress,
    now: u64,
) -> LifecycleResult<StepOutput> {
    require_access_fields(request, "a release")?;
    let rotation = releasable(p, &request.account_id).await?;
    // A person's release run again while one starts waits too: it would
    // have AWS mail a second code.
    may_start_release(&rotation, None, now)?;
    release_from(p, rotation, request, customer_email, now).await
}

/// The record of an account a release may start (again) from.
async fn releasable<P: LifecyclePorts>(p: &P, account: &AccountId) -> LifecycleResult<Rotation> {
    let wanted = [Phase::Active, Phase::AwaitingCustomerOtp];
    rotation_in(p, account, &wanted, "release").await
}

/// No closure under way and no other release starting; `own` is the claim
/// that is this request's own (the state machine's retry).
fn may_start_release(rotation: &Rotation, own: Option<&str>, now: u64) -> LifecycleResult<()> {
    crate::closure::no_closure_under_way(rotation, now)?;
    no_other_release_starting(rotation, own, now)
}

/// What a release's claim names: the same request run again is its own.
fn release_claim(request: &AccessRequest, customer_email: &EmailAddress) -> String {
    format!(
        "{} (ticket {}) to {customer_email}",
        request.who, request.ticket
    )
}

/// A release claimed the record and is mailing `NoticeTo` or asking AWS for
/// the email change: another release, or a cancellation, waits (`NotYet`).
/// Both going ahead, AWS would mail two codes, honour the later one, and the
/// record could name the other address. The claim `own` (the state
/// machine's retry of its step after a lost answer) goes on.
fn no_other_release_starting(
    rotation: &Rotation,
    own: Option<&str>,
    now: u64,
) -> LifecycleResult<()> {
    let Some(at) = crate::closure::held(rotation.release_starting_since, now) else {
        return Ok(());
    };
    if own.is_some() && rotation.release_starting_for.as_deref() == own {
        return Ok(());
    }
    let by = rotation
        .release_starting_for
        .as_deref()
        .unwrap_or("another run");
    Err(LifecycleError::NotYet(format!(
        "a release of account {} by {by} has been starting since {}: run it again in a few \
         minutes",
        rotation.account_id,
        rootmail_domain::dates::utc(at)
    )))
}

/// The release's claim over: saved, failed, or refused.
fn end_release_claim(rotation: &mut Rotation) {
    rotation.release_starting_since = None;
    rotation.release_starting_for = None;
}

/// [`start_release`] from the record as read.
async fn release_from<P: LifecyclePorts>(
    p: &P,
    mut rotation: Rotation,
    request: &AccessRequest,
    customer_email: &EmailAddress,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let account = rotation.account_id.clone();
    let again = rotation.phase == Phase::AwaitingCustomerOtp;
    if again {
        no_completion_under_way(&rotation, now)?;
        not_released_already(p, &rotation).await?;
    }
    // The address the root user leaves: ours.
    let ours = if again {
        rotation.previous_email.clone()
    } else {
        Some(rotation.target_email.clone())
    };
    if ours.is_some_and(|ours| ours.domain().eq_ignore_ascii_case(customer_email.domain())) {
        return refused(format!(
            "{customer_email} is in our own root mail domain: a release goes to the customer's address"
        ));
    }
    // Claimed before anything reaches NoticeTo, AWS or the customer: a
    // closure that read the record before fails its own claim, and one that
    // reads it now waits.
    rotation.release_starting_since = Some(now);
    rotation.release_starting_for = Some(release_claim(request, customer_email));
    save_marked(p, &mut rotation).await?;
    let detail = match announced(p, &rotation, (request, customer_email), now).await {
        Ok(detail) => detail,
        Err((error, aws_may_have_acted)) => {
            // Best effort: an unreleased claim lapses by itself. Kept if AWS
            // may have taken the request (its answer lost): the customer may
            // hold a code, and a closure waits the claim out.
            if !aws_may_have_acted {
                let _ = change_record(p, &account, end_release_claim).await;
            }
            return Err(error);
        }
    };
    awaiting_customer_code(&mut rotation, customer_email, again, now);
    let (reason, ticket) = (Some(request.reason.as_str()), Some(request.ticket.as_str()));
    let entry = (
        request.who.as_str(),
        "release started",
        reason,
        ticket,
        detail,
    );
    advance_justified(p, &mut rotation, now, entry).await
}

/// The record once AWS took the release's change (asked for `now`): the
/// claim over, the customer's address the target, our own kept as the one
/// the root user leaves (on a release started `again`, kept from the first).
fn awaiting_customer_code(
    rotation: &mut Rotation,
    customer_email: &EmailAddress,
    again: bool,
    now: u64,
) {
    end_release_claim(rotation);
    if !again {
        rotation.before_release = rotation.previous_email.take();
        rotation.previous_email = Some(rotation.target_email.clone());
    }
    rotation.target_email = customer_email.clone();
    // A change's status stamped before now is an older change's (see `code_taken`).
    rotation.email_change_requested_at = Some(now);
    rotation.phase = Phase::AwaitingCustomerOtp;
    rotation.release_completing_since = None;
}

/// Writes `change` into the record read again, whatever else wrote it since
/// it was claimed (a mail's evidence, another person's request): saved until
/// it holds, so a note of what AWS did (or that a claim is over) is not lost
/// to another write. Returns the record as saved.
pub(crate) async fn change_record<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    change: impl Fn(&mut Rotation),
) -> LifecycleResult<Rotation> {
    let mut last = None;
    for _ in 0..3 {
        let mut rotation = rotation_of(p, account).await?;
        let before = rotation.clone();
        change(&mut rotation);
        if rotation == before {
            return Ok(rotation);
        }
        match save_marked(p, &mut rotation).await {
            Err(e) if e.is_conflict() => last = Some(e),
            saved => return saved.map(|()| rotation),
        }
    }
    Err(last.unwrap_or_else(|| LifecycleError::changed_meanwhile(account)))
}

/// `NoticeTo` told of the release, then the root email change asked of AWS
/// (a console account: the engineer's task). Returns the audit's detail, or
/// the error and whether AWS may have acted on the request all the same (any
/// failure of its call but AWS's refusal).
async fn announced<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    (request, customer_email): (&AccessRequest, &EmailAddress),
    now: u64,
) -> Result<String, (LifecycleError, bool)> {
    let before_aws = |error| (error, false);
    tell_security_of_release(p, rotation, request, customer_email)
        .await
        .map_err(before_aws)?;
    let account = &rotation.account_id;
    if rotation.mode == Mode::Console {
        return Ok(console_release_task(account, customer_email));
    }
    if let Err(error) = p.api().start_email_update(account, customer_email).await {
        // As the take-over's start (`start_failed`), and the audit says so;
        // but a release asked for just before this one (to another address,
        // a typo corrected) may be the change AWS holds: then nothing says
        // this request was taken.
        let earlier_release = rotation.phase == Phase::AwaitingCustomerOtp
            && rotation
                .email_change_requested_at
                .is_some_and(|at| at + 2 * CLOCK_MARGIN_SECS >= now);
        if !earlier_release && taken_on_a_lost_answer(p, account, now).await {
            return Ok(format!(
                "AWS answered {error}, and holds a root email change started during this \
                 request, taken as this release's to the customer's {customer_email} (a try whose \
                 answer was lost): if the customer gets no code, that change was someone else's"
            ));
        }
        // Only AWS's refusal says nothing was done: a throttled answer may
        // be the SDK's last retry after an attempt AWS took.
        let refused = matches!(error, LifecycleError::Refused(_));
        return Err((error, !refused));
    }
    Ok(format!(
        "root email change to the customer's {customer_email} requested; AWS mails the code to \
         the customer"
    ))
}

/// What the engineer does in the console to release a console account.
fn console_release_task(account: &AccountId, customer_email: &EmailAddress) -> String {
    format!(
        "release to the customer's {customer_email}: sign in as the root user (`rootmail creds get`), \
         in Security credentials remove our MFA device, then change the root email (Account > \
         Account details > Actions > Update email address and password) to {customer_email}; AWS \
         mails the code to the customer, who enters it or reads it to you. A management account's \
         address then shows as unverified in AWS Organizations: its customer resends the \
         verification request there and follows AWS's link within 24 hours. \
         Last, change the root password to a long random one that nobody keeps, so that our vaulted \
         password stops working and only the customer's \"Forgot password\" sets the next one. \
         Then run `rootmail rotation complete --account {account} --attest \"...\"`"
    )
}

/// Mails `NoticeTo` that a release starts: who, to which address, why, and
/// whether that address is the one the account had before our take-over.
/// Unsent, the release does not start (a transient failure is retried).
async fn tell_security_of_release<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    request: &AccessRequest,
    customer_email: &EmailAddress,
) -> LifecycleResult<()> {
    let account = &rotation.account_id;
    let former = match (rotation.phase, &rotation.previous_email) {
        (Phase::Active, Some(former)) if former == customer_email => {
            format!("{customer_email} is the root email the account had before our take-over.")
        }
        (Phase::Active, Some(former)) => format!(
            "{customer_email} is NOT the root email the account had before our take-over ({former})."
        ),
        (Phase::Active, None) => {
            "rootmail has no record of the root email the account had before our take-over."
                .to_string()
        }
        _ => "It replaces a release that was waiting for the customer's code.".to_string(),
    };
    let text = format!(
        "{} started the release of AWS account {account} ({}) to {customer_email}: AWS mails that \
         address the code that hands it the root user. {former}\nReason: {}\nTicket: {}",
        request.who, rotation.customer, request.reason, request.ticket
    );
    let subject = format!("rootmail: release of AWS account {account}'s root user");
    p.notices().email(&subject, &text).await.inspect_err(|e| {
        tracing::warn!(error = %e, account = %account, "release email not sent; the release did not start");
    })
}

/// The state machine's release step asked again within this long for the
/// same address is its own retry after a lost answer: the code AWS sent
/// stands. (A person running `release` again is asking for a new code.)
const RELEASE_REPEAT_SECS: u64 = 600;

/// Release, step 1, as the release state machine runs it: a retry of the
/// step (the same address within [`RELEASE_REPEAT_SECS`]) answers the
/// rotation as it is instead of having AWS replace the code it just sent.
pub async fn start_release_step<P: LifecyclePorts>(
    p: &P,
    request: &AccessRequest,
    customer_email: &EmailAddress,
    now: u64,
) -> LifecycleResult<StepOutput> {
    require_access_fields(request, "a release")?;
    let rotation = releasable(p, &request.account_id).await?;
    // A reopening's save is no release's: a release started again after it
    // is one.
    if rotation.phase == Phase::AwaitingCustomerOtp
        && rotation.target_email == *customer_email
        && now < rotation.updated_at + RELEASE_REPEAT_SECS
        && rotation.reopened_at != Some(rotation.updated_at)
    {
        return Ok(StepOutput::from(&rotation));
    }
    let own = release_claim(request, customer_email);
    may_start_release(&rotation, Some(&own), now)?;
    release_from(p, rotation, request, customer_email, now).await
}

/// Release, withdrawn: a release waiting for the customer's code (never
/// given, or given to nobody: the address was wrong) ends, and the account is
/// `active` again under our address, its former owner's address remembered
/// as before. Like the release it needs a reason and a ticket.
///
/// Refused once the root email is no longer ours: through the Account API,
/// when AWS took the customer's code or shows another address (finish the
/// release instead); a console account on the engineer's word (`attest`),
/// checked where the provider's audit role reads IAM's summary: without
/// an MFA device the console steps went past removing ours.
pub async fn cancel_release<P: LifecyclePorts>(
    p: &P,
    request: &AccessRequest,
    attest: Option<&str>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    require_access_fields(request, "cancelling a release")?;
    let account = &request.account_id;
    let mut rotation = rotation_in(
        p,
        account,
        &[Phase::AwaitingCustomerOtp],
        "cancel the release",
    )
    .await?;
    let Some(ours) = rotation.previous_email.clone() else {
        return refused(format!(
            "account {account}'s release has no record of our address to go back to"
        ));
    };
    // One that stopped long ago is judged by what AWS says, below.
    no_completion_under_way(&rotation, now)?;
    crate::closure::no_closure_under_way(&rotation, now)?;
    no_other_release_starting(&rotation, None, now)?;
    let detail = match rotation.mode {
        Mode::Console => console_release_undone(p, &rotation, &ours, attest, &request.who).await?,
        _ => release_undone(p, &rotation, &ours).await?,
    };
    tell_security_of_cancel(p, &rotation, request, &ours).await?;
    let customer_email = std::mem::replace(&mut rotation.target_email, ours);
    rotation.previous_email = rotation.before_release.take();
    rotation.phase = Phase::Active;
    let (reason, ticket) = (Some(request.reason.as_str()), Some(request.ticket.as_str()));
    let detail = format!("release to {customer_email} cancelled: {detail}");
    let entry = (
        request.who.as_str(),
        "release cancelled",
        reason,
        ticket,
        detail,
    );
    advance_justified(p, &mut rotation, now, entry).await
}

/// Mails `NoticeTo` that a release is cancelled, as its start was mailed:
/// unsent, the release is not cancelled (a transient failure is retried).
async fn tell_security_of_cancel<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    request: &AccessRequest,
    ours: &EmailAddress,
) -> LifecycleResult<()> {
    let account = &rotation.account_id;
    let pending = match rotation.mode {
        Mode::Console => "",
        _ => {
            " AWS keeps the change it mailed the customer a code for pending until the code \
             expires (24 hours); only AcceptPrimaryEmailUpdate in the organization's management \
             account takes it."
        }
    };
    let text = format!(
        "{} cancelled the release of AWS account {account} ({}) to {}; the root email stays \
         {ours}.{pending}\nReason: {}\nTicket: {}",
        request.who, rotation.customer, rotation.target_email, request.reason, request.ticket
    );
    let subject = format!("rootmail: release of AWS account {account}'s root user cancelled");
    p.notices().email(&subject, &text).await.inspect_err(|e| {
        tracing::warn!(error = %e, account = %account, "cancellation email not sent; the release was not cancelled");
    })
}

/// A completion under way (it gives AWS the customer's code) may have had
/// AWS move the email already: a cancellation or a restart then is refused.
fn no_completion_under_way(rotation: &Rotation, now: u64) -> LifecycleResult<()> {
    match rotation.release_completing_since {
        Some(since) if now < since + COMPLETION_SECS => refused(format!(
            "a completion of account {}'s release is under way (it gives AWS the customer's \
             code): wait for it, then look at `rootmail rotation status`",
            rotation.account_id
        )),
        _ => Ok(()),
    }
}

/// How long a release's completion (AWS's calls, the credentials'
/// deletion) may take before a mark it left is taken as a stopped one.
const COMPLETION_SECS: u64 = 900;

/// Through the Account API: the root email is still `ours` and AWS took no
/// code; what the audit says of it.
async fn release_undone<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    ours: &EmailAddress,
) -> LifecycleResult<String> {
    let account = &rotation.account_id;
    let finish = format!(
        "finish the release with `rootmail rotation complete --account {account} --otp-stdin`"
    );
    let status = p.api().email_update_status(account).await?;
    if accepted_since(status, rotation.email_change_requested_at) {
        return refused(format!(
            "AWS already took the customer's code for account {account}: {finish}"
        ));
    }
    let now_there = p.api().primary_email(account).await?;
    if now_there != *ours {
        return refused(format!(
            "account {account}'s root email is {now_there}, not ours ({ours}): {finish}"
        ));
    }
    Ok(format!(
        "AWS shows the root email is still ours ({ours}); the change AWS mailed the customer a code \
         for stays pending at AWS until the code expires (24 hours)"
    ))
}

/// A console account: the engineer says the console steps were not done (the
/// root email still ours, our MFA device in place), checked where IAM's
/// summary is read.
async fn console_release_undone<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    ours: &EmailAddress,
    attest: Option<&str>,
    who: &str,
) -> LifecycleResult<String> {
    let account = &rotation.account_id;
    let Some(statement) = attest.map(str::trim).filter(|s| !s.is_empty()) else {
        return refused(format!(
            "account {account} is released in the console: say with --attest \"...\" that its root \
             email is still ours ({ours}) and our MFA device is in place"
        ));
    };
    let attested = format!("{who} attests the root email is still ours ({ours}): {statement}");
    match p.root().summary(account).await? {
        None => Ok(attested),
        Some(summary) if !summary.mfa_enabled => refused(format!(
            "account {account}'s root user has no MFA device enabled (IAM's account summary: {}): the \
             release's console steps went past removing ours; finish the release with `rootmail \
             rotation complete --account {account} --attest \"...\"`, then take the account over again",
            summary.describe()
        )),
        Some(summary) => Ok(format!(
            "{attested}; IAM's account summary: {}",
            summary.describe()
        )),
    }
}

/// A release started again while it waits for the customer's code is
/// refused when AWS already made it (an earlier completion had AWS take the
/// code): it is finished, not restarted.
async fn not_released_already<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
) -> LifecycleResult<()> {
    let account = &rotation.account_id;
    // Waiting for the customer's code, the latest change is the release's:
    // its status is this release's (see `code_taken`).
    let change = (&rotation.target_email, rotation.email_change_requested_at);
    if rotation.mode != Mode::Console && code_taken(p, account, change).await? {
        return refused(format!(
            "AWS already moved account {account}'s root email to {}: finish the release with \
             `rootmail rotation complete --account {account} --otp-stdin`",
            rotation.target_email
        ));
    }
    Ok(())
}

/// Release, step 2: the customer's code. A wrong code changes nothing. Then the
/// vault entries are scheduled for deletion and the account is `released`: mail
/// still arriving at our address is archived, but for its security, account and
/// payment mail, ticketed (it says the release did not take).
pub async fn complete_release<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    confirmation: ReleaseConfirmation<'_>,
    who: &str,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let mut rotation = rotation_in(
        p,
        account,
        &[Phase::AwaitingCustomerOtp],
        "complete the release",
    )
    .await?;
    let (action, done) = confirm_release(p, &mut rotation, confirmation, who, now).await?;
    // Vaulted and console: the password and seed; any mode: the handed-over code.
    p.vault()
        .schedule_deletion(account, rotation.mode.vault_items())
        .await?;
    set_status(p, &rotation, AccountStatus::Released).await?;
    rotation.phase = Phase::Released;
    rotation.release_completing_since = None;
    let detail = format!(
        "root email is the customer's {}; {done}; vault entries scheduled for deletion. \
         Tell the customer to sign in as the root user with \"Forgot password\" (AWS mails the reset link to {0}) and to add their own MFA device",
        rotation.target_email,
    );
    advance(p, &mut rotation, now, (who, action, detail)).await
}

/// The release's confirmation checked and acted on: the customer's code given
/// to AWS (and our root credentials deleted), or a console account's
/// attestation. Returns the audit action and what was done.
async fn confirm_release<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    confirmation: ReleaseConfirmation<'_>,
    who: &str,
    now: u64,
) -> LifecycleResult<(&'static str, String)> {
    let account = rotation.account_id.clone();
    match (rotation.mode, confirmation) {
        (Mode::Console, ReleaseConfirmation::Attested(statement))
            if !statement.trim().is_empty() =>
        {
            Ok((
                "released (attested)",
                crate::console::console_release_statement(rotation, who, statement),
            ))
        }
        (Mode::Console, _) => refused(format!(
            "account {account} is released in the console: say what you did with --attest \"...\" \
             (our MFA device removed, the root email changed to {})",
            rotation.target_email
        )),
        (_, ReleaseConfirmation::CustomerCode(otp)) => Ok((
            "released",
            release_with_customer_code(p, rotation, otp, now).await?,
        )),
        (_, ReleaseConfirmation::Attested(_)) => refused(
            "the release waits for the code AWS mailed to the customer: give it on standard input with --otp-stdin".into(),
        ),
    }
}

/// Gives AWS the customer's code, then deletes our root credentials once
/// (see [`delete_ours`]) and lets the customer recover the password; returns
/// what was done, for the audit.
async fn release_with_customer_code<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    otp: &SecretValue,
    now: u64,
) -> LifecycleResult<String> {
    let account = rotation.account_id.clone();
    // Marked before AWS moves the email, so a cancellation cannot record
    // the account as ours while it moves (see `cancel_release`).
    rotation.release_completing_since = Some(now);
    save_marked(p, rotation).await?;
    // An earlier try may have got AWS's acceptance and failed after it:
    // then the code is spent and the change done, so go on from there.
    let change = (&rotation.target_email, rotation.email_change_requested_at);
    let moved = match accept_code(p, &account, change, otp).await {
        Err(LifecycleError::Refused(why)) => {
            rotation.release_completing_since = None;
            save_marked(p, rotation).await?;
            return refused(why);
        }
        answer => answer?,
    };
    // Our password and MFA device must not outlive our hold: they go, and
    // "Forgot password" lets the customer set their own. Once only: a try
    // run again later would delete what the customer has set since.
    let removed = match rotation.credentials_deleted_at {
        Some(_) => "our root credentials are deleted (by an earlier try)".to_string(),
        None => {
            let removed = delete_ours(p, rotation, moved).await?;
            rotation.credentials_deleted_at = Some(now);
            save_next_version(p, rotation, now).await?;
            removed
        }
    };
    p.root().allow_password_recovery(&account).await?;
    Ok(removed)
}

/// Deletes the root user's credentials, unless the email had moved before
/// this try (an earlier one got AWS's acceptance, then failed before its
/// mark was saved) and the root user has an MFA device enabled since the
/// release started: the customer has signed in (their password reset
/// replaced ours) and set their own, which must stay; our old MFA device is
/// theirs to remove. What was done, for the audit.
async fn delete_ours<P: LifecyclePorts>(
    p: &P,
    rotation: &Rotation,
    moved: bool,
) -> LifecycleResult<String> {
    let account = &rotation.account_id;
    if moved {
        let now_there = p.root().audit(account).await?;
        if now_there
            .mfa_enabled_at
            .iter()
            .any(|&at| at > rotation.updated_at)
        {
            return Ok(format!(
                "our root credentials are not deleted: the root user has an MFA device enabled since \
                 the release started, the customer's ({}); ask the customer to remove any MFA device \
                 enabled before the release (ours) in Security credentials",
                now_there.describe()
            ));
        }
    }
    let removed = p.root().delete_all(account).await?;
    Ok(format!(
        "our root credentials are deleted ({})",
        removed.describe()
    ))
}

/// How a release is confirmed: the customer's code (the Account API), or the
/// engineer's statement of the console steps (a console account).
#[derive(Debug, Clone, Copy)]
pub enum ReleaseConfirmation<'a> {
    CustomerCode(&'a SecretValue),
    Attested(&'a str),
}
