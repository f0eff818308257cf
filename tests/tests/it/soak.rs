//! The soak (issue 7): generated root mail through S3 -> SQS -> `mail-ingest` ->
//! FIFO -> `ticket-writer` against moto and the stateful Zendesk fake, then a
//! reconciliation of every count (see `tests/src/soak/`).
//!
//! `make soak` runs the full one: 5,000 objects (`SOAK_MESSAGES` to change it),
//! an API that allows 700 requests a minute and fails 10% of them, writers that
//! keep just under that. It is ignored by `make test`, which runs the quick one
//! below: 60 objects without a rate limit, and the proof that the
//! reconciliation catches what it is there to catch.

use rootmail_tests::soak::{self, Settings};

fn messages() -> usize {
    std::env::var("SOAK_MESSAGES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(5000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the soak takes about half an hour: run it with `make soak`"]
async fn soak() {
    let soak = soak::run(Settings::full(messages())).await;
    println!("{}", soak.summary());
    let failures = soak.report.failures();
    assert!(
        failures.is_empty() && !soak.deadline_reached,
        "the soak did not reconcile: {failures:#?}"
    );
}

/// 60 objects through the whole pipeline with 10% of the API's requests
/// failing: everything reconciles. Then the same observations, each changed
/// the way a bug would change them, and the reconciliation says so. Writers
/// run alongside ingest, so a copy can be ingested while its original's
/// operation is written (the race that once left a ledger row `queued`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_soak_reconciles_and_the_reconciliation_catches_mistakes() {
    let soak = soak::run(Settings::quick(60)).await;
    println!("{}", soak.summary());
    assert!(
        soak.report.failures().is_empty(),
        "{:#?}",
        soak.report.failures()
    );

    let check = |what: &str, change: &dyn Fn(&mut soak::Observed), expect: &[&str]| {
        let mut observed = soak.observed.clone();
        change(&mut observed);
        let report = soak::reconcile(&soak.plan, &observed, &soak.settings);
        for check in expect {
            assert!(
                report.failed(check),
                "{what}: `{check}` did not fail:\n{}",
                report.table()
            );
        }
    };
    check(
        "a comment posted twice",
        &|o| {
            let ticket = o
                .tickets
                .iter_mut()
                .find(|t| t.public_comments().len() > 1)
                .expect("a ticket with a comment");
            let again = ticket.comments.last().expect("a comment").clone();
            ticket.comments.push(again);
        },
        &["comments repeating a rootmail-message marker on a ticket"],
    );
    check(
        "a second ticket for a thread",
        &|o| {
            let mut twin = o.tickets[0].clone();
            twin.id = 999_999;
            o.tickets.push(twin);
        },
        &["tickets (one per thread)"],
    );
    check(
        "a lost comment",
        &|o| {
            let ticket = o
                .tickets
                .iter_mut()
                .find(|t| t.public_comments().len() > 1)
                .expect("a ticket with a comment");
            let last = ticket
                .comments
                .iter()
                .rposition(|c| c.public)
                .expect("public");
            ticket.comments.remove(last);
        },
        &[
            "comments after the first (= later mails of a thread)",
            "tickets not holding exactly their thread's mails",
        ],
    );
    check(
        "a comment without its date",
        &|o| {
            let comment = o
                .tickets
                .iter_mut()
                .flat_map(|t| t.comments.iter_mut())
                .find(|c| c.public && c.body.contains("Date: "))
                .expect("a dated comment");
            comment.body = comment.body.replace("Date: ", "Sent: ");
        },
        &["comments without their mail's Date line"],
    );
    check(
        "a message never recorded",
        &|o| {
            o.ledger.pop();
        },
        &[
            "ledger rows (one per distinct object; copies are found)",
            "generated objects without their ledger row",
        ],
    );
    check(
        "a classification gone wrong",
        &|o| {
            let row = o
                .ledger
                .iter_mut()
                .find(|r| r.disposition.map(|d| d.as_str()) == Some("archive"))
                .expect("an archived mail");
            row.disposition = Some(rootmail_domain::Disposition::Ticket);
        },
        &["ledger disposition archive", "ledger disposition ticket"],
    );
    check(
        "an operation in the dead-letter queue",
        &|o| o.ticket_ops_dlq = 1,
        &["ticket-ops DLQ"],
    );
    let limited = Settings {
        api_requests_per_minute: Some(700),
        ..soak.settings.clone()
    };
    let mut hammered = soak.observed.clone();
    hammered.traffic.peak_sent_per_window = 701;
    hammered.traffic.rate_limited = 1;
    let report = soak::reconcile(&soak.plan, &hammered, &limited);
    assert!(report.failed("peak API requests sent in any 60 s window"));
    assert!(report.failed("requests refused by the API's rate limit (429)"));
}
