//! `rootmail triage`: the CLI contract other tools depend on (see README).

use crate::Format;
use crate::inputs;
use crate::output::table;
use rootmail_domain::explain::Explanation;
use rootmail_domain::{Context, MailInput, Triage, triage};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One output line: the source path, then the triage decision (and, with
/// `--explain`, why).
#[derive(Serialize)]
struct Report<'a> {
    source: &'a str,
    #[serde(flatten)]
    triage: &'a Triage,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<&'a Explanation>,
}

pub struct Options<'a> {
    pub accounts: Option<&'a Path>,
    pub rules: Option<&'a Path>,
    pub format: Format,
    pub explain: bool,
}

/// The columns of `--format table`, one row a message (see `table_row`).
const TABLE_HEADER: [&str; 8] = [
    "SOURCE",
    "KIND",
    "DISPOSITION",
    "PRIORITY",
    "ACCOUNT",
    "CUSTOMER",
    "SECRETS",
    "THREAD",
];

pub fn run(options: &Options<'_>, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let directory = inputs::directory(options.accounts)?;
    let rules = inputs::rules(options.rules)?;
    let format = options.format;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut rows = Vec::new();
    // Messages are independent: triaged on every core, written in order.
    let decide = |file: &Path, raw: Vec<u8>| {
        let ctx = Context::without_stores(&directory, &rules);
        let source = file.display().to_string();
        let object_name = file.file_name().and_then(|n| n.to_str());
        let input = MailInput {
            raw: &raw,
            origin: &source,
            object_name,
        };
        triage(&input, &ctx)
    };
    let unreadable = inputs::each_message_parallel(paths, decide, |message, decision| {
        let source = message.label().display().to_string();
        let decision = match decision {
            Ok(decision) => decision,
            Err(e) => {
                eprintln!("rootmail: cannot read {source}: {e}");
                return Ok(());
            }
        };
        match format {
            Format::Json => {
                let report = Report {
                    source: &source,
                    triage: &decision,
                    explain: options.explain.then_some(&decision.explanation),
                };
                serde_json::to_writer(&mut out, &report)?;
                writeln!(out)?;
            }
            Format::Table if options.explain => {
                write!(out, "{}", explain_text(&source, &decision))?;
            }
            Format::Table => rows.push(table_row(&source, &decision)),
        }
        Ok(())
    })?;
    if matches!(format, Format::Table) && !options.explain {
        write!(out, "{}", table(&TABLE_HEADER, &rows, 48))?;
    }
    out.flush()?;
    Ok(if unreadable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `--explain --format table`: a few lines per message for a person.
fn explain_text(source: &str, t: &Triage) -> String {
    let e = &t.explanation;
    let mut text = format!("{source}\n  kind:    {} ({})\n", t.kind, e.kind);
    for score in &e.scores {
        text.push_str(&format!(
            "    {:<30} {:>3}\n",
            score.kind.as_str(),
            score.score
        ));
        for signal in &score.signals {
            text.push_str(&format!(
                "      +{:<3} rule {:<3} {}\n",
                signal.weight,
                signal.rule,
                signal.fired.join(" and ")
            ));
        }
    }
    text.push_str(&format!(
        "  account: {}\n  thread:  {} ({})\n\n",
        e.account, t.thread_key, e.thread
    ));
    text
}

fn table_row(source: &str, t: &Triage) -> Vec<String> {
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_string();
    vec![
        source.to_string(),
        t.kind.to_string(),
        t.disposition.as_str().to_string(),
        or_dash(t.priority.map(|p| p.as_str())),
        or_dash(t.account_id.as_ref().map(|a| a.as_str())),
        or_dash(t.customer.as_deref()),
        t.secrets
            .iter()
            .map(|s| s.kind.as_str())
            .collect::<Vec<_>>()
            .join(","),
        t.thread_key.to_string(),
    ]
}
