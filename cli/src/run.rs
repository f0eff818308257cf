//! `rootmail run`: the whole pipeline on this machine, against the embedded store,
//! with tickets in the store or in a ticketing system (`--backend`).

use crate::inputs;
use crate::mailbox::{MessageRef, TooLarge};
use crate::output::table;
use anyhow::Context as _;
use rootmail_aws::Env;
use rootmail_aws::tickets::backend_settings;
use rootmail_domain::{ContentHash, Disposition, InMemoryDirectory};
use rootmail_lifecycle::handoff::MailHandoffs;
use rootmail_local::LocalStore;
use rootmail_local::lifecycle_store::{LocalLifecycle, VaultKey};
use rootmail_local::workflow;
use rootmail_pipeline::{
    Handoffs, IngestPorts, Ingested, Knowledge, Prepared, TicketSink, Written, ingest_prepared,
    record_unreadable_as, unreadable_key, write_ticket,
};
use rootmail_tickets::{AnyBackend, BackendKind, MarkerKey};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BackendChoice {
    /// Tickets as rows in --state's `rootmail.sqlite3` (`rootmail tickets`
    /// reads them).
    Local,
    Zendesk,
    Jira,
    Rt,
    Webhook,
}

pub struct Inputs<'a> {
    pub accounts: Option<&'a Path>,
    pub rules: Option<&'a Path>,
    pub backend: BackendChoice,
    pub credentials: Option<&'a Path>,
    /// Messages per transaction (see [`GroupCommit`]).
    pub batch_size: usize,
    /// Mail sent before this (seconds since the epoch) is archived only.
    pub since: Option<i64>,
}

/// `YYYY-MM-DD` as the seconds at the start of that day, UTC.
pub fn parse_day(text: &str) -> Result<i64, String> {
    let wrong = || format!("{text:?} is not a day like 2025-01-31");
    let mut parts = text.trim().splitn(3, '-');
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    let (year, month, day) = (
        next().ok_or_else(wrong)?,
        next().ok_or_else(wrong)?,
        next().ok_or_else(wrong)?,
    );
    let year = i32::try_from(year).map_err(|_| wrong())?;
    rootmail_domain::dates::days_from_civil(year, month, day)
        .map(|days| days * 86_400)
        .ok_or_else(wrong)
}

pub fn run(state: &Path, inputs: Inputs<'_>, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let kind = match inputs.backend {
        BackendChoice::Local => None,
        BackendChoice::Zendesk => Some(BackendKind::Zendesk),
        BackendChoice::Jira => Some(BackendKind::Jira),
        BackendChoice::Rt => Some(BackendKind::Rt),
        BackendChoice::Webhook => Some(BackendKind::Webhook),
    };
    let store = LocalStore::open(state)?;
    match kind {
        None => run_with(&store, &store, inputs, paths),
        Some(kind) => {
            let backend = remote_backend(kind, inputs.credentials, state)?;
            run_with(&store, &backend, inputs, paths)
        }
    }
}

/// The backend from the environment, with the kind the flag chose; its marker
/// key from the state directory (made there on first use).
fn remote_backend(
    kind: BackendKind,
    credentials: Option<&Path>,
    state: &Path,
) -> anyhow::Result<AnyBackend> {
    let env = Env::from_fn(|name| match name {
        "TICKET_BACKEND" => Some(kind.as_str().to_string()),
        other => std::env::var(other).ok(),
    });
    let settings = backend_settings(&env, kind)?;
    let credentials = match credentials {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("reading the credentials file {}", file.display()))?,
        ),
        None => std::env::var("TICKET_CREDENTIALS").ok(),
    };
    let key = if kind.writes_markers() {
        Some(MarkerKey::load_or_create(state)?)
    } else {
        None
    };
    Ok(AnyBackend::build(&settings, credentials.as_deref(), key)?)
}

fn run_with<S: TicketSink + Sync>(
    store: &LocalStore,
    sink: &S,
    inputs: Inputs<'_>,
    paths: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let listed = match inputs.accounts {
        Some(path) => rootmail_local::accounts::read(path)?,
        None => Vec::new(),
    };
    // Accounts a local take-over registered join the file's.
    let directory = workflow::directory(&LocalLifecycle::without_vault(store), &listed)?;
    if inputs.accounts.is_none() && directory.is_empty() {
        eprintln!("rootmail: no --accounts file: every message will be for an unknown account");
    }
    let rules = inputs::rules(inputs.rules)?;
    // With the vault's key, a code or reset link a local rotation waits for is
    // handed over to it; without, nothing waits.
    let lifecycle = VaultKey::from_env()
        .ok()
        .map(|key| LocalLifecycle::new(store, key));
    let handoffs = lifecycle.as_ref().map(MailHandoffs);
    let mut knowledge = Knowledge::new(&rules, &handoffs);
    knowledge.ticket_since = inputs.since;
    run_messages(
        store,
        sink,
        (&directory, &knowledge),
        paths,
        inputs.batch_size,
    )
}

fn run_messages<S: TicketSink + Sync, H: Handoffs + Sync>(
    store: &LocalStore,
    sink: &S,
    (directory, knowledge): (&InMemoryDirectory, &Knowledge<'_, H>),
    paths: &[PathBuf],
    batch_size: usize,
) -> anyhow::Result<ExitCode> {
    // The HTTP backends need a Tokio reactor; the local store works on any executor.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let mut tally = Tally::default();
    let mut rows = Rows::default();
    let mut batch = GroupCommit::new(store, batch_size);
    // What needs no store (the hash, the parse, the original's file and a
    // triage on the guess that the stores add nothing) is made on every core;
    // each message is then ingested and written in order, and ingest triages
    // again only where the stores prove the guess wrong.
    let prepare = |file: &Path, raw: Vec<u8>| {
        let source = file.display().to_string();
        let origin = |hash: &_| store.archive_ref(hash);
        let prepared = Prepared::triaged_ahead(&raw, &source, origin, directory, knowledge.rules);
        // Best effort: ingest writes it again if this failed.
        let _ = store.write_ahead(&prepared.hash, &raw);
        (raw, prepared)
    };
    let unreadable = inputs::each_message_parallel(paths, prepare, |message, read| {
        batch.before_message()?;
        let file = &message.label();
        let source = file.display().to_string();
        let ports = (store, sink, directory);
        let processed = process_read(ports, &runtime, knowledge, (message, &source), read);
        let result = tally.count(&processed);
        rows.add(|| row(file, &source, &processed, result));
        batch.after_message(&processed)
    })?;
    batch.commit()?;
    print_summary(store, sink.name(), &rows, &tally);
    Ok(match (tally.failed, unreadable) {
        (0, 0) => ExitCode::SUCCESS,
        (0, _) => ExitCode::from(2),
        _ => ExitCode::from(1),
    })
}

/// A message's line in the run's table: file, result, ticket, kind, subject.
fn row(file: &Path, source: &str, processed: &Processed, result: &str) -> Vec<String> {
    let name = file
        .file_name()
        .map_or(source.to_string(), |n| n.to_string_lossy().into_owned());
    let ticket = processed
        .ticket_id()
        .map_or("-".to_string(), |t| format!("#{t}"));
    let (kind, subject) = match processed {
        Processed::Done { kind, subject, .. } => (kind.clone(), subject.clone()),
        _ => (String::new(), String::new()),
    };
    vec![name, result.to_string(), ticket, kind, subject]
}

/// The run's table: a line per message, up to [`Rows::MOST`] messages.
#[derive(Default)]
struct Rows {
    lines: Vec<Vec<String>>,
    messages: usize,
}

impl Rows {
    /// A backfill's table would hold every message in memory to the end and
    /// fill the screen; above this many messages the run prints its tally, and
    /// the ledger and the tickets have each message (`rootmail status`,
    /// `rootmail tickets`).
    const MOST: usize = 1_000;

    fn add(&mut self, line: impl FnOnce() -> Vec<String>) {
        self.messages += 1;
        if self.messages <= Self::MOST {
            self.lines.push(line());
        } else if !self.lines.is_empty() {
            self.lines = Vec::new();
        }
    }
}

/// The table, the tally, and where the state and the tickets are.
fn print_summary(store: &LocalStore, backend: &str, rows: &Rows, tally: &Tally) {
    if rows.messages <= Rows::MOST {
        print!(
            "{}",
            table(
                &["MESSAGE", "RESULT", "TICKET", "KIND", "SUBJECT"],
                &rows.lines,
                60
            )
        );
    } else {
        println!(
            "(No line per message above {} messages: `rootmail status --state {}` counts them by outcome.)",
            Rows::MOST,
            store.root().display()
        );
    }
    println!("\n{} messages: {tally}", rows.messages);
    match backend {
        "local" => println!(
            "State: {0}   Read the tickets: rootmail tickets --state {0} list",
            store.root().display()
        ),
        backend => println!(
            "State: {}   Tickets are in {backend}.",
            store.root().display()
        ),
    }
}

/// Messages are written in batches, one transaction each: one sync of the
/// database and one of the archived originals per batch instead of several
/// per message. A batch ends after `size` messages or `SECONDS` seconds (a
/// slow ticketing API does not keep a large batch open).
struct GroupCommit<'a> {
    store: &'a LocalStore,
    size: usize,
    open: Option<(usize, std::time::Instant)>,
}

impl<'a> GroupCommit<'a> {
    const SECONDS: u64 = 2;

    fn new(store: &'a LocalStore, size: usize) -> Self {
        Self {
            store,
            size: size.max(1),
            open: None,
        }
    }

    fn before_message(&mut self) -> anyhow::Result<()> {
        if self.open.is_none() {
            self.store.begin_batch()?;
            self.open = Some((0, std::time::Instant::now()));
        }
        Ok(())
    }

    /// Counts `processed` into the batch, and ends the batch when it is full
    /// or old. A handoff is already in the lifecycle's records: its ledger
    /// row is made durable at once, not with the batch, so a crash cannot
    /// leave a secret handed over with no row (the next run, finding no
    /// rotation waiting, would ticket the mail as an alert).
    fn after_message(&mut self, processed: &Processed) -> anyhow::Result<()> {
        if let Processed::Done {
            disposition: Disposition::Handoff,
            ..
        } = processed
        {
            return self.commit();
        }
        if let Some((count, started)) = self.open.as_mut() {
            *count += 1;
            if *count >= self.size || started.elapsed().as_secs() >= Self::SECONDS {
                self.commit()?;
            }
        }
        Ok(())
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        if self.open.take().is_some() {
            self.store.commit_batch()?;
        }
        Ok(())
    }
}

/// What happened to one message.
enum Processed {
    Duplicate {
        ticket: Option<String>,
    },
    Busy,
    Done {
        disposition: Disposition,
        written: Option<Written>,
        kind: String,
        subject: String,
    },
    Failed,
}

impl Processed {
    fn ticket_id(&self) -> Option<&str> {
        match self {
            Self::Duplicate { ticket } => ticket.as_deref(),
            Self::Done { written, .. } => written.as_ref().map(Written::ticket_id),
            Self::Busy | Self::Failed => None,
        }
    }
}

#[derive(Default)]
struct Tally {
    created: usize,
    commented: usize,
    archived: usize,
    quarantined: usize,
    handed_off: usize,
    duplicates: usize,
    busy: usize,
    failed: usize,
}

impl Tally {
    /// Counts the outcome and says it in a few words.
    fn count(&mut self, processed: &Processed) -> &'static str {
        let (disposition, written) = match processed {
            Processed::Duplicate { .. } => {
                self.duplicates += 1;
                return "seen before";
            }
            Processed::Busy => {
                self.busy += 1;
                return "claimed by another run";
            }
            Processed::Failed => {
                self.failed += 1;
                return "FAILED (see above)";
            }
            Processed::Done {
                disposition,
                written,
                ..
            } => (*disposition, written),
        };
        match written {
            Some(Written::Created { .. }) => self.created += 1,
            Some(Written::Commented { .. }) => self.commented += 1,
            None => {}
        }
        match (disposition, written) {
            (Disposition::Quarantine, Some(Written::Created { .. })) => {
                self.quarantined += 1;
                "quarantined, ticket created"
            }
            (Disposition::Quarantine, Some(Written::Commented { .. })) => {
                self.quarantined += 1;
                "quarantined, commented"
            }
            (Disposition::Quarantine, None) => {
                self.quarantined += 1;
                "quarantined"
            }
            (_, Some(Written::Created { .. })) => "ticket created",
            (_, Some(Written::Commented { .. })) => "commented",
            (Disposition::Handoff, None) => {
                self.handed_off += 1;
                "handed off"
            }
            (_, None) => {
                self.archived += 1;
                "archived"
            }
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tickets created, {} comments, {} archived, {} quarantined, {} handed off, {} seen before",
            self.created,
            self.commented,
            self.archived,
            self.quarantined,
            self.handed_off,
            self.duplicates
        )?;
        if self.busy > 0 {
            write!(f, ", {} busy", self.busy)?;
        }
        if self.failed > 0 {
            write!(f, ", {} FAILED", self.failed)?;
        }
        Ok(())
    }
}

fn process<S: TicketSink + Sync, H: Handoffs + Sync>(
    (store, sink, directory): (&LocalStore, &S, &InMemoryDirectory),
    runtime: &tokio::runtime::Runtime,
    knowledge: &Knowledge<'_, H>,
    (raw, prepared, source): (&[u8], Prepared, &str),
) -> anyhow::Result<Processed> {
    let ports = IngestPorts {
        archive: store,
        ledger: store,
        threads: store,
        accounts: directory,
    };
    let ingested = runtime.block_on(ingest_prepared(
        ports,
        knowledge,
        raw,
        prepared,
        source,
        now(),
    ))?;
    Ok(match ingested {
        Ingested::Duplicate(row) => Processed::Duplicate {
            ticket: row.ticket_id,
        },
        Ingested::Busy => Processed::Busy,
        Ingested::Triaged { triage, op, .. } => {
            let ports = store.writer_ports(sink);
            let written = match op {
                Some(op) => Some(runtime.block_on(write_ticket(ports, &op, now()))?),
                None => None,
            };
            let subject = triage
                .ticket
                .as_ref()
                .map(|t| t.subject.clone())
                .or(triage.subject.clone());
            Processed::Done {
                disposition: triage.disposition,
                written,
                kind: triage.kind.to_string(),
                subject: subject.unwrap_or_default(),
            }
        }
    })
}

/// One message in the run's order: ingested and written when it was read,
/// recorded as unreadable when not; a failure is reported and counted.
fn process_read<S: TicketSink + Sync, H: Handoffs + Sync>(
    (store, sink, directory): (&LocalStore, &S, &InMemoryDirectory),
    runtime: &tokio::runtime::Runtime,
    knowledge: &Knowledge<'_, H>,
    (message, source): (&MessageRef, &str),
    read: std::io::Result<(Vec<u8>, Prepared)>,
) -> Processed {
    let outcome = match read {
        Ok((raw, prepared)) => {
            let message = (raw.as_slice(), prepared, source);
            process((store, sink, directory), runtime, knowledge, message)
        }
        Err(e) => {
            eprintln!("rootmail: cannot read {source}: {e}");
            let reason = e.to_string();
            // A message too large to read is known by its bytes, any other by its place.
            let key = e
                .get_ref()
                .and_then(|e| e.downcast_ref::<TooLarge>())
                .map_or_else(|| unreadable_key(&message.place()), TooLarge::ledger_key);
            process_unreadable((store, sink), runtime, knowledge, (source, &reason, key))
        }
    };
    outcome
        .with_context(|| format!("processing {source}"))
        .unwrap_or_else(|e| {
            eprintln!("rootmail: {e:#}");
            Processed::Failed
        })
}

/// A message that could not be read, or was refused unread: a quarantine
/// row in the ledger and its ticket, as mail-ingest records one in AWS.
fn process_unreadable<S: TicketSink + Sync, H: Handoffs + Sync>(
    (store, sink): (&LocalStore, &S),
    runtime: &tokio::runtime::Runtime,
    knowledge: &Knowledge<'_, H>,
    (source, reason, key): (&str, &str, ContentHash),
) -> anyhow::Result<Processed> {
    let recorded = record_unreadable_as(
        store,
        key,
        (source, reason),
        now(),
        knowledge.claim_timeout_secs,
    );
    let (row, op) = runtime.block_on(recorded)?;
    let Some(op) = op else {
        return Ok(Processed::Duplicate {
            ticket: row.ticket_id,
        });
    };
    let ports = store.writer_ports(sink);
    let written = runtime.block_on(write_ticket(ports, &op, now()))?;
    Ok(Processed::Done {
        disposition: Disposition::Quarantine,
        written: Some(written),
        kind: op.kind.to_string(),
        subject: op.subject,
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
