//! The lifecycle commands as an engineer uses them in local mode, run as the real
//! binary: take-over, status, the engineer's completion, break-glass access,
//! release with the customer's code, closure. Only `creds get` may print a
//! secret, and the local run hands codes to a waiting rotation.

use rootmail_tests::rootmail_bin;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const ACCOUNT: &str = "222233334444";

fn rootmail(state: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(rootmail_bin());
    command
        .args(args)
        .args(["--state", state.to_str().unwrap()])
        .args(if ["tickets", "accounts", "audit"].contains(&args[0]) {
            &[][..]
        } else {
            &["--who", "alice"][..]
        })
        .env("ROOTMAIL_VAULT_KEY", KEY)
        .env("ROOT_MAIL_DOMAIN", "root.example-msp.com")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("rootmail runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("rootmail finishes")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn field<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {output}"))
        .split_whitespace()
        .next()
        .unwrap()
}

#[test]
fn an_engineer_takes_an_account_over_uses_it_and_hands_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let transcript = std::cell::RefCell::new(String::new());
    let run = |args: &[&str], stdin: Option<&str>, code: i32| {
        let output = rootmail(state, args, stdin);
        let shown = text(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}:\n{shown}");
        transcript.borrow_mut().push_str(&shown);
        shown
    };

    let started = run(
        &[
            "rotation",
            "start",
            "--account",
            ACCOUNT,
            "--customer",
            "Hooli",
            "--mode",
            "vaulted",
        ],
        None,
        0,
    );
    assert!(started.contains("awaiting_engineer"), "{started}");
    let refused = run(&["rotation", "complete", "--account", ACCOUNT], None, 1);
    assert!(refused.contains("mfa enroll"), "{refused}");
    engineer_assigns_mfa(&run, ACCOUNT);
    let completed = run(&["rotation", "complete", "--account", ACCOUNT], None, 0);
    assert!(completed.contains("active"), "{completed}");

    let status = run(&["rotation", "status", "--account", ACCOUNT], None, 0);
    assert!(status.contains("Phase:    active"), "{status}");
    for action in [
        "take-over started",
        "secret handed over",
        "root credentials vaulted",
        "take-over finished",
    ] {
        assert!(status.contains(action), "{action} missing from\n{status}");
    }

    let no_reason = run(
        &[
            "creds",
            "get",
            "--account",
            ACCOUNT,
            "--reason",
            " ",
            "--ticket",
            "INC-7",
        ],
        None,
        1,
    );
    assert!(no_reason.contains("needs a reason"), "{no_reason}");

    // The one command that prints secrets; nothing else ever shows them.
    let creds = rootmail(
        state,
        &[
            "creds",
            "get",
            "--account",
            ACCOUNT,
            "--reason",
            "payment card update",
            "--ticket",
            "INC-7",
        ],
        None,
    );
    assert!(creds.status.success(), "{}", text(&creds));
    let shown = String::from_utf8_lossy(&creds.stdout).to_string();
    let password = field(&shown, "Password:").to_string();
    let mfa = field(&shown, "MFA code:").to_string();
    assert!(password.len() >= 32, "{shown}");
    assert_eq!(mfa.len(), 6);
    assert!(
        !transcript.borrow().contains(&password),
        "the password leaked before creds get"
    );
    let tickets = run(&["tickets", "list"], None, 0);
    let lifecycle_ticket = tickets
        .lines()
        .find(|l| l.contains("Root credential lifecycle"))
        .and_then(|l| l.split_whitespace().next())
        .expect("a lifecycle ticket")
        .trim_start_matches('#')
        .to_string();
    let ticket = run(&["tickets", "show", &lifecycle_ticket], None, 0);
    assert!(
        ticket.contains("break-glass access to the root user by alice"),
        "{ticket}"
    );
    assert!(ticket.contains("payment card update"));
    assert!(!ticket.contains(&password));

    // Release: AWS mails the code to the customer; a wrong one changes nothing.
    let release = run(
        &[
            "release",
            "--account",
            ACCOUNT,
            "--customer-email",
            "it@hooli.example",
            "--reason",
            "contract ended",
            "--ticket",
            "CHG-42",
        ],
        None,
        0,
    );
    assert!(release.contains("awaiting_customer_otp"), "{release}");
    // Security was told before the root email moved: who, where, why.
    let notices = std::fs::read_dir(state.join("lifecycle/notices"))
        .expect("notices")
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .find(|text| text.contains("release of AWS account"))
        .expect("a release notice");
    for wanted in [
        "it@hooli.example",
        "contract ended",
        "CHG-42",
        "alice started the release",
        "no record",
    ] {
        assert!(notices.contains(wanted), "{wanted}: {notices}");
    }
    let wrong = run(
        &["rotation", "complete", "--account", ACCOUNT, "--otp-stdin"],
        Some("AAAAAA\n"),
        1,
    );
    assert!(wrong.contains("wrong or expired"), "{wrong}");
    let code = customer_code(state);
    let released = run(
        &["rotation", "complete", "--account", ACCOUNT, "--otp-stdin"],
        Some(&code),
        0,
    );
    assert!(released.contains("released"), "{released}");
    // Released, the account is the customer's to close; once they have (in
    // the console), the closure is recorded. AWS Support reopens it: recorded
    // once AWS shows it active, and the account is released again.
    let console = |step: &str| {
        let args = ["simulate", "console", "--account", ACCOUNT, "--step", step];
        run(&args, None, 0)
    };
    let closure = |action: &str, reason: &str, status: i32| {
        run(
            &[action, "--account", ACCOUNT, "--reason", reason],
            None,
            status,
        )
    };
    let theirs = closure("close", "customer left", 1);
    assert!(theirs.contains("released to its customer"), "{theirs}");
    let closing = console("close-account");
    assert!(closing.contains("closing"), "{closing}");
    let closed = closure("close", "customer left", 0);
    assert!(closed.contains("closed"), "{closed}");
    let early = closure("reopen", "customer is back", 1);
    assert!(early.contains("AWS Support"), "{early}");
    let support = console("support-reopens");
    assert!(support.contains("ACTIVE"), "{support}");
    let reopened = closure("reopen", "customer is back", 0);
    assert!(reopened.contains("released"), "{reopened}");
    assert!(!transcript.borrow().contains(&password));
    assert!(!transcript.borrow().contains(&code));
}

/// The console's MFA steps, played on the simulated console: the password
/// set, "Assign MFA device" showing AWS's secret key, the key piped into
/// `mfa enroll`, and the two codes it prints typed back into the console.
fn engineer_assigns_mfa(run: &impl Fn(&[&str], Option<&str>, i32) -> String, account: &str) {
    let console = |step: &str, stdin: Option<&str>| {
        run(
            &["simulate", "console", "--account", account, "--step", step],
            stdin,
            0,
        )
    };
    console("set-password", None);
    let shown = console("assign-mfa", None);
    let key = shown
        .lines()
        .find(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
        .unwrap_or_else(|| panic!("no secret key in {shown}"))
        .to_string();
    let refused = run(
        &["mfa", "enroll", "--account", account],
        Some("not a key!"),
        1,
    );
    assert!(refused.contains("base32"), "{refused}");
    let codes = run(&["mfa", "enroll", "--account", account], Some(&key), 0);
    let first = field(&codes, "MFA code 1:").to_string();
    let second = field(&codes, "MFA code 2:").to_string();
    let activated = console("activate-mfa", Some(&format!("{first} {second}")));
    assert!(activated.contains("MFA device is assigned"), "{activated}");
}

/// The code the simulated AWS mailed to the customer's address.
fn customer_code(state: &Path) -> String {
    let mail = std::fs::read_dir(state.join("simulated-aws/mail"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains("To: it@hooli.example"))
        .expect("the customer's code mail");
    field(&mail, "    Verification code:").to_string()
}

#[test]
fn a_rootless_take_over_needs_no_person_and_has_no_credentials_to_hand_out() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let started = rootmail(
        state,
        &[
            "rotation",
            "start",
            "--account",
            ACCOUNT,
            "--customer",
            "Hooli",
            "--mode",
            "rootless",
        ],
        None,
    );
    assert!(started.status.success(), "{}", text(&started));
    assert!(text(&started).contains("active"));
    let creds = rootmail(
        state,
        &[
            "creds",
            "get",
            "--account",
            ACCOUNT,
            "--reason",
            "x",
            "--ticket",
            "INC-1",
        ],
        None,
    );
    assert_eq!(creds.status.code(), Some(1));
    assert!(text(&creds).contains("rootless"), "{}", text(&creds));
    let again = rootmail(
        state,
        &[
            "rotation",
            "start",
            "--account",
            ACCOUNT,
            "--customer",
            "Hooli",
            "--mode",
            "rootless",
        ],
        None,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("already taken over"),
        "{}",
        text(&again)
    );
}

#[test]
fn without_the_vault_key_the_lifecycle_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(rootmail_bin())
        .args([
            "rotation",
            "start",
            "--account",
            ACCOUNT,
            "--customer",
            "Hooli",
            "--root-domain",
            "root.example-msp.com",
        ])
        .args(["--state", dir.path().to_str().unwrap()])
        .env_remove("ROOTMAIL_VAULT_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("ROOTMAIL_VAULT_KEY"),
        "{}",
        text(&output)
    );
    assert!(text(&output).contains("openssl rand -hex 32"));
}

#[test]
fn an_action_without_a_known_actor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(rootmail_bin())
        .args(["close", "--account", ACCOUNT, "--reason", "customer left"])
        .args(["--state", dir.path().to_str().unwrap()])
        .env("ROOTMAIL_VAULT_KEY", KEY)
        .env_remove("USER")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("--who"), "{}", text(&output));
}

/// A payer account through the console, by the commands an engineer types
/// (issue 15), then the estate and the audit report as an operator reads them.
#[test]
fn a_payer_account_goes_through_the_console_and_shows_in_the_estate_and_the_audit() {
    const PAYER: &str = "555566667777";
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let transcript = std::cell::RefCell::new(String::new());
    let run = |args: &[&str], stdin: Option<&str>, code: i32| {
        let output = rootmail(state, args, stdin);
        let shown = text(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}:\n{shown}");
        transcript.borrow_mut().push_str(&shown);
        shown
    };
    let started = run(
        &[
            "rotation",
            "start",
            "--account",
            PAYER,
            "--customer",
            "Initech",
            "--mode",
            "console",
        ],
        None,
        0,
    );
    assert!(
        started.contains("awaiting_otp") && started.contains("simulate console"),
        "{started}"
    );
    let early = run(
        &[
            "rotation",
            "code",
            "--account",
            PAYER,
            "--reason",
            "take-over",
            "--ticket",
            "CHG-1",
        ],
        None,
        1,
    );
    assert!(early.contains("has not arrived"), "{early}");
    let console = |step: &str, stdin: Option<&str>| {
        run(
            &["simulate", "console", "--account", PAYER, "--step", step],
            stdin,
            0,
        )
    };
    let changed = console("change-email", None);
    assert!(
        changed.contains("otp_received") || changed.contains("mailed 1"),
        "{changed}"
    );
    let read = rootmail(
        state,
        &[
            "rotation",
            "code",
            "--account",
            PAYER,
            "--reason",
            "take-over",
            "--ticket",
            "CHG-1",
        ],
        None,
    );
    assert!(read.status.success(), "{}", text(&read));
    let code = String::from_utf8_lossy(&read.stdout).trim().to_string();
    assert_eq!(code.len(), 6, "{code}");
    let entered = console("enter-code", Some(&code));
    assert!(
        entered.contains("awaiting_engineer"),
        "the AWS mail confirmed it: {entered}"
    );
    engineer_assigns_mfa(&run, PAYER);
    let unattested = run(&["rotation", "complete", "--account", PAYER], None, 1);
    assert!(unattested.contains("--attest"), "{unattested}");
    // The statement is checked against IAM's account summary: the access
    // key the customer left refuses it until it is deleted.
    let attest = [
        "rotation",
        "complete",
        "--account",
        PAYER,
        "--attest",
        "password set, keys deleted",
    ];
    let key_left = run(&attest, None, 1);
    assert!(key_left.contains("still has an access key"), "{key_left}");
    console("delete-access-keys", None);
    let done = run(&attest, None, 0);
    assert!(done.contains("active"), "{done}");

    // The estate, three ways; a member account listed beside it.
    let csv = dir.path().join("accounts.csv");
    std::fs::write(
        &csv,
        "root_email,account_id,customer,status\nroot-888@msp.example,888899990000,Hooli,active\n",
    )
    .unwrap();
    let csv = csv.to_str().unwrap();
    let table = run(&["accounts", "list", "--accounts", csv], None, 0);
    let payer_line = table
        .lines()
        .find(|l| l.starts_with(PAYER))
        .expect("the payer's row");
    for cell in ["Initech", "console", "active"] {
        assert!(payer_line.contains(cell), "{cell} missing: {payer_line}");
    }
    assert!(table.contains("2 account(s)"), "{table}");
    let json = run(
        &["accounts", "list", "--format", "json", "--phase", "active"],
        None,
        0,
    );
    let row: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(row["account_id"], PAYER);
    assert_eq!(row["mode"], "console");
    assert!(
        row["last_aws_mail"].is_u64(),
        "verified AWS mail reached it: {row}"
    );
    let silent = run(
        &[
            "accounts",
            "list",
            "--accounts",
            csv,
            "--silent-for",
            "1d",
            "--format",
            "csv",
        ],
        None,
        0,
    );
    assert!(
        silent.contains("888899990000") && !silent.contains(PAYER),
        "{silent}"
    );
    let bad_phase = run(&["accounts", "list", "--phase", "asleep"], None, 2);
    assert!(bad_phase.contains("not a phase"), "{bad_phase}");

    // The audit report: who did what, why and for which ticket.
    let report = run(&["audit", "--account", PAYER, "--format", "csv"], None, 0);
    assert!(
        report.contains("alice,verification code read,take-over,CHG-1"),
        "{report}"
    );
    for action in [
        "console email change opened",
        "root email change confirmed by AWS mail",
        "MFA device enrolled",
        "root credentials vaulted (attested, checked)",
    ] {
        assert!(report.contains(action), "{action} missing: {report}");
    }
    let unknown = run(&["audit", "--account", "123412341234"], None, 1);
    assert!(unknown.contains("no audit trail"), "{unknown}");
    // The code was printed once, by `rotation code`; never in tickets.
    let tickets = run(&["tickets", "list"], None, 0);
    for id in tickets
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with('#'))
    {
        let shown = run(&["tickets", "show", id.trim_start_matches('#')], None, 0);
        assert!(!shown.contains(&code), "the code reached ticket {id}");
    }

    // A console account's release is the engineer's, in the console: the
    // command sends them there and to `--attest`, not to a code AWS mailed
    // (before: "AWS mailed a code ... --otp-stdin", which is refused).
    let release = run(
        &[
            "release",
            "--account",
            PAYER,
            "--customer-email",
            "cloud@initech.example",
            "--reason",
            "contract ended",
            "--ticket",
            "CHG-9",
        ],
        None,
        0,
    );
    assert!(
        release.contains("--attest") && !release.contains("--otp-stdin"),
        "{release}"
    );
    let waiting = run(&["rotation", "status", "--account", PAYER], None, 0);
    assert!(
        waiting.contains("Release:  to the customer's address above, started")
            && waiting.contains("--cancel"),
        "{waiting}"
    );
    // The customer never answers: the release is withdrawn, on the
    // engineer's word for a console account.
    let cancel = |extra: &[&str], code| {
        let mut args = vec![
            "release",
            "--account",
            PAYER,
            "--cancel",
            "--reason",
            "no answer",
            "--ticket",
            "CHG-9",
        ];
        args.extend_from_slice(extra);
        run(&args, None, code)
    };
    let both = cancel(&["--customer-email", "cloud@initech.example"], 2);
    assert!(both.contains("cannot be used with"), "{both}");
    let unsaid = cancel(&[], 1);
    assert!(unsaid.contains("--attest"), "{unsaid}");
    let cancelled = cancel(&["--attest", "nothing was changed in the console"], 0);
    assert!(cancelled.contains("-> active"), "{cancelled}");
    let report = run(&["audit", "--account", PAYER, "--format", "csv"], None, 0);
    assert!(
        report.contains("release cancelled,no answer,CHG-9"),
        "{report}"
    );
}

/// `accounts list` over 10,000 accounts with lifecycle records: it must stay
/// usable (the figure goes in `make bench`; here only that it is complete).
#[test]
fn the_estate_lists_ten_thousand_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let mut csv = String::from("root_email,account_id,customer,status\n");
    for i in 0..10_000u64 {
        csv.push_str(&format!(
            "root-{i}@msp.example,{:012},Customer {},active\n",
            100_000_000_000 + i,
            i % 97
        ));
    }
    let file = state.join("accounts.csv");
    std::fs::write(&file, csv).unwrap();
    let started = std::time::Instant::now();
    let output = rootmail(
        state,
        &[
            "accounts",
            "list",
            "--accounts",
            file.to_str().unwrap(),
            "--format",
            "json",
        ],
        None,
    );
    let took = started.elapsed();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        10_000
    );
    eprintln!("accounts list: 10,000 accounts in {took:?}");
}

/// The commands that only read (`rotation status`, `accounts list`,
/// `audit`) answer beside a `rootmail run` holding the state directory,
/// as `status` and `tickets` do; a command that writes still waits its turn.
#[test]
fn reading_commands_answer_while_a_run_holds_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let start = |account: &str| {
        rootmail(
            state,
            &[
                "rotation",
                "start",
                "--account",
                account,
                "--customer",
                "Hooli",
                "--mode",
                "rootless",
            ],
            None,
        )
    };
    let started = start(ACCOUNT);
    assert!(started.status.success(), "{}", text(&started));

    let run = rootmail_local::LocalStore::open(state).expect("the run's hold");
    for (args, wanted) in [
        (
            &["rotation", "status", "--account", ACCOUNT][..],
            "take-over started",
        ),
        (&["accounts", "list"][..], ACCOUNT),
        (&["audit", "--account", ACCOUNT][..], "take-over started"),
    ] {
        let output = rootmail(state, args, None);
        let shown = text(&output);
        assert!(output.status.success(), "{args:?}: {shown}");
        assert!(shown.contains(wanted), "{args:?}: {shown}");
    }
    let writer = start("555566667777");
    assert!(
        text(&writer).contains("another rootmail run is using the state directory"),
        "{}",
        text(&writer)
    );
    drop(run);
}
