//! `rootmail accounts list` and `rootmail audit`: the estate and the audit
//! report, read from the local state (`--state`). Both print a table for
//! people, JSON lines for tools, or CSV for a spreadsheet.

use crate::output::{table, utc};
use rootmail_domain::{Account, AccountId};
use rootmail_lifecycle::estate::{EstateFilter, EstateRow, estate, last_accesses};
use rootmail_lifecycle::{AuditEntry, Phase};
use rootmail_local::LocalStore;
use rootmail_local::lifecycle_store::LocalLifecycle;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

pub struct ListArgs<'a> {
    pub state: &'a Path,
    pub accounts: Option<&'a Path>,
    pub phase: Option<&'a str>,
    pub silent_for: Option<u64>,
    pub format: ReportFormat,
    /// `--aws`: read the deployed tables instead of `--state`.
    pub aws: Option<&'a AwsTables>,
}

/// The deployed tables `--aws` reads (the functions' variables, or flags).
#[derive(clap::Args, Debug, Clone)]
pub struct AwsTables {
    #[arg(long, env = "ACCOUNTS_TABLE", default_value = "")]
    pub accounts_table: String,
    #[arg(long, env = "ROTATIONS_TABLE", default_value = "")]
    pub rotations_table: String,
    #[arg(long, env = "AUDIT_TABLE", default_value = "")]
    pub audit_table: String,
    #[arg(long, env = "LEDGER_TABLE", default_value = "")]
    pub ledger_table: String,
}

/// What the estate is made of, from wherever it is kept.
#[derive(Default)]
struct Records {
    accounts: Vec<Account>,
    rotations: Vec<rootmail_lifecycle::Rotation>,
    audit: Vec<AuditEntry>,
    /// Account id -> when verified AWS mail last reached it (seconds).
    last_mail: HashMap<String, u64>,
}

fn local_records(state: &Path, listed: Option<&Path>) -> anyhow::Result<Records> {
    let store = LocalStore::open_to_read(state)?;
    let lifecycle = LocalLifecycle::without_vault(&store);
    let mut accounts: Vec<Account> = match listed {
        Some(path) => rootmail_local::accounts::read(path)?,
        None => Vec::new(),
    };
    accounts.extend(lifecycle.registered_accounts()?);
    let mut last_mail: HashMap<String, u64> = HashMap::new();
    for row in store.ledger_rows()? {
        if let (true, Some(account)) = (row.from_aws, row.account_id) {
            let at = last_mail.entry(account).or_default();
            *at = (*at).max(row.claimed_at);
        }
    }
    Ok(Records {
        accounts,
        rotations: lifecycle.all_rotations()?,
        audit: lifecycle.all_audit_entries()?,
        last_mail,
    })
}

/// The tables, each read with a paginated Scan (an operator's report: it
/// reads every row once). Task tokens stay sealed: nothing here needs them.
async fn aws_records(tables: &AwsTables) -> anyhow::Result<Records> {
    use rootmail_aws::dynamo::{from_item, scan_items};
    for (flag, value) in [
        ("--accounts-table (ACCOUNTS_TABLE)", &tables.accounts_table),
        (
            "--rotations-table (ROTATIONS_TABLE)",
            &tables.rotations_table,
        ),
        ("--audit-table (AUDIT_TABLE)", &tables.audit_table),
        ("--ledger-table (LEDGER_TABLE)", &tables.ledger_table),
    ] {
        anyhow::ensure!(!value.is_empty(), "give {flag} with --aws");
    }
    let aws = rootmail_aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let accounts = rootmail_aws::DynamoAccounts::new(client.clone(), &tables.accounts_table)
        .all()
        .await?;
    let mut rotations = Vec::new();
    for item in scan_items(&client, &tables.rotations_table, None, None).await? {
        let mut rotation: rootmail_lifecycle::Rotation = from_item("rotations", item)?;
        rotation.task_token = None;
        rotations.push(rotation);
    }
    let audit = aws_audit(&tables.audit_table).await?;
    let mut last_mail: HashMap<String, u64> = HashMap::new();
    {
        let only_aws = (
            "from_aws = :yes",
            HashMap::from([(
                ":yes".to_string(),
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )]),
        );
        let rows = scan_items(
            &client,
            &tables.ledger_table,
            Some("account_id, claimed_at"),
            Some(only_aws),
        )
        .await?;
        for item in rows {
            let account = item.get("account_id").and_then(|v| v.as_s().ok());
            let at = item
                .get("claimed_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok());
            if let (Some(account), Some(at)) = (account, at) {
                let latest = last_mail.entry(account.clone()).or_default();
                *latest = (*latest).max(at);
            }
        }
    }
    Ok(Records {
        accounts,
        rotations,
        audit,
        last_mail,
    })
}

/// The whole audit table (a paginated Scan).
async fn aws_audit(table: &str) -> anyhow::Result<Vec<AuditEntry>> {
    anyhow::ensure!(
        !table.is_empty(),
        "give --audit-table (AUDIT_TABLE) with --aws"
    );
    let aws = rootmail_aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    Ok(rootmail_aws::dynamo::scan_items(&client, table, None, None)
        .await?
        .into_iter()
        .map(|item| rootmail_aws::dynamo::from_item("audit", item))
        .collect::<Result<Vec<AuditEntry>, _>>()?)
}

fn records(
    state: &Path,
    listed: Option<&Path>,
    aws: Option<&AwsTables>,
) -> anyhow::Result<Records> {
    match aws {
        Some(tables) => crate::ops::block_on(aws_records(tables)),
        None => local_records(state, listed),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `accounts list`: every account of the directory (the `--accounts` file and
/// what the lifecycle registered) and every account with a lifecycle record.
pub fn list(args: &ListArgs<'_>) -> anyhow::Result<ExitCode> {
    let phase = match args.phase {
        Some(text) => Some(Phase::parse(text).ok_or_else(|| {
            let all: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
            anyhow::anyhow!("--phase {text:?} is not a phase: {}", all.join(", "))
        })?),
        None => None,
    };
    let Records {
        accounts,
        rotations,
        audit,
        last_mail,
    } = records(args.state, args.accounts, args.aws)?;
    let filter = EstateFilter {
        phase,
        silent_for: args.silent_for,
        now: now(),
    };
    let rows = estate(
        &accounts,
        &rotations,
        &last_mail,
        &last_accesses(&audit),
        filter,
    );
    print_estate(&rows, args.format, filter.now)?;
    Ok(ExitCode::SUCCESS)
}

fn print_estate(rows: &[EstateRow], format: ReportFormat, now: u64) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        ReportFormat::Json => {
            for row in rows {
                writeln!(out, "{}", serde_json::to_string(row)?)?;
            }
        }
        ReportFormat::Csv | ReportFormat::Table => {
            let header = [
                "ACCOUNT",
                "CUSTOMER",
                "PAYER",
                "ROOT EMAIL",
                "STATUS",
                "MODE",
                "PHASE",
                "LAST AWS MAIL",
                "LAST ACCESS",
                "WAITING FOR",
                "WAITING",
            ];
            let cells: Vec<Vec<String>> = rows.iter().map(|r| estate_cells(r, now)).collect();
            if matches!(format, ReportFormat::Csv) {
                write_csv(&mut out, &header, &cells)?;
            } else {
                write!(out, "{}", table(&header, &cells, 60))?;
                writeln!(out, "{} account(s)", rows.len())?;
            }
        }
    }
    Ok(())
}

fn estate_cells(r: &EstateRow, now: u64) -> Vec<String> {
    let dash = || "-".to_string();
    vec![
        r.account_id.to_string(),
        r.customer.clone(),
        r.payer.as_ref().map_or_else(dash, ToString::to_string),
        r.root_email.clone(),
        r.status.clone(),
        r.mode.map_or_else(dash, |m| m.as_str().to_string()),
        r.phase.map_or_else(dash, |p| p.as_str().to_string()),
        r.last_aws_mail.map_or_else(|| "never".into(), utc),
        r.last_access.as_ref().map_or_else(dash, |a| {
            format!(
                "{} by {} ({})",
                utc(a.at),
                a.who,
                a.reason.as_deref().unwrap_or("-")
            )
        }),
        r.waiting_for.clone().unwrap_or_else(dash),
        r.waiting_since
            .map_or_else(dash, |since| age(now.saturating_sub(since))),
    ]
}

/// A duration as people say it: 45s, 12m, 5h, 3d.
fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// RFC 4180 through the csv crate: a field with a comma, quote or line break
/// is quoted, quotes doubled; the header in lower case.
fn write_csv(
    out: &mut impl std::io::Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(header.iter().map(|h| h.to_lowercase()))?;
    for row in rows {
        writer.write_record(row)?;
    }
    writer.flush()?;
    Ok(())
}

pub struct AuditArgs<'a> {
    pub aws: Option<&'a AwsTables>,
    pub state: &'a Path,
    pub account: Option<&'a str>,
    pub since: Option<u64>,
    pub format: ReportFormat,
}

/// `audit`: every lifecycle action and every access, oldest first, with who,
/// why and the ticket. An account with no trail is refused (exit 1).
pub fn audit(args: &AuditArgs<'_>) -> anyhow::Result<ExitCode> {
    let account = args.account.map(AccountId::parse).transpose()?;
    let all = match args.aws {
        Some(tables) => crate::ops::block_on(aws_audit(&tables.audit_table))?,
        None => {
            let store = LocalStore::open_to_read(args.state)?;
            LocalLifecycle::without_vault(&store).all_audit_entries()?
        }
    };
    let mut entries: Vec<AuditEntry> = all
        .into_iter()
        .filter(|e| account.as_ref().is_none_or(|a| e.account_id == *a))
        .collect();
    if let (Some(account), true) = (&account, entries.is_empty()) {
        eprintln!(
            "rootmail: refused: account {account} has no audit trail here (never taken over?)"
        );
        return Ok(ExitCode::from(1));
    }
    if let Some(window) = args.since {
        let from_ms = now().saturating_sub(window) * 1000;
        entries.retain(|e| e.at >= from_ms);
    }
    entries.sort_by(|a, b| (a.at, &a.account_id).cmp(&(b.at, &b.account_id)));
    write_audit(&entries, args.format)?;
    Ok(ExitCode::SUCCESS)
}

/// The audit entries on standard output, as a table, CSV or JSON lines.
fn write_audit(entries: &[AuditEntry], format: ReportFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let header = [
        "WHEN (UTC)",
        "ACCOUNT",
        "WHO",
        "ACTION",
        "REASON",
        "TICKET",
        "DETAIL",
    ];
    let cells: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                utc(e.at / 1000),
                e.account_id.to_string(),
                e.actor.clone(),
                e.action.clone(),
                e.reason.clone().unwrap_or_default(),
                e.ticket.clone().unwrap_or_default(),
                e.detail.clone(),
            ]
        })
        .collect();
    match format {
        ReportFormat::Json => {
            for e in entries {
                writeln!(out, "{}", serde_json::to_string(e)?)?;
            }
        }
        ReportFormat::Csv => write_csv(&mut out, &header, &cells)?,
        ReportFormat::Table => {
            write!(out, "{}", table(&header, &cells, 70))?;
            writeln!(
                out,
                "{} entr{}",
                entries.len(),
                if entries.len() == 1 { "y" } else { "ies" }
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut out = Vec::new();
        write_csv(
            &mut out,
            &["A", "B"],
            &[vec!["plain".into(), "with, comma and \"quote\"".into()]],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b\nplain,\"with, comma and \"\"quote\"\"\"\n"
        );
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(
            [age(5), age(120), age(7_200), age(172_800)],
            ["5s", "2m", "2h", "2d"]
        );
    }
}
