//! `rootmail rotation|creds|release|close|simulate`: the root-credential
//! lifecycle. Locally (the default) the steps run in-process against the
//! embedded store, the encrypted local vault and the simulated AWS (see
//! `rootmail_local::lifecycle`); with `--aws` a take-over starts the deployed
//! state machine, and every other request goes to the operator function
//! (`OPERATOR_URL`), which records the caller's IAM identity.
//!
//! Nothing here prints a secret except `creds get`, and only after its audit
//! record is written.

use crate::operator_client::{self, Reply};
use crate::output::table;
use anyhow::Context as _;
use rootmail_domain::{Account, AccountId, EmailAddress, SecretValue};
use rootmail_lifecycle::operator::{self, GrantView, OperatorAnswer, OperatorRequest};
use rootmail_lifecycle::steps::{StepOutput, TakeOver};
use rootmail_lifecycle::{AuditEntry, LifecycleError, Mode, Phase, Rotation};
use rootmail_local::LocalStore;
use rootmail_local::console::{ConsoleShows, ConsoleStep};
use rootmail_local::lifecycle_store::{LocalLifecycle, VaultKey};
use rootmail_local::workflow;
use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

/// What every lifecycle command needs.
pub struct Local<'a> {
    pub state: &'a Path,
    pub who: Option<String>,
    /// Run against AWS instead of the local state.
    pub aws: bool,
}

impl Local<'_> {
    /// Who is acting, for the audit trail: `--who`, else `$USER`. An audit row
    /// that says "unknown" is worth nothing, so without either the command stops.
    fn who(&self) -> anyhow::Result<String> {
        self.who
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!("say who you are with --who (the audit trail records it)")
            })
    }
}

fn open(state: &Path) -> anyhow::Result<(LocalStore, VaultKey)> {
    let store = LocalStore::open(state)?;
    let key = VaultKey::from_env().map_err(anyhow::Error::msg)?;
    Ok((store, key))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn account_id(text: &str) -> anyhow::Result<AccountId> {
    Ok(AccountId::parse(text)?)
}

/// A refused request is the user's to fix: exit 1 with the reason; anything
/// else is an error (exit 2, from main).
fn outcome(result: Result<(), LifecycleError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(LifecycleError::Refused(reason)) => Ok(refused(&reason)),
        Err(LifecycleError::NotYet(reason)) => Ok(not_yet(&reason)),
        Err(LifecycleError::Port(e)) => Err(e.into()),
    }
}

/// The lifecycle's refusal: exit code 1.
fn refused(reason: &str) -> ExitCode {
    eprintln!("rootmail: refused: {reason}");
    ExitCode::from(1)
}

/// Exit code 75 (`EX_TEMPFAIL`): run the same command again later (AWS has
/// not caught up, or another run holds the account for a moment).
fn not_yet(reason: &str) -> ExitCode {
    eprintln!("rootmail: not yet: {reason}");
    ExitCode::from(75)
}

fn print_trail(trail: &[StepOutput]) {
    for step in trail {
        println!("  {} -> {}", step.account_id, step.phase.as_str());
    }
}

pub struct Start<'a> {
    pub account: &'a str,
    pub customer: &'a str,
    pub mode: &'a str,
    pub root_domain: Option<&'a str>,
    pub accounts: Option<&'a Path>,
    pub rules: Option<&'a Path>,
    /// `--aws`: the take-over state machine to start.
    pub state_machine: Option<&'a str>,
}

pub fn start(local: &Local<'_>, args: &Start<'_>) -> anyhow::Result<ExitCode> {
    let mode = Mode::parse(args.mode).ok_or_else(|| {
        anyhow::anyhow!(
            "--mode must be rootless, vaulted (member accounts) or console (payer and standalone accounts), not {:?}",
            args.mode
        )
    })?;
    let account = account_id(args.account)?;
    if local.aws {
        return start_execution(&account, args.customer, mode, args.state_machine);
    }
    let request = TakeOver {
        account_id: account,
        customer: args.customer.to_string(),
        mode,
        root_domain: args
            .root_domain
            .ok_or_else(|| anyhow::anyhow!("give --root-domain (or ROOT_MAIL_DOMAIN)"))?
            .to_string(),
        execution: None,
    };
    let listed: Vec<Account> = match args.accounts {
        Some(path) => rootmail_local::accounts::read(path)?,
        None => Vec::new(),
    };
    let rules = crate::inputs::rules(args.rules)?;
    let (store, key) = open(local.state)?;
    let lifecycle = LocalLifecycle::new(&store, key);
    println!(
        "Taking over account {} ({} mode):",
        request.account_id,
        mode.as_str()
    );
    let result = runtime()?.block_on(workflow::take_over(
        &lifecycle,
        &store,
        (&listed, &rules),
        &request,
        now(),
    ));
    outcome(result.map(|trail| {
        print_trail(&trail);
        print_what_waits(mode, local.state, &request.account_id);
    }))
}

/// What a local take-over waits for, and the command that moves it on.
fn print_what_waits(mode: Mode, state: &Path, account: &AccountId) {
    if mode == Mode::Console {
        println!(
            "\nWaiting for the root email to be changed in the console: the steps are on the\n\
             lifecycle ticket (rootmail tickets --state {} list). Locally, play the console with\n\
             `rootmail simulate console --account {} --step change-email`.",
            state.display(),
            account
        );
    }
    if mode == Mode::Vaulted {
        println!(
            "\nWaiting for an engineer: see the lifecycle ticket (rootmail tickets --state {} list),\n\
             then run `rootmail rotation complete --account {}`.",
            state.display(),
            account
        );
    }
}

/// `--aws`: a take-over is an execution of the take-over state machine, named
/// after the account and the time so a repeated command is easy to spot.
fn start_execution(
    account: &AccountId,
    customer: &str,
    mode: Mode,
    state_machine: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let state_machine = state_machine
        .ok_or_else(|| anyhow::anyhow!("give --state-machine (or TAKE_OVER_STATE_MACHINE_ARN)"))?;
    let input = serde_json::json!({"account_id": account, "customer": customer, "mode": mode});
    runtime()?.block_on(async {
        let sfn = aws_sdk_sfn::Client::new(&rootmail_aws::sdk_config().await);
        let started = sfn
            .start_execution()
            .state_machine_arn(state_machine)
            .name(format!("take-over-{account}-{}", now()))
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "starting the take-over: {}",
                    rootmail_aws::error::error_chain(&e)
                )
            })?;
        println!(
            "Take-over of account {account} started: {}",
            started.execution_arn
        );
        println!("Follow it with `rootmail rotation status --aws --account {account}`.");
        Ok(ExitCode::SUCCESS)
    })
}

pub fn status(local: &Local<'_>, account: &str) -> anyhow::Result<ExitCode> {
    let request = OperatorRequest::Status {
        account_id: account_id(account)?,
    };
    answered(local, &request, |answer| {
        if let OperatorAnswer::Status { rotation, audit } = answer {
            show_status(&rotation, &audit);
        }
    })
}

fn show_status(rotation: &Rotation, audit: &[AuditEntry]) {
    let account = &rotation.account_id;
    println!("Account:  {} ({})", rotation.account_id, rotation.customer);
    println!("Mode:     {}", rotation.mode.as_str());
    println!("Phase:    {}", rotation.phase.as_str());
    println!("Root:     {}", rotation.target_email);
    if let Some(kind) = rotation.waiting_for {
        println!("Waiting:  for a {kind} mail");
    }
    if let Some(who) = rootmail_lifecycle::estate::waiting_for(rotation) {
        println!("          on {who}");
    }
    if rotation.phase == Phase::AwaitingCustomerOtp {
        let since = audit
            .iter()
            .rfind(|e| e.action == "release started")
            .map_or_else(|| "?".to_string(), |e| crate::output::utc(e.at / 1000));
        println!("Release:  to the customer's address above, started {since} (UTC)");
        println!(
            "          AWS's code lasts 24 hours: `rootmail release` again asks for a new one; \
             `rootmail release --account {account} --cancel ...` withdraws it"
        );
    }
    if let Some(failure) = &rotation.failure {
        println!(
            "Failed:   while {}: {}",
            failure.phase.as_str(),
            failure.reason
        );
        println!("          start again with `rootmail rotation start --account {account} ...`");
    }
    let rows: Vec<Vec<String>> = audit
        .iter()
        .map(|e| {
            vec![
                crate::output::utc(e.at / 1000),
                e.actor.clone(),
                e.action.clone(),
                e.detail.clone(),
            ]
        })
        .collect();
    println!("\nAudit trail:");
    print!(
        "{}",
        table(&["WHEN (UTC)", "WHO", "ACTION", "DETAIL"], &rows, 90)
    );
}

/// Performs a person's request: locally in-process as `--who`, with `--aws`
/// through the operator function as the caller's IAM identity. A refusal is
/// the user's to fix (exit 1 with the reason); anything else is an error.
fn answered(
    local: &Local<'_>,
    request: &OperatorRequest,
    show: impl FnOnce(OperatorAnswer),
) -> anyhow::Result<ExitCode> {
    let reply = if local.aws {
        if local.who.is_some() {
            anyhow::bail!(
                "with --aws the audit trail names your IAM identity: --who is for local mode"
            );
        }
        runtime()?.block_on(operator_client::call(request))?
    } else {
        match perform_locally(local, request)? {
            Ok(answer) => Reply::Done(Box::new(answer)),
            Err(LifecycleError::Refused(reason)) => Reply::Refused(reason),
            Err(LifecycleError::NotYet(reason)) => Reply::NotYet(reason),
            Err(LifecycleError::Port(e)) => return Err(e.into()),
        }
    };
    match reply {
        Reply::Done(answer) => {
            show(*answer);
            Ok(ExitCode::SUCCESS)
        }
        Reply::Refused(reason) => Ok(refused(&reason)),
        Reply::NotYet(reason) => Ok(not_yet(&reason)),
    }
}

/// The local lifecycle: the vault key from the environment, except for the
/// status, which reads references only. A missing setting (who is acting,
/// the vault key) is an error, the lifecycle's refusal is the inner result.
fn perform_locally(
    local: &Local<'_>,
    request: &OperatorRequest,
) -> anyhow::Result<Result<OperatorAnswer, LifecycleError>> {
    let runtime = runtime()?;
    if let OperatorRequest::Status { .. } = request {
        // Read beside a run that may hold the state.
        let store = LocalStore::open_to_read(local.state)?;
        let lifecycle = LocalLifecycle::without_vault(&store);
        return Ok(runtime.block_on(operator::perform(&lifecycle, "", request, now())));
    }
    let store = LocalStore::open(local.state)?;
    let who = local.who()?;
    let key = VaultKey::from_env().map_err(anyhow::Error::msg)?;
    let lifecycle = LocalLifecycle::new(&store, key);
    Ok(runtime.block_on(async {
        match request {
            // No state machine here: the workflow activates after the task.
            OperatorRequest::Complete {
                account_id,
                otp,
                attest,
            } => {
                let given = (otp.as_ref(), attest.as_deref());
                let trail = workflow::complete(&lifecycle, account_id, &who, given, now()).await?;
                Ok(OperatorAnswer::Steps { trail })
            }
            // The state machine resumes in AWS; here the workflow does.
            OperatorRequest::Attest { account_id, .. } => {
                let mut answer = operator::perform(&lifecycle, &who, request, now()).await?;
                if let OperatorAnswer::Steps { trail } = &mut answer {
                    trail.extend(workflow::resume(&lifecycle, account_id, now()).await?);
                }
                Ok(answer)
            }
            _ => operator::perform(&lifecycle, &who, request, now()).await,
        }
    }))
}

/// Reads a one-time code from standard input (so it stays out of shell history).
fn read_otp() -> anyhow::Result<SecretValue> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the code from standard input")?;
    let code = text.trim().to_string();
    if code.is_empty() {
        anyhow::bail!("no code on standard input");
    }
    Ok(SecretValue::new(code))
}

pub fn complete(
    local: &Local<'_>,
    account: &str,
    otp_stdin: bool,
    attest: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let request = OperatorRequest::Complete {
        account_id: account_id(account)?,
        otp: if otp_stdin { Some(read_otp()?) } else { None },
        attest: attest.map(str::to_string),
    };
    answered(local, &request, show_trail)
}

/// `rotation code`: the verification code AWS mailed to our address during a
/// console take-over, to type into the console. Audited before it is shown.
pub fn read_code(local: &Local<'_>, args: &Access<'_>) -> anyhow::Result<ExitCode> {
    let request = OperatorRequest::ReadCode {
        account_id: account_id(args.account)?,
        reason: args.reason.to_string(),
        ticket: args.ticket.to_string(),
    };
    answered(local, &request, |answer| {
        if let OperatorAnswer::Code { root_email, code } = answer {
            eprintln!(
                "Read recorded (reason: {}; ticket: {}). Enter the code in the console, for {root_email} \
                 (if the console refuses it, ask AWS there for a new code and run this again: AWS's \
                 latest code mail replaces this one):",
                args.reason, args.ticket
            );
            println!("{}", code.expose());
        }
    })
}

/// `rotation attest`: the console shows our address as the root email and no
/// AWS mail confirmed it; recorded as the caller's attestation.
pub fn attest(local: &Local<'_>, account: &str, statement: &str) -> anyhow::Result<ExitCode> {
    let request = OperatorRequest::Attest {
        account_id: account_id(account)?,
        statement: statement.to_string(),
    };
    answered(local, &request, show_trail)
}

/// `mfa enroll`: the secret key the console shows, on standard input (never
/// an argument: it would sit in shell history and `ps`); prints the two codes.
pub fn enroll_mfa(local: &Local<'_>, account: &str, replace: bool) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the MFA secret key from standard input")?;
    let request = OperatorRequest::EnrollMfa {
        account_id: account_id(account)?,
        secret_key: SecretValue::new(text),
        replace,
    };
    answered(local, &request, |answer| {
        if let OperatorAnswer::MfaCodes { first, second } = answer {
            eprintln!("The seed is in the vault. Type these into the console, in this order:");
            println!("MFA code 1: {}", first.expose());
            println!("MFA code 2: {}", second.expose());
        }
    })
}

fn show_trail(answer: OperatorAnswer) {
    if let OperatorAnswer::Steps { trail } = answer {
        print_trail(&trail);
    }
}

pub struct Access<'a> {
    pub account: &'a str,
    pub reason: &'a str,
    pub ticket: &'a str,
}

pub fn creds_get(local: &Local<'_>, args: &Access<'_>) -> anyhow::Result<ExitCode> {
    let request = OperatorRequest::Access {
        account_id: account_id(args.account)?,
        reason: args.reason.to_string(),
        ticket: args.ticket.to_string(),
    };
    answered(local, &request, |answer| {
        if let OperatorAnswer::Access(grant) = answer {
            show_grant(args, &grant, now());
        }
    })
}

fn show_grant(args: &Access<'_>, grant: &GrantView, now: u64) {
    eprintln!(
        "Break-glass access recorded for {} (reason: {}; ticket: {}).",
        grant.who, args.reason, args.ticket
    );
    if grant.pending {
        eprintln!(
            "These are the PENDING credentials of a take-over that did not finish: AWS holds \
             them only once they are set in the console."
        );
    }
    for notice in &grant.unsent_notices {
        eprintln!("WARNING: not sent, tell security yourself: {notice}");
    }
    println!("Root email: {}", grant.root_email);
    println!("Password:   {}", grant.password.expose());
    if let Some(code) = &grant.totp_code {
        let left = 30 - now % 30;
        println!("MFA code:   {} (valid {left} more seconds)", code.expose());
    }
    if let Some(link) = &grant.reset_link {
        println!("Reset link: {}", link.expose());
    }
}

pub fn release(
    local: &Local<'_>,
    args: &Access<'_>,
    customer_email: &str,
) -> anyhow::Result<ExitCode> {
    let account = account_id(args.account)?;
    let email = EmailAddress::parse(customer_email)?;
    let request = OperatorRequest::Release {
        account_id: account.clone(),
        customer_email: email.clone(),
        reason: args.reason.to_string(),
        ticket: args.ticket.to_string(),
    };
    let aws = if local.aws { " --aws" } else { "" };
    answered(local, &request, |answer| {
        let console = matches!(&answer, OperatorAnswer::Steps { trail }
            if trail.iter().any(|step| step.mode == Mode::Console));
        show_trail(answer);
        match console {
            // Nothing is mailed yet: the change is the engineer's, in the console.
            true => println!(
                "\nSign in to the console as the root user and do what the step above says; when the \
                 root email is {email}, run\n\
                 `rootmail rotation complete{aws} --account {account} --attest \"...\"`."
            ),
            false => println!(
                "\nAWS mailed a code to {email}. When the customer gives it to you, run\n\
                 `rootmail rotation complete{aws} --account {account} --otp-stdin` and type it."
            ),
        }
    })
}

pub fn cancel_release(
    local: &Local<'_>,
    args: &Access<'_>,
    attest: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let request = OperatorRequest::CancelRelease {
        account_id: account_id(args.account)?,
        reason: args.reason.to_string(),
        ticket: args.ticket.to_string(),
        attest: attest.map(str::to_string),
    };
    answered(local, &request, show_trail)
}

/// `close`, or with `reopen` the account recorded open again.
pub fn close(
    local: &Local<'_>,
    (account, reason, attest): (&str, &str, Option<&str>),
    reopen: bool,
) -> anyhow::Result<ExitCode> {
    let (account_id, reason, attest) = (
        account_id(account)?,
        reason.to_string(),
        attest.map(str::to_string),
    );
    let request = match reopen {
        true => OperatorRequest::Reopen {
            account_id,
            reason,
            attest,
        },
        false => OperatorRequest::Close {
            account_id,
            reason,
            attest,
        },
    };
    answered(local, &request, show_trail)
}

/// What `simulate console --step` names.
pub struct Simulated<'a> {
    pub account: &'a str,
    pub step: &'a str,
    /// `change-email`: the new root address (default: where the rotation goes).
    pub to: Option<&'a str>,
    pub accounts: Option<&'a Path>,
    pub rules: Option<&'a Path>,
}

/// Local mode only: plays the AWS console on the simulated AWS, one step a
/// person does there, then reads the mail AWS sent through the real pipeline
/// and moves the local workflow on, as Step Functions would.
pub fn simulate_console(local: &Local<'_>, args: &Simulated<'_>) -> anyhow::Result<ExitCode> {
    if local.aws {
        anyhow::bail!("the simulated AWS exists only in local mode");
    }
    let account = account_id(args.account)?;
    let (store, key) = open(local.state)?;
    let lifecycle = LocalLifecycle::new(&store, key);
    let listed: Vec<Account> = match args.accounts {
        Some(path) => rootmail_local::accounts::read(path)?,
        None => Vec::new(),
    };
    let rules = crate::inputs::rules(args.rules)?;
    let runtime = runtime()?;
    let rotation = runtime.block_on(rootmail_lifecycle::Rotations::get(&lifecycle, &account))?;
    let address = |given: Option<&str>| -> anyhow::Result<EmailAddress> {
        match (given, &rotation) {
            (Some(text), _) => Ok(EmailAddress::parse(text)?),
            (None, Some(r)) => Ok(r.target_email.clone()),
            (None, None) => anyhow::bail!("account {account} has no rotation: give --to"),
        }
    };
    let step = console_step(args.step, || address(args.to))?;
    let shows = match lifecycle.console(&account, step, now()) {
        Ok(shows) => shows,
        Err(LifecycleError::Refused(reason) | LifecycleError::NotYet(reason)) => {
            eprintln!("rootmail: the simulated console refused: {reason}");
            return Ok(ExitCode::from(1));
        }
        Err(LifecycleError::Port(e)) => return Err(e.into()),
    };
    let trail = runtime.block_on(async {
        let read =
            workflow::deliver_simulated_mail(&lifecycle, &store, &listed, &rules, now()).await?;
        let trail = workflow::resume(&lifecycle, &account, now()).await?;
        Ok::<_, LifecycleError>((read, trail))
    })?;
    match shows {
        ConsoleShows::Done(what) => println!("Simulated console: {what}."),
        ConsoleShows::SecretKey(key) => {
            eprintln!("Simulated console: Assign MFA device > Show secret key:");
            println!("{}", key.expose());
        }
    }
    if trail.0 > 0 {
        println!(
            "Simulated AWS mailed {} message(s); the pipeline read them.",
            trail.0
        );
    }
    print_trail(&trail.1);
    Ok(ExitCode::SUCCESS)
}

/// The console step `--step` names; `to` gives the address a step needs.
/// Codes are read from standard input.
fn console_step(
    step: &str,
    to: impl Fn() -> anyhow::Result<EmailAddress>,
) -> anyhow::Result<ConsoleStep> {
    Ok(match step {
        "change-email" => ConsoleStep::ChangeEmail { to: to()? },
        "enter-code" => ConsoleStep::EnterCode {
            to: to()?,
            code: read_otp()?,
        },
        "set-password" => ConsoleStep::SetPassword,
        "delete-access-keys" => ConsoleStep::DeleteAccessKeys,
        "assign-mfa" => ConsoleStep::AssignMfa,
        "activate-mfa" => {
            let text = read_otp()?;
            let codes: Vec<&str> = text.expose().split_whitespace().collect();
            let [first, second] = codes.as_slice() else {
                anyhow::bail!(
                    "give the two consecutive codes on standard input, separated by a space"
                );
            };
            ConsoleStep::ActivateMfa {
                first: SecretValue::new(first.to_string()),
                second: SecretValue::new(second.to_string()),
            }
        }
        "remove-mfa" => ConsoleStep::RemoveMfa,
        "close-account" => ConsoleStep::CloseAccount,
        "support-reopens" => ConsoleStep::SupportReopens,
        other => anyhow::bail!(
            "--step {other:?} is not a console step: change-email, enter-code, set-password, \
             delete-access-keys, assign-mfa, activate-mfa, remove-mfa, close-account or \
             support-reopens"
        ),
    })
}
