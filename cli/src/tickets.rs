//! `rootmail tickets list|show`: the embedded ticket system, for people.

use crate::output::{table, utc};
use rootmail_local::LocalStore;
use std::path::Path;
use std::process::ExitCode;

pub fn open(state: &Path) -> anyhow::Result<LocalStore> {
    if !state.join(rootmail_local::db::FILE).is_file() {
        anyhow::bail!(
            "no rootmail state at {} (run `rootmail run --state {} PATH...` first)",
            state.display(),
            state.display()
        );
    }
    // Read beside a run that may be going on (a backfill), without its lock.
    Ok(LocalStore::open_reader(state)?)
}

pub fn list(state: &Path) -> anyhow::Result<ExitCode> {
    let tickets = open(state)?.tickets()?;
    if tickets.is_empty() {
        println!("No tickets in {}.", state.display());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = tickets
        .iter()
        .map(|t| {
            vec![
                format!("#{}", t.id),
                t.priority.as_str().to_string(),
                t.kind.to_string(),
                t.comments.len().to_string(),
                t.subject.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["ID", "PRIORITY", "KIND", "COMMENTS", "SUBJECT"],
            &rows,
            90
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub fn show(state: &Path, id: &str) -> anyhow::Result<ExitCode> {
    let t = open(state)?.ticket(id)?;
    println!("Ticket #{}: {}", t.id, t.subject);
    println!(
        "Priority: {}   Kind: {}   Thread: {}",
        t.priority.as_str(),
        t.kind,
        t.thread_key
    );
    println!(
        "Created: {}   Updated: {}   Comments: {}",
        utc(t.created_at),
        utc(t.updated_at),
        t.comments.len()
    );
    println!("\n{}", t.body);
    internal_note(&t.internal_note);
    for (n, c) in t.comments.iter().enumerate() {
        println!(
            "\n=== Comment {} of {} ({}, {}, {}) ===",
            n + 1,
            t.comments.len(),
            utc(c.created_at),
            c.kind,
            c.priority.as_str()
        );
        println!("{}", c.body);
        internal_note(&c.internal_note);
    }
    Ok(ExitCode::SUCCESS)
}

/// Shown apart, as a ticketing system shows an internal note beside the reply.
fn internal_note(note: &str) {
    if !note.is_empty() {
        println!("\n[internal note]\n{note}");
    }
}
