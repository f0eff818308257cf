//! `rootmail rotation|creds|release|close|simulate`: the root-credential
//! lifecycle, run in-process against the embedded store, the encrypted local
//! vault and the simulated AWS (see `rootmail_local::lifecycle`).
//!
//! Nothing here prints a secret except `creds get`, and only after its audit
//! record is written.

use crate::output::table;
use anyhow::Context as _;
use rootmail_domain::{Account, AccountId, EmailAddress, SecretValue};
use rootmail_lifecycle::steps::{self, AccessRequest, StepOutput, TakeOver};
use rootmail_lifecycle::{AuditLog, LifecycleError, Mode, Rotations};
use rootmail_local::LocalStore;
use rootmail_local::lifecycle::{LocalLifecycle, VaultKey};
use rootmail_local::workflow;
use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

/// What every lifecycle command needs.
pub struct Local<'a> {
    pub state: &'a Path,
    pub who: Option<String>,
}

impl Local<'_> {
    fn who(&self) -> String {
        self.who
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|w| !w.trim().is_empty())
            .unwrap_or_else(|| "unknown".into())
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
        Err(LifecycleError::Refused(reason) | LifecycleError::NotYet(reason)) => {
            eprintln!("rootmail: refused: {reason}");
            Ok(ExitCode::from(1))
        }
        Err(LifecycleError::Port(e)) => Err(e.into()),
    }
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
    pub root_domain: &'a str,
    pub accounts: Option<&'a Path>,
    pub rules: Option<&'a Path>,
}

pub fn start(local: &Local<'_>, args: &Start<'_>) -> anyhow::Result<ExitCode> {
    let mode = Mode::parse(args.mode).ok_or_else(|| {
        anyhow::anyhow!("--mode must be vaulted or rootless, not {:?}", args.mode)
    })?;
    let request = TakeOver {
        account_id: account_id(args.account)?,
        customer: args.customer.to_string(),
        mode,
        root_domain: args.root_domain.to_string(),
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
        if mode == Mode::Vaulted {
            println!(
                "\nWaiting for an engineer: see the lifecycle ticket (rootmail tickets --state {} list),\n\
                 then run `rootmail rotation complete --account {}`.",
                local.state.display(),
                request.account_id
            );
        }
    }))
}

pub fn status(local: &Local<'_>, account: &str) -> anyhow::Result<ExitCode> {
    let account = account_id(account)?;
    let store = LocalStore::open(local.state)?;
    // Reading the records needs no key: they hold references, never secrets.
    let lifecycle = LocalLifecycle::new(
        &store,
        VaultKey::from_hex(&"0".repeat(64)).map_err(anyhow::Error::msg)?,
    );
    let runtime = runtime()?;
    let Some(rotation) = runtime.block_on(Rotations::get(&lifecycle, &account))? else {
        eprintln!("rootmail: account {account} has no lifecycle record");
        return Ok(ExitCode::from(1));
    };
    println!("Account:  {} ({})", rotation.account_id, rotation.customer);
    println!("Mode:     {}", rotation.mode.as_str());
    println!("Phase:    {}", rotation.phase.as_str());
    println!("Root:     {}", rotation.target_email);
    if let Some(kind) = rotation.waiting_for {
        println!("Waiting:  for a {kind} mail");
    }
    let entries = runtime.block_on(AuditLog::entries(&lifecycle, &account))?;
    let rows: Vec<Vec<String>> = entries
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
    Ok(ExitCode::SUCCESS)
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

pub fn complete(local: &Local<'_>, account: &str, otp_stdin: bool) -> anyhow::Result<ExitCode> {
    let account = account_id(account)?;
    let otp = if otp_stdin { Some(read_otp()?) } else { None };
    let (store, key) = open(local.state)?;
    let lifecycle = LocalLifecycle::new(&store, key);
    let result = runtime()?.block_on(workflow::complete(
        &lifecycle,
        &account,
        &local.who(),
        otp.as_ref(),
        now(),
    ));
    outcome(result.map(|trail| print_trail(&trail)))
}

pub struct Access<'a> {
    pub account: &'a str,
    pub reason: &'a str,
    pub ticket: &'a str,
}

pub fn creds_get(local: &Local<'_>, args: &Access<'_>) -> anyhow::Result<ExitCode> {
    let request = AccessRequest {
        account_id: account_id(args.account)?,
        who: local.who(),
        reason: args.reason.to_string(),
        ticket: args.ticket.to_string(),
    };
    let (store, key) = open(local.state)?;
    let lifecycle = LocalLifecycle::new(&store, key);
    let now = now();
    let result = runtime()?.block_on(steps::access(&lifecycle, &request, now));
    outcome(result.map(|grant| {
        eprintln!(
            "Break-glass access recorded for {} (reason: {}; ticket: {}).",
            request.who, request.reason, request.ticket
        );
        if grant.pending {
            eprintln!("These are the PENDING credentials of an unfinished take-over.");
        }
        println!("Root email: {}", grant.root_email);
        println!("Password:   {}", grant.password.expose());
        if let Some(code) = &grant.totp_code {
            println!(
                "MFA code:   {} (valid {} more seconds)",
                code.expose(),
                30 - now % 30
            );
        }
        if let Some(link) = &grant.reset_link {
            println!("Reset link: {}", link.expose());
        }
    }))
}

pub fn release(local: &Local<'_>, account: &str, customer_email: &str) -> anyhow::Result<ExitCode> {
    let account = account_id(account)?;
    let email = EmailAddress::parse(customer_email)?;
    let (store, key) = open(local.state)?;
    let lifecycle = LocalLifecycle::new(&store, key);
    let result = runtime()?.block_on(steps::start_release(
        &lifecycle,
        &account,
        &email,
        &local.who(),
        now(),
    ));
    outcome(result.map(|step| {
        print_trail(std::slice::from_ref(&step));
        println!(
            "\nAWS mailed a code to {email}. When the customer gives it to you, run\n\
             `rootmail rotation complete --account {account} --otp-stdin` and type it."
        );
    }))
}

pub fn close(local: &Local<'_>, account: &str, reason: &str) -> anyhow::Result<ExitCode> {
    let account = account_id(account)?;
    let (store, key) = open(local.state)?;
    let lifecycle = LocalLifecycle::new(&store, key);
    let result = runtime()?.block_on(steps::close(
        &lifecycle,
        &account,
        &local.who(),
        reason,
        now(),
    ));
    outcome(result.map(|step| print_trail(std::slice::from_ref(&step))))
}

/// Local mode only: plays the engineer's console steps on the simulated root user.
pub fn simulate_console(local: &Local<'_>, account: &str) -> anyhow::Result<ExitCode> {
    let account = account_id(account)?;
    let (store, key) = open(local.state)?;
    LocalLifecycle::new(&store, key).simulate_console_steps(&account)?;
    println!("Simulated AWS: account {account}'s root user now has a password and an MFA device.");
    Ok(ExitCode::SUCCESS)
}
