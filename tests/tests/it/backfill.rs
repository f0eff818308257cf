//! A backfill of existing root mail through `rootmail run` (one mbox of
//! generated mail), and a crash in the middle of a batch: the resumed run ends
//! exactly where a run without the crash ends, every message with its ledger
//! row, no ticket or comment twice.

use rootmail_tests::backfill::{outcome, write_mailbox};
use rootmail_tests::rootmail_bin;
use rootmail_tests::soak::generate::Plan;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A backfill of `path` with `--since day`, which must succeed; its state.
fn run_since(state: &Path, accounts: &Path, path: &Path, day: &str) -> rootmail_local::LocalStore {
    let out = run(state, accounts, path, "500")
        .args(["--since", day])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rootmail_local::LocalStore::open(state).expect("state")
}

fn run(state: &Path, accounts: &Path, mbox: &Path, batch: &str) -> Command {
    let mut command = Command::new(rootmail_bin());
    command
        .args(["run", "--state"])
        .arg(state)
        .arg("--accounts")
        .arg(accounts)
        .args(["--batch-size", batch])
        .arg(mbox)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn archived(state: &Path) -> usize {
    std::fs::read_dir(state.join("archive"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

fn committed(state: &Path) -> usize {
    rootmail_local::LocalStore::open(state)
        .expect("state")
        .ledger_rows()
        .expect("ledger")
        .len()
}

#[test]
fn a_crash_in_the_middle_of_a_batch_loses_no_message_and_duplicates_no_ticket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = Plan::generate(2_000, 0xB4C4F111);
    let (mbox, accounts) = (
        dir.path().join("old-mail.mbox"),
        dir.path().join("accounts.csv"),
    );
    let messages = write_mailbox(&plan, &mbox, &accounts);
    assert!(messages > 1_800, "{messages} messages");

    let clean = dir.path().join("clean");
    let done = run(&clean, &accounts, &mbox, "300")
        .stdout(Stdio::piped())
        .output()
        .expect("runs");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // Above a thousand messages the run prints its tally, not a line for
    // each message (which it would hold in memory to the end).
    let printed = String::from_utf8_lossy(&done.stdout);
    assert!(printed.lines().count() < 10, "{printed}");
    assert!(
        printed.contains(&format!("{messages} messages: ")),
        "{printed}"
    );
    let expected = outcome(&clean);
    assert!(expected.ticket_count > 100, "{expected:?}");

    // Killed (SIGKILL: no chance to commit) once the second batch is under
    // way. A kill that lands right after a commit proves nothing about a
    // batch, so that case is tried again.
    let crashed = dir.path().join("crashed");
    let mut inside_a_batch = false;
    for _ in 0..3 {
        let before = archived(&crashed);
        let mut child = run(&crashed, &accounts, &mbox, "300")
            .spawn()
            .expect("spawns");
        let deadline = Instant::now() + Duration::from_secs(300);
        while archived(&crashed) < before + 450 && Instant::now() < deadline {
            if child.try_wait().expect("child").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("kill");
        child.wait().expect("reaped");
        let (files, rows) = (archived(&crashed), committed(&crashed));
        eprintln!("killed: {files} originals archived, {rows} ledger rows committed");
        assert!(rows <= files);
        if rows < files {
            inside_a_batch = true;
            break;
        }
    }
    assert!(inside_a_batch, "no kill landed inside a batch");

    let resumed = run(&crashed, &accounts, &mbox, "300")
        .output()
        .expect("runs");
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let got = outcome(&crashed);
    assert!(
        got.ledger.keys().all(|(status, _)| status == "done"),
        "every message finished: {:?}",
        got.ledger
    );
    assert_eq!(
        got.ledger, expected.ledger,
        "the same ledger as a run without the crash"
    );
    assert_eq!(got.ticket_count, expected.ticket_count, "no ticket twice");
    assert_eq!(
        got.tickets, expected.tickets,
        "each thread's ticket with its comments, once"
    );
}

/// `make backfill`: 100,000 generated messages (BACKFILL_MESSAGES) through an
/// optimised `rootmail run` (ROOTMAIL_BIN), against a baseline in the same
/// run: 5,000 messages committed one at a time (a sync per message, as the
/// store wrote before batches).
#[test]
#[ignore = "minutes of work: run it with `make backfill`"]
fn a_hundred_thousand_messages() {
    let count: usize = std::env::var("BACKFILL_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let timed = |plan: &Plan, name: &str, batch: &str| {
        let (mbox, accounts) = (
            dir.path().join(format!("{name}.mbox")),
            dir.path().join(format!("{name}.csv")),
        );
        let messages = write_mailbox(plan, &mbox, &accounts);
        let state = dir.path().join(name);
        // The mailbox just written, on disk before the clock starts: a
        // batch's syncfs would otherwise flush it inside the timed run (a
        // provider's mailbox is on disk already). Best effort.
        let _ = Command::new("sync").status();
        let started = Instant::now();
        let out = run(&state, &accounts, &mbox, batch).output().expect("runs");
        let seconds = started.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = outcome(&state);
        assert!(got.ledger.keys().all(|(status, _)| status == "done"));
        (messages, got.ledger.values().sum::<usize>(), seconds)
    };
    let (base_messages, _, base_seconds) = timed(&Plan::generate(5_000, 7), "baseline", "1");
    let (messages, rows, seconds) = timed(&Plan::generate(count, 100), "backfill", "500");
    let (rate, base_rate) = (
        messages as f64 / seconds,
        base_messages as f64 / base_seconds,
    );
    println!(
        "\n== backfill: rootmail run over one mbox ({})",
        rootmail_bin().display()
    );
    println!(
        "  {messages:>7} messages (copies included), batches of 500   {seconds:>7.1} s   {rate:>8.0} messages/s   {rows} ledger rows"
    );
    println!(
        "  {base_messages:>7} messages, baseline: one sync per message   {base_seconds:>7.1} s   {base_rate:>8.0} messages/s"
    );
    println!("  batches are {:.1}x the baseline's rate", rate / base_rate);
}

/// `--since`: a backfill tickets only recent mail. Mail sent before the day
/// is archived with the reason in its ledger row, and its thread gets no
/// ticket from it; later mail is ticketed as usual.
#[test]
fn since_archives_older_mail_and_tickets_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = Plan::generate(600, 0x5111CE);
    let (mbox, accounts) = (dir.path().join("old.mbox"), dir.path().join("accounts.csv"));
    write_mailbox(&plan, &mbox, &accounts);
    let all = dir.path().join("all");
    assert!(
        run(&all, &accounts, &mbox, "500")
            .status()
            .expect("runs")
            .success()
    );
    let recent = dir.path().join("recent");
    let store = run_since(&recent, &accounts, &mbox, "2026-03-16");
    let rows = store.ledger_rows().expect("ledger");
    let cut: Vec<_> = rows
        .iter()
        .filter(|r| r.warnings.iter().any(|w| w.contains("backfill's cutoff")))
        .collect();
    assert!(
        cut.len() > 50,
        "{} of {} archived by the cutoff",
        cut.len(),
        rows.len()
    );
    for row in &cut {
        assert_eq!(row.disposition.map(|d| d.as_str()), Some("archive"));
        assert_eq!(row.ticket_id, None);
    }
    let (before, after) = (
        outcome(&all).ticket_count,
        store.tickets().expect("tickets").len(),
    );
    assert!(
        0 < after && after < before,
        "tickets: {after} with --since, {before} without"
    );
    let bad = run(&recent, &accounts, &mbox, "500")
        .args(["--since", "2026-02-30"])
        .output()
        .expect("runs");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a day that does not exist is refused"
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a day like"));
}

/// `--since` goes by when the mail was delivered, not the date its sender
/// wrote: a phishing mail delivered today and dated 2018 is not archived
/// unseen; mail delivered before the day is, whatever its Date says; mail
/// with neither is ticketed, its ledger row saying so.
#[test]
fn since_goes_by_the_delivery_stamp_not_the_senders_date() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = rootmail_tests::corpus_dir();
    let phishing =
        std::fs::read_to_string(corpus.join("phishing.suspected/01-signin-dmarc-fail.eml"))
            .expect("corpus mail");
    let received = |day: &str| {
        format!(
            "Received: from mx.example (mx.example [203.0.113.9])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id r{day}\r\n for root+a7f3k9q2@root.example-msp.com;\r\n {day} 10:00:00 +0000\r\n"
        )
    };
    let dated_2018 = |text: &str| {
        let mut out = String::new();
        for line in text.split_inclusive("\r\n") {
            if line.starts_with("Date:") {
                out.push_str("Date: Mon, 1 Jan 2018 00:00:00 +0000\r\n");
            } else {
                out.push_str(line);
            }
        }
        out
    };
    let mail = dir.path().join("mail");
    std::fs::create_dir(&mail).unwrap();
    let today = format!("{}{}", received("Tue, 3 Mar 2026"), dated_2018(&phishing));
    let old = format!("{}{}", received("Wed, 4 Mar 2020"), dated_2018(&phishing))
        .replace("Message-ID: <", "Message-ID: <old-");
    std::fs::write(mail.join("1-today.eml"), today).unwrap();
    std::fs::write(mail.join("2-old.eml"), old).unwrap();
    // Neither stamp nor date: ticketed, and the ledger says why.
    let undated = "From: someone@example.com\r\nTo: root+a7f3k9q2@root.example-msp.com\r\n\
                   Subject: hello\r\nMessage-ID: <undated@example.com>\r\n\r\nHi\r\n";
    std::fs::write(mail.join("3-undated.eml"), undated).unwrap();
    let state = dir.path().join("state");
    let store = run_since(&state, &corpus.join("accounts.csv"), &mail, "2026-01-01");
    let mut rows = store.ledger_rows().expect("ledger");
    rows.sort_by(|a, b| a.source.cmp(&b.source));
    let dispositions: Vec<_> = rows
        .iter()
        .map(|r| r.disposition.map(|d| d.as_str()))
        .collect();
    assert_eq!(
        dispositions[..2],
        [Some("quarantine"), Some("archive")],
        "{rows:?}"
    );
    assert_ne!(dispositions[2], Some("archive"), "{rows:?}");
    let said = rows[2]
        .warnings
        .iter()
        .any(|w| w.contains("no delivery date to place it by"));
    assert!(said, "{:?}", rows[2].warnings);
}
