//! The soak's reconciliation: every line compares what the generator wrote with
//! what the bucket, the ledger, the queues and the Zendesk fake hold.

use super::Settings;
use super::generate::{BadInput, Outcome, Plan, rfc3339};
use crate::zendesk_fake::{Ticket, Traffic};
use rootmail_pipeline::{LedgerRow, LedgerStatus};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const MARKER: &str = "rootmail-message: ";

/// What the run left behind.
#[derive(Debug, Clone)]
pub struct Observed {
    pub bucket: String,
    pub objects_in_bucket: usize,
    pub ledger: Vec<LedgerRow>,
    pub tickets: Vec<Ticket>,
    pub traffic: Traffic,
    pub inbound_left: usize,
    pub ticket_ops_left: usize,
    pub inbound_dlq: usize,
    pub ticket_ops_dlq: usize,
    /// The writers' metrics.
    pub tickets_created: usize,
    pub comments_added: usize,
    pub repeated_operations: usize,
    /// The ingest metric: messages found finished before.
    pub duplicates_seen: usize,
    /// The most receives of one message: (inbound, ticket-ops).
    pub most_receives: (usize, usize),
    /// What the dead-letter queues hold, one line each (the first ten of each).
    pub dead_letters: Vec<String>,
    /// Ticket-op batches that held a thread another writer was writing.
    pub overlapping_groups: usize,
    /// Records whose receipt handle SQS no longer knew when they were settled
    /// (deleted by another receiver of the same message, or moved to a DLQ).
    pub lost_handles: usize,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Line {
    pub check: &'static str,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub lines: Vec<Line>,
    /// (kind, generated, in the ledger)
    pub kinds: Vec<(String, usize, usize)>,
    pub dead_letters: Vec<String>,
    /// What a person needs to look into a failed line.
    pub notes: Vec<String>,
}

impl Report {
    pub fn failures(&self) -> Vec<&Line> {
        self.lines.iter().filter(|l| !l.ok).collect()
    }

    /// Whether the check named `check` failed.
    pub fn failed(&self, check: &str) -> bool {
        self.lines.iter().any(|l| l.check == check && !l.ok)
    }

    pub fn table(&self) -> String {
        let mut out = String::from("Reconciliation\n");
        out.push_str(&format!(
            "  {:<62} {:>12} {:>12}  {}\n",
            "check", "expected", "actual", ""
        ));
        for line in &self.lines {
            out.push_str(&format!(
                "  {:<62} {:>12} {:>12}  {}\n",
                line.check,
                line.expected,
                line.actual,
                if line.ok { "ok" } else { "FAILED" }
            ));
        }
        out.push_str("\nKinds (distinct objects)\n");
        for (kind, generated, ledger) in &self.kinds {
            out.push_str(&format!("  {kind:<62} {generated:>12} {ledger:>12}\n"));
        }
        if !self.dead_letters.is_empty() {
            out.push_str("\nDead letters\n");
            for line in &self.dead_letters {
                out.push_str(&format!("  {line}\n"));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes\n");
            for line in &self.notes {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out
    }

    fn equal(&mut self, check: &'static str, expected: usize, actual: usize) {
        self.lines.push(Line {
            check,
            expected: expected.to_string(),
            actual: actual.to_string(),
            ok: expected == actual,
        });
    }

    fn at_most(&mut self, check: &'static str, limit: usize, actual: usize) {
        self.lines.push(Line {
            check,
            expected: format!("<= {limit}"),
            actual: actual.to_string(),
            ok: actual <= limit,
        });
    }

    fn at_least_one(&mut self, check: &'static str, actual: usize) {
        self.lines.push(Line {
            check,
            expected: ">= 1".to_string(),
            actual: actual.to_string(),
            ok: actual >= 1,
        });
    }

    fn shown(&mut self, check: &'static str, actual: String) {
        self.lines.push(Line {
            check,
            expected: "-".to_string(),
            actual,
            ok: true,
        });
    }
}

/// The message a comment is for: the marker on its last line.
fn marker_of(body: &str) -> Option<&str> {
    let last = body.trim_end().rsplit('\n').next()?;
    let at = last.find(MARKER)? + MARKER.len();
    // `<hash> <mac>`: the hash names the mail.
    last[at..].split_whitespace().next()
}

/// Whether `code` appears in `text` as a number of its own.
fn shows_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

pub fn reconcile(plan: &Plan, observed: &Observed, settings: &Settings) -> Report {
    let mut report = Report {
        dead_letters: observed.dead_letters.clone(),
        ..Report::default()
    };
    let rows_by_hash: HashMap<&str, &LedgerRow> = observed
        .ledger
        .iter()
        .map(|r| (r.content_hash.as_str(), r))
        .collect();
    let rows_by_source: HashMap<&str, &LedgerRow> = observed
        .ledger
        .iter()
        .map(|r| (r.source.as_str(), r))
        .collect();

    // The ledger key of every distinct object (its delivery key), or for one
    // that cannot be read, the key of its location's row.
    let mut hash_of: HashMap<usize, String> = HashMap::new();
    let mut missing_rows = 0;
    for (i, mail) in plan.originals() {
        let hash = if mail.readable() {
            Some(
                rootmail_pipeline::Prepared::of(&mail.raw)
                    .hash
                    .as_str()
                    .to_string(),
            )
        } else {
            let source = format!("s3://{}/{}", observed.bucket, mail.key);
            rows_by_source
                .get(source.as_str())
                .map(|r| r.content_hash.as_str().to_string())
        };
        match hash.filter(|h| rows_by_hash.contains_key(h.as_str())) {
            Some(hash) => {
                hash_of.insert(i, hash);
            }
            None => missing_rows += 1,
        }
    }
    let mail_of: HashMap<&str, usize> = hash_of.iter().map(|(i, h)| (h.as_str(), *i)).collect();
    let row_of = |i: usize| hash_of.get(&i).and_then(|h| rows_by_hash.get(h.as_str()));

    let distinct = plan.originals().count();
    report.equal(
        "objects in the bucket (written - deleted)",
        plan.objects.len() - plan.bad(BadInput::Deleted),
        observed.objects_in_bucket,
    );
    report.equal(
        "ledger rows (one per distinct object; copies are found)",
        distinct,
        observed.ledger.len(),
    );
    report.equal(
        "generated objects without their ledger row",
        0,
        missing_rows,
    );
    let copied: BTreeSet<usize> = plan.objects.iter().filter_map(|m| m.copy_of).collect();
    let mut not_done = 0;
    for (i, mail) in plan.originals() {
        if let Some(row) = row_of(i)
            && row.status != LedgerStatus::Done
        {
            not_done += 1;
            report.notes.push(format!(
                "not done: {} {} ({:?}, ticket {:?}){}",
                mail.kind,
                row.source,
                row.status,
                row.ticket_id,
                if copied.contains(&i) {
                    "; an exact copy was also delivered"
                } else {
                    ""
                }
            ));
        }
    }
    report.equal("ledger rows not done", 0, not_done);
    for (outcome, check) in [
        (Outcome::Ticket, "ledger disposition ticket"),
        (Outcome::Archive, "ledger disposition archive"),
        (Outcome::Quarantine, "ledger disposition quarantine"),
    ] {
        let expected = plan
            .originals()
            .filter(|(_, m)| m.outcome == outcome)
            .count();
        let actual = observed
            .ledger
            .iter()
            .filter(|r| r.disposition.map(|d| d.as_str()) == Some(outcome.disposition()))
            .count();
        report.equal(check, expected, actual);
    }
    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut wrong_kind = 0;
    for (i, mail) in plan.originals() {
        kinds.entry(mail.kind.to_string()).or_default().0 += 1;
        let found = row_of(i).and_then(|r| r.kind).map(|k| k.as_str());
        if found.is_some_and(|k| k != mail.kind) {
            wrong_kind += 1;
        }
    }
    for row in &observed.ledger {
        let kind = row.kind.map_or("(none)", |k| k.as_str());
        kinds.entry(kind.to_string()).or_default().1 += 1;
    }
    report.kinds = kinds.into_iter().map(|(k, (g, l))| (k, g, l)).collect();
    report.equal("ledger rows of another kind than generated", 0, wrong_kind);

    // Tickets: one per thread, holding exactly the thread's mails.
    let tickets: HashMap<String, &Ticket> = observed
        .tickets
        .iter()
        .map(|t| (t.id.to_string(), t))
        .collect();
    report.equal(
        "tickets (one per thread)",
        plan.threads.len(),
        observed.tickets.len(),
    );
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut split_or_merged = 0;
    for (n, thread) in plan.threads.iter().enumerate() {
        let ids: BTreeSet<String> = thread
            .mails
            .iter()
            .map(|i| {
                row_of(*i)
                    .and_then(|r| r.ticket_id.clone())
                    .unwrap_or_default()
            })
            .collect();
        let one = ids.len() == 1 && ids.iter().all(|id| tickets.contains_key(id));
        let shared = ids.iter().any(|id| owner.insert(id.clone(), n).is_some());
        if !one || shared {
            split_or_merged += 1;
        }
    }
    report.equal(
        "threads not on exactly one ticket of their own",
        0,
        split_or_merged,
    );
    let public: usize = observed
        .tickets
        .iter()
        .map(|t| t.public_comments().len())
        .sum();
    report.equal(
        "comments after the first (= later mails of a thread)",
        plan.later_mails(),
        public.saturating_sub(observed.tickets.len()),
    );
    let private: usize = observed
        .tickets
        .iter()
        .map(|t| t.private_comments().len())
        .sum();
    report.equal(
        "internal notes (one per ticketed mail)",
        plan.ticketed_mails(),
        private,
    );

    let mut repeated_markers = 0;
    let mut foreign = 0;
    let mut undated = 0;
    let mut out_of_order = 0;
    for ticket in &observed.tickets {
        let mut seen: BTreeSet<(bool, &str)> = BTreeSet::new();
        for comment in &ticket.comments {
            if let Some(marker) = marker_of(&comment.body)
                && !seen.insert((comment.public, marker))
            {
                repeated_markers += 1;
            }
        }
        let mails: Vec<Option<usize>> = ticket
            .public_comments()
            .iter()
            .map(|c| marker_of(&c.body).and_then(|m| mail_of.get(m).copied()))
            .collect();
        let threads: BTreeSet<Option<usize>> = mails
            .iter()
            .map(|m| m.and_then(|i| plan.objects[i].thread))
            .collect();
        let exact = match threads.iter().next() {
            Some(Some(thread)) if threads.len() == 1 => {
                let want: BTreeSet<usize> = plan.threads[*thread].mails.iter().copied().collect();
                let have: BTreeSet<usize> = mails.iter().flatten().copied().collect();
                want == have && have.len() == mails.len()
            }
            _ => false,
        };
        if !exact {
            foreign += 1;
        }
        for (comment, mail) in ticket.public_comments().iter().zip(&mails) {
            if let Some(date) = mail.and_then(|i| plan.objects[i].date)
                && !comment.body.contains(&format!("Date: {}", rfc3339(date)))
            {
                undated += 1;
            }
        }
        let dates: Vec<u64> = mails
            .iter()
            .filter_map(|m| m.and_then(|i| plan.objects[i].date))
            .collect();
        if dates.windows(2).any(|w| w[0] > w[1]) {
            out_of_order += 1;
        }
    }
    report.equal(
        "comments repeating a rootmail-message marker on a ticket",
        0,
        repeated_markers,
    );
    report.equal(
        "tickets not holding exactly their thread's mails",
        0,
        foreign,
    );
    report.equal("comments without their mail's Date line", 0, undated);
    let replied = plan.threads.iter().filter(|t| t.mails.len() > 1).count();
    if replied >= 3 {
        report.at_least_one(
            "tickets whose mails were written out of date order",
            out_of_order,
        );
    } else {
        report.shown(
            "tickets whose mails were written out of date order",
            out_of_order.to_string(),
        );
    }
    let quarantined_kinds = ["mail_unparseable", "phishing_suspected"];
    report.equal(
        "quarantine tickets (bad input + phishing)",
        plan.threads
            .iter()
            .filter(|t| t.label == "mail.unparseable" || t.label == "phishing.suspected")
            .count(),
        observed
            .tickets
            .iter()
            .filter(|t| {
                t.tags
                    .iter()
                    .any(|tag| quarantined_kinds.contains(&tag.as_str()))
            })
            .count(),
    );
    let mut leaked = 0;
    for (i, mail) in plan.originals() {
        let (Some(code), Some(ticket)) = (
            &mail.secret,
            row_of(i)
                .and_then(|r| r.ticket_id.as_ref())
                .and_then(|id| tickets.get(id)),
        ) else {
            continue;
        };
        if shows_code(&ticket.subject, code)
            || ticket.comments.iter().any(|c| shows_code(&c.body, code))
        {
            leaked += 1;
        }
    }
    report.equal("verification codes shown in a ticket", 0, leaked);

    report.equal(
        "writer metric TicketsCreated (= tickets)",
        plan.threads.len(),
        observed.tickets_created,
    );
    report.equal(
        "writer metric CommentsAdded (= later mails)",
        plan.later_mails(),
        observed.comments_added,
    );

    let traffic = &observed.traffic;
    match settings.api_requests_per_minute {
        Some(limit) => {
            report.at_most(
                "peak API requests sent in any 60 s window",
                limit,
                traffic.peak_sent_per_window,
            );
            report.equal(
                "requests refused by the API's rate limit (429)",
                0,
                traffic.rate_limited,
            );
        }
        None => {
            report.shown(
                "peak API requests sent in any 60 s window",
                traffic.peak_sent_per_window.to_string(),
            );
            report.shown(
                "requests refused by the API's rate limit (429)",
                traffic.rate_limited.to_string(),
            );
        }
    }
    report.shown(
        "updates refused by the per-ticket limit (429)",
        traffic.update_limited.to_string(),
    );
    let failures = format!("{} / {}", traffic.failed_before, traffic.failed_after);
    if settings.failure_fraction > 0.0 {
        report.lines.push(Line {
            check: "server errors injected (before / after the work)",
            expected: "both >= 1".to_string(),
            ok: traffic.failed_before > 0 && traffic.failed_after > 0,
            actual: failures,
        });
    } else {
        report.shown("server errors injected (before / after the work)", failures);
    }
    report.shown("API requests", traffic.requests.to_string());
    report.shown(
        "copies found already done by ingest (metric Duplicates)",
        observed.duplicates_seen.to_string(),
    );
    report.shown(
        "operations found already written (metric RepeatedOperations)",
        observed.repeated_operations.to_string(),
    );
    report.shown(
        "most receives of one message: inbound / ticket-ops (DLQ: 5)",
        format!(
            "{} / {}",
            observed.most_receives.0, observed.most_receives.1
        ),
    );
    report.equal(
        "threads (FIFO groups) in two writers at once",
        0,
        observed.overlapping_groups,
    );
    // A message delivered twice at once (a standard queue may) and deleted by
    // one receiver, or moved to a DLQ: harmless, the DLQ lines decide.
    report.shown(
        "records settled after SQS forgot their receipt handle",
        observed.lost_handles.to_string(),
    );
    report.equal("inbound DLQ", 0, observed.inbound_dlq);
    report.equal("ticket-ops DLQ", 0, observed.ticket_ops_dlq);
    report.equal(
        "messages left on the queues",
        0,
        observed.inbound_left + observed.ticket_ops_left,
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_codes_are_read_exactly() {
        assert_eq!(
            marker_of("text\n\nrootmail-message: abc123\n"),
            Some("abc123")
        );
        assert_eq!(
            marker_of("text\n\nrootmail-message: abc123 5eed\n"),
            Some("abc123"),
            "the mail's hash, not its MAC"
        );
        assert_eq!(marker_of("rootmail-message: abc\nquoted after"), None);
        assert!(shows_code("enter 615274 now", "615274"));
        assert!(!shows_code("account 9615274123", "615274"));
    }
}
