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

pub fn report(rows: &[LedgerRow], since: u64) -> Report {
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
    let report = report(&rows, since);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
