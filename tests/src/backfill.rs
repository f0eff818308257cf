//! A provider's existing root mail for `rootmail run`: the soak's generated
//! mail (realistic kinds and threads, exact copies, bytes that are not mail)
//! written as one mbox, with the accounts file it belongs to.

use crate::soak::generate::{BadInput, Plan};
use std::io::Write;
use std::path::Path;

/// Writes `plan`'s readable objects, in upload order, as an mbox (mboxrd
/// quoting) and the accounts as CSV. Returns how many messages it wrote.
pub fn write_mailbox(plan: &Plan, mbox: &Path, accounts: &Path) -> usize {
    let mut out = std::io::BufWriter::new(std::fs::File::create(mbox).expect("mbox"));
    let mut written = 0;
    for &i in &plan.upload_order {
        let mail = &plan.objects[i];
        if matches!(mail.bad, Some(BadInput::Oversized | BadInput::Deleted)) {
            continue;
        }
        out.write_all(b"From MAILER-DAEMON Sun Mar  1 00:00:00 2026\n")
            .expect("write");
        for line in mail.raw.split_inclusive(|b| *b == b'\n') {
            let quotes = line.iter().take_while(|b| **b == b'>').count();
            if line[quotes..].starts_with(b"From ") {
                out.write_all(b">").expect("write");
            }
            out.write_all(line).expect("write");
        }
        if !mail.raw.ends_with(b"\n") {
            out.write_all(b"\n").expect("write");
        }
        out.write_all(b"\n").expect("write");
        written += 1;
    }
    out.flush().expect("flush");
    let mut csv = String::from("root_email,account_id,customer,status\n");
    for a in &plan.accounts {
        csv.push_str(&format!(
            "{},{},{},active\n",
            a.root_email.as_str(),
            a.account_id.as_str(),
            a.customer
        ));
    }
    std::fs::write(accounts, csv).expect("accounts");
    written
}

/// What a state directory holds, to compare two runs: ledger rows by status
/// and disposition, and each ticket's thread with its number of comments.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ledger: std::collections::BTreeMap<(String, String), usize>,
    pub tickets: std::collections::BTreeMap<String, usize>,
    pub ticket_count: usize,
}

pub fn outcome(state: &Path) -> Outcome {
    let store = rootmail_local::LocalStore::open(state).expect("state");
    let mut ledger = std::collections::BTreeMap::new();
    for row in store.ledger_rows().expect("ledger") {
        let status = serde_json::to_value(row.status).expect("status");
        let disposition = row.disposition.map_or("none", |d| d.as_str());
        *ledger
            .entry((
                status.as_str().unwrap_or("?").to_string(),
                disposition.to_string(),
            ))
            .or_default() += 1;
    }
    let all = store.tickets().expect("tickets");
    let ticket_count = all.len();
    let tickets = all
        .into_iter()
        .map(|t| (t.thread_key.as_str().to_string(), t.comments.len()))
        .collect();
    Outcome {
        ledger,
        tickets,
        ticket_count,
    }
}
