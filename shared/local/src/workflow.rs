//! The lifecycle's state machines run in-process, step by step as Step Functions
//! runs them in AWS. The code mail of a take-over goes through the real mail
//! pipeline (ingest, triage, handoff), exactly like mail SES delivers.

use crate::lifecycle_store::LocalLifecycle;
use crate::store::LocalStore;
use rootmail_domain::{Account, AccountId, InMemoryDirectory, Rules, SecretValue};
use rootmail_lifecycle::handoff::MailHandoffs;
use rootmail_lifecycle::steps::{self, StepOutput, TakeOver};
use rootmail_lifecycle::{LifecycleError, LifecycleResult, Mode, Phase, Rotations};
use rootmail_lifecycle::{console, operator};
use rootmail_pipeline::{IngestPorts, Ingested, Knowledge, PortError, ingest};

/// The local directory: the `--accounts` file, then what the lifecycle registered
/// (which wins for the same address).
pub fn directory(
    lifecycle: &LocalLifecycle<'_>,
    listed: &[Account],
) -> LifecycleResult<InMemoryDirectory> {
    let registered = lifecycle.registered_accounts()?;
    let mut accounts: Vec<Account> = listed
        .iter()
        .filter(|a| !registered.iter().any(|r| r.root_email == a.root_email))
        .cloned()
        .collect();
    accounts.extend(registered);
    InMemoryDirectory::new(accounts).map_err(|e| LifecycleError::Refused(e.to_string()))
}

/// Reads the simulated AWS's unread mail through the pipeline; returns how many.
pub async fn deliver_simulated_mail(
    lifecycle: &LocalLifecycle<'_>,
    store: &LocalStore,
    listed: &[Account],
    rules: &Rules,
    now: u64,
) -> LifecycleResult<usize> {
    let dir = lifecycle.simulated_mail_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| refused_io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    let directory = directory(lifecycle, listed)?;
    let handoffs = MailHandoffs(lifecycle);
    let knowledge = Knowledge::new(rules, &handoffs);
    for file in &files {
        let raw = std::fs::read(file).map_err(|e| refused_io(file, e))?;
        let source = file.display().to_string();
        let ports = IngestPorts {
            archive: store,
            ledger: store,
            threads: store,
            accounts: &directory,
        };
        let ingested = ingest(ports, &knowledge, &raw, &source, now).await?;
        if let Ingested::Triaged { op: Some(op), .. } = ingested {
            // Not handed over (nobody waits any more): the mail is an alert.
            let ports = store.writer_ports(store);
            rootmail_pipeline::write_ticket(ports, &op, now).await?;
        }
        // Read: the ledger and the archive keep it from here.
        std::fs::remove_file(file).map_err(|e| refused_io(file, e))?;
    }
    Ok(files.len())
}

fn refused_io(path: &std::path::Path, e: std::io::Error) -> LifecycleError {
    LifecycleError::Port(PortError::permanent(
        "simulated-aws",
        format!("{}: {e}", path.display()),
    ))
}

/// The take-over state machine. A vaulted take-over stops at the engineer's
/// task (`complete` resumes it); a rootless one runs to `active`. A step that
/// fails for good after registration ends the take-over as `failed` (as the
/// state machine's `Catch` does in AWS), so a new one may start.
pub async fn take_over(
    lifecycle: &LocalLifecycle<'_>,
    store: &LocalStore,
    (listed, rules): (&[Account], &Rules),
    request: &TakeOver,
    now: u64,
) -> LifecycleResult<Vec<StepOutput>> {
    let account = &request.account_id;
    let mut trail = vec![steps::register(lifecycle, request, now).await?];
    let rest = run_take_over(lifecycle, store, (listed, rules), request, now).await;
    trail.extend(failure_ends_the_take_over(lifecycle, account, rest, now).await?);
    Ok(trail)
}

/// A step that fails for good (refused, or a port's error) ends the take-over
/// as `failed`, as the state machine's `Catch` does in AWS; one that is only
/// not yet possible leaves it as it is.
async fn failure_ends_the_take_over<T>(
    lifecycle: &LocalLifecycle<'_>,
    account: &AccountId,
    result: LifecycleResult<T>,
    now: u64,
) -> LifecycleResult<T> {
    match result {
        Err(error @ (LifecycleError::Refused(_) | LifecycleError::Port(_))) => {
            steps::record_failure(lifecycle, account, (&error.to_string(), None), now).await?;
            Err(error)
        }
        other => other,
    }
}

/// The take-over's steps after registration.
async fn run_take_over(
    lifecycle: &LocalLifecycle<'_>,
    store: &LocalStore,
    (listed, rules): (&[Account], &Rules),
    request: &TakeOver,
    now: u64,
) -> LifecycleResult<Vec<StepOutput>> {
    let account = &request.account_id;
    if request.mode == Mode::Console {
        // A person changes the root email in the console; the code mail,
        // then AWS's mail to the new address, move the take-over on.
        return Ok(vec![
            console::open_email_change(lifecycle, account, None, now).await?,
        ]);
    }
    let token = local_token(account, "otp");
    let mut trail = vec![steps::start_email_update(lifecycle, account, &token, now).await?];
    deliver_simulated_mail(lifecycle, store, listed, rules, now).await?;
    let rotation = Rotations::get(lifecycle, account).await?;
    if rotation.as_ref().map(|r| r.phase) != Some(Phase::OtpReceived) {
        return Err(LifecycleError::NotYet(format!(
            "AWS's code mail for account {account} has not reached the rotation; where no rule read its code, type it: `rootmail rotation complete --account {account} --otp-stdin`"
        )));
    }
    trail.extend(after_the_code(lifecycle, account, request.mode, now).await?);
    Ok(trail)
}

/// The task token a local step waits under.
fn local_token(account: &AccountId, step: &str) -> String {
    format!("local:{account}:{step}")
}

/// The take-over's steps once AWS's code is in the vault (by mail, or typed
/// by the engineer): as the state machine runs them in AWS once the task is
/// answered.
async fn after_the_code(
    lifecycle: &LocalLifecycle<'_>,
    account: &AccountId,
    mode: Mode,
    now: u64,
) -> LifecycleResult<Vec<StepOutput>> {
    let mut trail = vec![
        steps::accept_email_update(lifecycle, account, now).await?,
        steps::confirm_email_update(lifecycle, account, now).await?,
    ];
    if mode == Mode::Vaulted {
        let token = local_token(account, "engineer");
        trail.push(steps::prepare_vault(lifecycle, account, &token, now).await?);
    } else {
        trail.push(steps::delete_root_credentials(lifecycle, account, now).await?);
        trail.push(steps::activate(lifecycle, account, now).await?);
    }
    Ok(trail)
}

/// Runs the step a console take-over waits for once evidence arrived (as the
/// state machine does in AWS when its task token is answered): after the root
/// email change is confirmed, the engineer's task.
pub async fn resume(
    lifecycle: &LocalLifecycle<'_>,
    account: &AccountId,
    now: u64,
) -> LifecycleResult<Vec<StepOutput>> {
    let Some(rotation) = Rotations::get(lifecycle, account).await? else {
        return Ok(Vec::new());
    };
    match (rotation.mode, rotation.phase) {
        (Mode::Console, Phase::EmailAccepted) if rotation.email_evidence.is_some() => Ok(vec![
            steps::confirm_email_update(lifecycle, account, now).await?,
            console::prepare_vault(lifecycle, account, None, now).await?,
        ]),
        _ => Ok(Vec::new()),
    }
}

/// `rootmail rotation complete`: finishes whatever waits for a person: the
/// engineer's console steps of a vaulted take-over, a release waiting for the
/// customer's code, or a member take-over waiting for AWS's code, typed
/// where no rule read it in the mail.
pub async fn complete(
    lifecycle: &LocalLifecycle<'_>,
    account: &AccountId,
    who: &str,
    (otp, attest): (Option<&SecretValue>, Option<&str>),
    now: u64,
) -> LifecycleResult<Vec<StepOutput>> {
    let done = operator::complete(lifecycle, account, who, otp, attest, now).await?;
    let mut trail = vec![done];
    // In AWS the state machine goes on once the task is answered: it
    // activates the account after the engineer's task, and accepts the
    // code once it is in the vault. Here the workflow does.
    let (mode, phase) = (trail[0].mode, trail[0].phase);
    let rest = match phase {
        Phase::Secured => vec![steps::activate(lifecycle, account, now).await?],
        Phase::OtpReceived if mode != Mode::Console => {
            let rest = after_the_code(lifecycle, account, mode, now).await;
            failure_ends_the_take_over(lifecycle, account, rest, now).await?
        }
        _ => Vec::new(),
    };
    trail.extend(rest);
    Ok(trail)
}
