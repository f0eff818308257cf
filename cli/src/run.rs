//! `rootmail run`: the whole pipeline on this machine, against the embedded store.

use crate::inputs;
use crate::output::table;
use anyhow::Context as _;
use rootmail_domain::{Disposition, NoRotations};
use rootmail_local::LocalStore;
use rootmail_pipeline::{Ingested, Knowledge, Written, ingest, write_ticket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

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

pub fn run(
    state: &Path,
    accounts: Option<&Path>,
    rules: Option<&Path>,
    paths: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let directory = inputs::directory(accounts)?;
    if accounts.is_none() {
        eprintln!("rootmail: no --accounts file: every message will be for an unknown account");
    }
    let rules = inputs::rules(rules)?;
    let store = LocalStore::open(state)?;
    let knowledge = Knowledge {
        directory: &directory,
        rules: &rules,
        rotations: &NoRotations,
    };
    let (files, mut problems) = inputs::message_files(paths);
    for problem in &problems {
        eprintln!("rootmail: {problem}");
    }

    let mut tally = Tally::default();
    let mut rows = Vec::new();
    for file in &files {
        let raw = match std::fs::read(file) {
            Ok(raw) => raw,
            Err(e) => {
                let problem = format!("cannot read {}: {e}", file.display());
                eprintln!("rootmail: {problem}");
                problems.push(problem);
                continue;
            }
        };
        let source = file.display().to_string();
        let outcome = process(&store, &knowledge, &raw, &source)
            .with_context(|| format!("processing {source}"));
        let (what, ticket, kind, subject) = match outcome {
            Ok(Processed::Duplicate { ticket }) => {
                tally.duplicates += 1;
                (
                    "seen before".to_string(),
                    ticket,
                    String::new(),
                    String::new(),
                )
            }
            Ok(Processed::Busy) => {
                tally.busy += 1;
                (
                    "claimed by another run".to_string(),
                    None,
                    String::new(),
                    String::new(),
                )
            }
            Ok(Processed::Done {
                disposition,
                written,
                kind,
                subject,
            }) => {
                let what = match (&written, disposition) {
                    (Some(Written::Created { .. }), Disposition::Quarantine) => {
                        tally.quarantined += 1;
                        tally.created += 1;
                        "quarantined, ticket created"
                    }
                    (Some(Written::Commented { .. }), Disposition::Quarantine) => {
                        tally.quarantined += 1;
                        tally.commented += 1;
                        "quarantined, commented"
                    }
                    (Some(Written::Created { .. }), _) => {
                        tally.created += 1;
                        "ticket created"
                    }
                    (Some(Written::Commented { .. }), _) => {
                        tally.commented += 1;
                        "commented"
                    }
                    (None, Disposition::Quarantine) => {
                        tally.quarantined += 1;
                        "quarantined"
                    }
                    (None, Disposition::Handoff) => {
                        tally.handed_off += 1;
                        "handed off"
                    }
                    (None, _) => {
                        tally.archived += 1;
                        "archived"
                    }
                };
                (
                    what.to_string(),
                    written.map(|w| w.ticket_id().to_string()),
                    kind,
                    subject,
                )
            }
            Err(e) => {
                tally.failed += 1;
                eprintln!("rootmail: {e:#}");
                (
                    "FAILED (see above)".to_string(),
                    None,
                    String::new(),
                    String::new(),
                )
            }
        };
        let name = file
            .file_name()
            .map_or(source.clone(), |n| n.to_string_lossy().into_owned());
        rows.push(vec![
            name,
            what,
            ticket.map_or("-".into(), |t| format!("#{t}")),
            kind,
            subject,
        ]);
    }

    print!(
        "{}",
        table(
            &["MESSAGE", "RESULT", "TICKET", "KIND", "SUBJECT"],
            &rows,
            60
        )
    );
    println!(
        "\n{} messages: {} tickets created, {} comments, {} archived, {} quarantined, {} handed off, {} seen before{}{}",
        rows.len(),
        tally.created,
        tally.commented,
        tally.archived,
        tally.quarantined,
        tally.handed_off,
        tally.duplicates,
        if tally.busy > 0 {
            format!(", {} busy", tally.busy)
        } else {
            String::new()
        },
        if tally.failed > 0 {
            format!(", {} FAILED", tally.failed)
        } else {
            String::new()
        },
    );
    println!(
        "State: {}   Read the tickets: rootmail tickets --state {} list",
        state.display(),
        state.display()
    );
    Ok(if tally.failed > 0 {
        ExitCode::from(1)
    } else if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

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
}

fn process(
    store: &LocalStore,
    knowledge: &Knowledge<'_>,
    raw: &[u8],
    source: &str,
) -> anyhow::Result<Processed> {
    let ingested =
        pollster::block_on(ingest((store, store, store), knowledge, raw, source, now()))?;
    Ok(match ingested {
        Ingested::Duplicate(row) => Processed::Duplicate {
            ticket: row.ticket_id,
        },
        Ingested::Busy => Processed::Busy,
        Ingested::Triaged { triage, op, .. } => {
            let written = match op {
                Some(op) => Some(pollster::block_on(write_ticket(
                    (store, store, store),
                    &op,
                    now(),
                ))?),
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
