//! `rootmail status`: what the pipeline did over a time window, from the ledger.

use crate::output::table;
use anyhow::Context as _;
use rootmail_aws::DynamoLedger;
use rootmail_pipeline::{LedgerRow, LedgerStatus};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// A window like `30m`, `24h`, `7d` or `3600s`, in seconds.
pub fn parse_window(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a window like 30m, 24h or 7d"))?;
    let unit_secs = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    Ok(n.saturating_mul(unit_secs))
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub since: u64,
    pub messages: usize,
    pub by_status: BTreeMap<String, usize>,
    pub by_disposition: BTreeMap<String, usize>,
    pub by_kind: BTreeMap<String, usize>,
    /// Rows that say why they could not be finished.
    pub failures: Vec<Failure>,
    /// Rows left unfinished longer than the pipeline takes, with no failure
    /// written: nothing lost, but waiting on an operator (see [`Unfinished`]).
    pub unfinished: Vec<Unfinished>,
}

/// A message claimed by a run that stopped, or whose ticket operation no
/// writer finished: after ten receives SQS moves an operation to the
/// ticket-ops DLQ itself (a ticket API down for hours, or the operations
/// of a thread held behind one that fails), and no writer records that.
#[derive(Debug, Serialize)]
pub struct Unfinished {
    pub source: String,
    pub status: String,
    /// When ingest claimed it (seconds since the epoch).
    pub claimed_at: u64,
    pub what_to_do: &'static str,
}

/// Longer than a queued operation takes when the ticket API answers.
pub const QUEUED_TOO_LONG_SECS: u64 = 3600;

const REPLAY_DLQ: &str =
    "find it in the ticket-ops DLQ: rootmail replay --dlq URL --ticket-ops-queue URL";
const REPLAY_OBJECT: &str = "its run stopped: a redelivered event takes it over; else rootmail replay --bucket B --prefix P --inbound-queue URL";
/// A local run writes its tickets itself: one that stopped left the rest.
const RUN_AGAIN: &str = "its run stopped: rootmail run over the same mail finishes it";

/// What an operator does about `row`, when it is unfinished for longer
/// than the pipeline takes (in AWS, or `local`ly).
fn unfinished(row: &LedgerRow, now: u64, local: bool) -> Option<&'static str> {
    let age = now.saturating_sub(row.claimed_at);
    let stale = match row.status {
        LedgerStatus::Claimed => rootmail_pipeline::DEFAULT_STALE_CLAIM_SECS,
        LedgerStatus::Queued => QUEUED_TOO_LONG_SECS,
        LedgerStatus::Done => return None,
    };
    if row.failure.is_some() || age <= stale {
        return None;
    }
    Some(match row.status {
        _ if local => RUN_AGAIN,
        LedgerStatus::Queued => REPLAY_DLQ,
        _ => REPLAY_OBJECT,
    })
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub source: String,
    pub status: String,
    pub reason: String,
}

fn status_name(status: LedgerStatus) -> &'static str {
    match status {
        LedgerStatus::Claimed => "claimed",
        LedgerStatus::Queued => "queued",
        LedgerStatus::Done => "done",
    }
}

pub fn report(rows: &[LedgerRow], since: u64, now: u64, local: bool) -> Report {
    let mut report = Report {
        since,
        messages: rows.len(),
        ..Report::default()
    };
    for row in rows {
        *report
            .by_status
            .entry(status_name(row.status).to_string())
            .or_default() += 1;
        let disposition = row.disposition.map_or("undecided", |d| d.as_str());
        *report
            .by_disposition
            .entry(disposition.to_string())
            .or_default() += 1;
        let kind = row.kind.map_or("undecided", |k| k.as_str());
        *report.by_kind.entry(kind.to_string()).or_default() += 1;
        if let Some(what_to_do) = unfinished(row, now, local) {
            report.unfinished.push(Unfinished {
                source: row.source.clone(),
                status: status_name(row.status).to_string(),
                claimed_at: row.claimed_at,
                what_to_do,
            });
        }
        if let Some(reason) = &row.failure {
            report.failures.push(Failure {
                source: row.source.clone(),
                status: status_name(row.status).to_string(),
                reason: reason.clone(),
            });
        }
    }
    report
}

/// Where the ledger is: a DynamoDB table, or a local state directory.
pub enum Source<'a> {
    Table(&'a str),
    State(&'a std::path::Path),
}

pub async fn run(source: Source<'_>, window_secs: u64, json: bool) -> anyhow::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let since = now.saturating_sub(window_secs);
    let local = matches!(source, Source::State(_));
    let rows = match source {
        Source::Table(table_name) => {
            let aws = rootmail_aws::sdk_config().await;
            let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&aws), table_name);
            ledger
                .rows_since(since)
                .await
                .with_context(|| format!("reading ledger table {table_name}"))?
        }
        // A query on the ledger's claimed_at index.
        Source::State(state) => crate::tickets::open(state)?.ledger_rows_since(since)?,
    };
    let report = report(&rows, since, now, local);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report);
    }
    Ok(())
}

/// The report as tables: the counts, then what needs an operator.
fn print_tables(report: &Report) {
    let since = report.since;
    println!(
        "{} messages since {}",
        report.messages,
        crate::output::utc(since)
    );
    let counts = |title: &str, map: &BTreeMap<String, usize>| {
        let rows: Vec<Vec<String>> = map
            .iter()
            .map(|(k, v)| vec![k.clone(), v.to_string()])
            .collect();
        format!("\n{}", table(&[title, "messages"], &rows, 60))
    };
    print!("{}", counts("status", &report.by_status));
    print!("{}", counts("disposition", &report.by_disposition));
    print!("{}", counts("kind", &report.by_kind));
    if !report.failures.is_empty() {
        let rows: Vec<Vec<String>> = report
            .failures
            .iter()
            .map(|f| vec![f.source.clone(), f.status.clone(), f.reason.clone()])
            .collect();
        print!(
            "\n{}",
            table(&["failed message", "status", "reason"], &rows, 90)
        );
    }
    if !report.unfinished.is_empty() {
        let rows: Vec<Vec<String>> = (report.unfinished.iter())
            .map(|u| {
                let since = match u.claimed_at {
                    0 => "released after a failure".to_string(),
                    at => crate::output::utc(at),
                };
                vec![
                    u.source.clone(),
                    u.status.clone(),
                    since,
                    u.what_to_do.into(),
                ]
            })
            .collect();
        let titles = ["unfinished message", "status", "claimed", "what to do"];
        print!("\n{}", table(&titles, &rows, 90));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows the pipeline left unfinished for longer than it takes are
    /// listed with what to do; younger ones, finished ones and ones that
    /// say why they failed are not.
    #[test]
    fn rows_unfinished_for_too_long_are_listed_with_what_to_do() {
        use rootmail_domain::ContentHash;
        let now = 100_000;
        let row = |name: &str, status, age: u64| {
            let hash = ContentHash::of(name.as_bytes());
            let mut row = LedgerRow::claimed(&hash, name, now - age);
            row.status = status;
            row
        };
        let mut failed = row("failed", LedgerStatus::Queued, 7200);
        failed.failure = Some("refused by the ticket API".into());
        let rows = [
            row("buried", LedgerStatus::Queued, QUEUED_TOO_LONG_SECS + 1),
            row("writing", LedgerStatus::Queued, 600),
            row("dead run", LedgerStatus::Claimed, 3600),
            row("running", LedgerStatus::Claimed, 60),
            row("done", LedgerStatus::Done, 86_400),
            failed,
        ];
        let listed = |local| {
            let report = report(&rows, 0, now, local);
            assert_eq!(report.failures.len(), 1);
            (report.unfinished.iter())
                .map(|u| (u.source.clone(), u.what_to_do))
                .collect::<Vec<_>>()
        };
        let named = |a: &str, b| (a.to_string(), b);
        assert_eq!(
            listed(false),
            [
                named("buried", REPLAY_DLQ),
                named("dead run", REPLAY_OBJECT)
            ]
        );
        assert_eq!(
            listed(true),
            [named("buried", RUN_AGAIN), named("dead run", RUN_AGAIN)]
        );
    }

    #[test]
    fn windows_parse_with_units() {
        assert_eq!(parse_window("30m"), Ok(1800));
        assert_eq!(parse_window("24h"), Ok(86_400));
        assert_eq!(parse_window("7d"), Ok(604_800));
        assert_eq!(parse_window("90"), Ok(90));
        assert!(parse_window("1w").is_err());
        assert!(parse_window("h").is_err());
    }
}
