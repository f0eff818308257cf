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
    let (mbox, accounts) = (dir.path().join("old-mail.mbox"), dir.path().join("accounts.csv"));
    let messages = write_mailbox(&plan, &mbox, &accounts);
    assert!(messages > 1_800, "{messages} messages");

    let clean = dir.path().join("clean");
    let done = run(&clean, &accounts, &mbox, "300").output().expect("runs");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let expected = outcome(&clean);
    assert!(expected.ticket_count > 100, "{expected:?}");

    // Killed (SIGKILL: no chance to commit) once the second batch is under
    // way. A kill that lands right after a commit proves nothing about a
    // batch, so that case is tried again.
    let crashed = dir.path().join("crashed");
    let mut inside_a_batch = false;
    for _ in 0..3 {
        let before = archived(&crashed);
        let mut child = run(&crashed, &accounts, &mbox, "300").spawn().expect("spawns");
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

    let resumed = run(&crashed, &accounts, &mbox, "300").output().expect("runs");
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let got = outcome(&crashed);
    assert!(
        got.ledger.keys().all(|(status, _)| status == "done"),
        "every message finished: {:?}",
        got.ledger
    );
    assert_eq!(got.ledger, expected.ledger, "the same ledger as a run without the crash");
    assert_eq!(got.ticket_count, expected.ticket_count, "no ticket twice");
    assert_eq!(got.tickets, expected.tickets, "each thread's ticket with its comments, once");
}
