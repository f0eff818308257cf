//! The `rootmail` command as other tools and people use it.

use rootmail_tests::{corpus_dir, eml_files, known_secrets, relative, rootmail};
use serde_json::Value;

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn triage_prints_one_json_object_per_message_in_input_order() {
    let out = rootmail(&[
        "triage",
        "--accounts",
        "tests/corpus/accounts.csv",
        "tests/corpus",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = lines(&out.stdout);
    let files = eml_files(&corpus_dir());
    assert_eq!(reports.len(), files.len());
    for (report, file) in reports.iter().zip(&files) {
        assert_eq!(
            report["source"].as_str().map(|s| s.replace('\\', "/")),
            Some(format!("tests/corpus/{}", relative(file)))
        );
        for field in [
            "kind",
            "disposition",
            "account_id",
            "customer",
            "priority",
            "thread_key",
            "ticket",
            "secrets",
            "authentication",
            "warnings",
        ] {
            assert!(
                report.get(field).is_some(),
                "{} lacks {field}",
                report["source"]
            );
        }
        let disposition = report["disposition"].as_str().unwrap_or_default();
        assert!(["ticket", "archive", "handoff", "quarantine"].contains(&disposition));
        if let Some(id) = report["account_id"].as_str() {
            assert!(
                id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()),
                "{id}"
            );
        }
        if disposition == "ticket" {
            assert!(
                report["ticket"]["subject"].is_string() && report["ticket"]["body"].is_string()
            );
            assert!(report["priority"].is_string());
        }
        if disposition == "archive" {
            assert!(report["ticket"].is_null() && report["priority"].is_null());
        }
    }
}

#[test]
fn an_unreadable_path_is_reported_and_the_rest_still_triaged() {
    let out = rootmail(&[
        "triage",
        "tests/corpus/billing.statement/01-statement-plain.eml",
        "tests/corpus/does-not-exist.eml",
        "tests/corpus/marketing/01-reinvent-html.eml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read tests/corpus/does-not-exist.eml"),
        "{stderr}"
    );
    let reports = lines(&out.stdout);
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["kind"], "billing.statement");
    assert_eq!(reports[1]["kind"], "marketing");
}

#[test]
fn table_format_is_for_people() {
    let out = rootmail(&[
        "triage",
        "--format",
        "table",
        "--accounts",
        "tests/corpus/accounts.csv",
        "tests/corpus/support.case",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert!(
        rows[0].starts_with("SOURCE") && rows[0].contains("KIND") && rows[0].contains("THREAD")
    );
    let mails = std::fs::read_dir(rootmail_tests::corpus_dir().join("support.case"))
        .expect("the corpus folder")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
        .count();
    assert_eq!(rows.len(), 1 + mails);
    assert!(rows[1].contains("support.case") && rows[1].contains("Acme Corp"));
}

#[test]
fn a_rules_file_replaces_the_built_in_rules_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nkind = \"marketing\"\nfrom = [\"@aws.com\"]\n",
    )
    .expect("write");
    let out = rootmail(&[
        "triage",
        "--rules",
        rules.to_str().unwrap(),
        "tests/corpus/billing.statement/01-statement-plain.eml",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(lines(&out.stdout)[0]["kind"], "marketing");

    std::fs::write(
        &rules,
        "[[rule]]\nkind = \"billing.nope\"\nfrom = [\"@aws.com\"]\n",
    )
    .expect("write");
    let out = rootmail(&[
        "triage",
        "--rules",
        rules.to_str().unwrap(),
        "tests/corpus/billing.statement",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rule 1 (billing.nope): unknown kind"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_bad_accounts_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("accounts.csv");
    std::fs::write(
        &csv,
        "root_email,account_id,customer,status\nroot@x.example,12,C,active\n",
    )
    .expect("write");
    let out = rootmail(&[
        "triage",
        "--accounts",
        csv.to_str().unwrap(),
        "tests/corpus/marketing",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: not a 12-digit AWS account id"),
        "{stderr}"
    );
}

/// No secret value of any fixture reaches stdout or stderr, in any command.
#[test]
fn no_secret_appears_in_any_cli_output() {
    let secrets = known_secrets();
    assert!(
        secrets.len() >= 10,
        "SECRETS.tsv lists {} secrets",
        secrets.len()
    );
    // The search below can fail: corpus.rs proves triage finds every listed
    // value in its fixture, so these are the real secrets of the inputs.

    let state = tempfile::tempdir().expect("tempdir");
    let state_arg = state.path().to_str().expect("utf-8 path");
    let mut outputs = vec![
        rootmail(&[
            "triage",
            "--accounts",
            "tests/corpus/accounts.csv",
            "tests/corpus",
        ]),
        rootmail(&[
            "triage",
            "--format",
            "table",
            "--accounts",
            "tests/corpus/accounts.csv",
            "tests/corpus",
        ]),
        rootmail(&[
            "run",
            "--state",
            state_arg,
            "--accounts",
            "tests/corpus/accounts.csv",
            "tests/corpus",
            "examples/mailbox",
        ]),
        rootmail(&["tickets", "--state", state_arg, "list"]),
    ];
    let listed = String::from_utf8_lossy(&outputs[3].stdout).to_string();
    let ids: Vec<String> = listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|s| s.trim_start_matches('#').to_string())
        .collect();
    assert!(ids.len() > 20, "run made {} tickets", ids.len());
    for id in &ids {
        outputs.push(rootmail(&["tickets", "--state", state_arg, "show", id]));
    }
    for out in &outputs {
        assert!(
            out.status.success(),
            "a command failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.to_lowercase().contains("<script"),
            "active markup in CLI output"
        );
        for (fixture, value) in &secrets {
            assert!(
                !all.contains(value.as_str()),
                "the secret from {fixture} leaked into CLI output"
            );
            let escaped = value.replace('&', "&amp;");
            assert!(
                !all.contains(&escaped),
                "the secret from {fixture} leaked (HTML-escaped)"
            );
        }
    }
    // Nor into anything the local store wrote, except the archived originals:
    // every text of its database, and every other file.
    let store = rootmail_local::LocalStore::open(state.path()).expect("state");
    let mut stored = store.every_text().expect("database texts");
    assert!(stored.len() > 10, "{} records", stored.len());
    drop(store);
    for (path, bytes) in rootmail_tests::leaks::files_under(state.path(), &["archive"]) {
        stored.push(format!("{path}: {}", String::from_utf8_lossy(&bytes)));
    }
    for text in &stored {
        for (fixture, value) in &secrets {
            assert!(
                !text.contains(value.as_str()),
                "the secret from {fixture} is stored: {}",
                text.chars().take(80).collect::<String>()
            );
        }
    }
}

#[test]
fn the_sample_mailbox_runs_once_and_a_second_run_creates_nothing() {
    let state = tempfile::tempdir().expect("tempdir");
    let state_arg = state.path().to_str().expect("utf-8 path");
    let args = [
        "run",
        "--state",
        state_arg,
        "--accounts",
        "examples/accounts.csv",
        "examples/mailbox",
    ];
    let first = rootmail(&args);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        text.contains("9 messages: 5 tickets created, 2 comments, 2 archived, 1 quarantined, 0 handed off, 0 seen before"),
        "{text}"
    );
    let second = rootmail(&args);
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(
        text.contains("9 messages: 0 tickets created, 0 comments, 0 archived, 0 quarantined, 0 handed off, 9 seen before"),
        "{text}"
    );

    let list = rootmail(&["tickets", "--state", state_arg, "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert_eq!(listed.lines().count(), 1 + 5, "{listed}");
    let budget = listed
        .lines()
        .find(|l| l.contains("billing.budget_alert"))
        .expect("the budget ticket");
    assert!(
        budget.contains(" 1 "),
        "the repeat alert is its one comment: {budget}"
    );

    let id = budget
        .split_whitespace()
        .next()
        .expect("an id")
        .trim_start_matches('#');
    let show = rootmail(&["tickets", "--state", state_arg, "show", id]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("=== Comment 1 of 1"), "{shown}");
    assert!(shown.contains("Original message: "), "{shown}");

    let missing = rootmail(&["tickets", "--state", state_arg, "show", "999"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no ticket 999"));
}

#[test]
fn reading_tickets_without_a_state_directory_says_what_to_do() {
    let out = rootmail(&["tickets", "--state", "/nonexistent/rootmail-state", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `rootmail run --state"));
}

/// `triage --explain`: the rules that fired with their weights, the
/// runner-up, and why the account and thread were chosen, in JSON and for
/// people; without the flag the JSON contract has no `explain` field.
#[test]
fn explain_says_which_rules_fired_and_why_the_account_and_thread() {
    // An exposed key reported through a support case: both kinds score.
    let fixture = "tests/corpus/security.exposed_key/22-2017-case-opened-compromised.eml";
    let out = rootmail(&[
        "triage",
        "--explain",
        "--accounts",
        "tests/corpus/accounts.csv",
        fixture,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let explain = &report["explain"];
    assert_eq!(report["kind"], "security.exposed_key");
    let scores = explain["scores"].as_array().expect("scores");
    assert_eq!(scores[0]["kind"], "security.exposed_key");
    assert_eq!(scores[1]["kind"], "support.case", "the runner-up is shown");
    let signals = scores[0]["signals"].as_array().unwrap();
    assert!(
        signals
            .iter()
            .all(|s| s["rule"].as_u64().is_some() && s["weight"].as_i64().is_some())
    );
    let total: i64 = signals.iter().map(|s| s["weight"].as_i64().unwrap()).sum();
    assert_eq!(Value::from(total), scores[0]["score"]);
    assert!(signals.iter().any(|s| {
        s["fired"][0]
            .as_str()
            .is_some_and(|f| f.starts_with("body /"))
    }));
    assert_eq!(explain["threshold"], 5);
    assert!(
        explain["kind"]
            .as_str()
            .unwrap()
            .contains("runner-up support.case")
    );
    assert!(
        explain["account"]
            .as_str()
            .unwrap()
            .contains("SES's envelope recipient")
    );
    assert!(
        explain["thread"]
            .as_str()
            .unwrap()
            .contains("support case 4838201957")
    );

    let table = rootmail(&[
        "triage",
        "--explain",
        "--format",
        "table",
        "--accounts",
        "tests/corpus/accounts.csv",
        fixture,
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("  kind:    security.exposed_key ("), "{text}");
    assert!(text.contains("      +3   rule "), "{text}");
    assert!(
        text.contains("  account: SES's envelope recipient"),
        "{text}"
    );

    let plain = rootmail(&["triage", "--accounts", "tests/corpus/accounts.csv", fixture]);
    let report: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(report.get("explain").is_none());
}

/// The sample mailbox as a provider's existing mail: one mbox file (mboxrd
/// quoting, as mail clients export) and one Maildir. Each run gives what the
/// `.eml` files give, and the same mail again through the other is all seen.
#[test]
fn an_mbox_and_a_maildir_run_like_the_eml_files() {
    let samples = eml_files(&rootmail_tests::workspace_root().join("examples/mailbox"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut mbox = Vec::new();
    let maildir = dir.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for (n, file) in samples.iter().enumerate() {
        let raw = std::fs::read(file).expect("sample");
        mbox.extend_from_slice(b"From MAILER-DAEMON Thu Dec  3 10:00:00 2026\n");
        for line in raw.split_inclusive(|b| *b == b'\n') {
            let quotes = line.iter().take_while(|b| **b == b'>').count();
            if line[quotes..].starts_with(b"From ") {
                mbox.push(b'>');
            }
            mbox.extend_from_slice(line);
        }
        if !raw.ends_with(b"\n") {
            mbox.push(b'\n');
        }
        mbox.push(b'\n');
        let folder = if n % 2 == 0 { "cur" } else { "new" };
        let name = format!("17649{n:05}.M{n}P1.host:2,S");
        std::fs::write(maildir.join(folder).join(name), &raw).unwrap();
    }
    // A delivery still being written is not read.
    std::fs::write(maildir.join("tmp/partial"), b"Subject: half").unwrap();
    let mbox_path = dir.path().join("export.mbox");
    std::fs::write(&mbox_path, &mbox).unwrap();

    let expected = format!(
        "{} messages: 5 tickets created, 2 comments, 2 archived, 1 quarantined, 0 handed off, 0 seen before",
        samples.len()
    );
    let all_seen = format!(
        "{0} messages: 0 tickets created, 0 comments, 0 archived, 0 quarantined, 0 handed off, {0} seen before",
        samples.len()
    );
    for (first, then) in [(&mbox_path, &maildir), (&maildir, &mbox_path)] {
        let state = tempfile::tempdir().expect("tempdir");
        let run = |input: &std::path::Path| {
            let out = rootmail(&[
                "run",
                "--state",
                state.path().to_str().unwrap(),
                "--accounts",
                "examples/accounts.csv",
                input.to_str().unwrap(),
            ]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let text = run(first);
        assert!(text.contains(&expected), "{}: {text}", first.display());
        if first == &mbox_path {
            assert!(
                text.contains("export.mbox#1"),
                "messages named by their place: {text}"
            );
        }
        let text = run(then);
        assert!(text.contains(&all_seen), "{}: {text}", then.display());
    }
}

/// A message larger than SES accepts (40 MiB) is not read into memory: the
/// run records it as an unreadable message (a quarantine row and ticket),
/// goes on with the rest, and says so in its exit code.
#[test]
fn an_oversized_message_is_quarantined_unread_and_the_rest_is_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let sample = rootmail_tests::workspace_root().join("examples/mailbox");
    let first = eml_files(&sample).into_iter().next().expect("a sample");
    std::fs::copy(&first, inbox.join("a.eml")).unwrap();
    let huge = std::fs::File::create(inbox.join("b-huge.eml")).unwrap();
    huge.set_len(41 * 1024 * 1024).unwrap();
    let state = tempfile::tempdir().expect("tempdir");
    let state_arg = state.path().to_str().unwrap();
    let out = rootmail(&["run", "--state", state_arg, inbox.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("b-huge.eml") && stderr.contains("40 MiB"),
        "{stderr}"
    );
    assert!(
        stdout.contains("2 messages:") && stdout.contains("1 quarantined"),
        "{stdout}"
    );
    let list = rootmail(&["tickets", "--state", state_arg, "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("Unreadable message"), "{listed}");

    // Its ledger row is keyed by its bytes, not its path: found again under
    // another name it is seen before (before: a second quarantine and
    // ticket); another message at its old path is one of its own (before:
    // "seen before", no row, no ticket).
    let unreadable_tickets = || {
        let list = rootmail(&["tickets", "--state", state_arg, "list"]);
        String::from_utf8_lossy(&list.stdout)
            .matches("Unreadable message")
            .count()
    };
    std::fs::rename(inbox.join("b-huge.eml"), inbox.join("c-huge.eml")).unwrap();
    let out = rootmail(&["run", "--state", state_arg, inbox.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 quarantined") && stdout.contains("2 seen before"),
        "{stdout}"
    );
    assert_eq!(unreadable_tickets(), 1);
    std::fs::write(inbox.join("b-huge.eml"), vec![b'x'; 41 * 1024 * 1024]).unwrap();
    let out = rootmail(&["run", "--state", state_arg, inbox.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 quarantined") && stdout.contains("2 seen before"),
        "{stdout}"
    );
    assert_eq!(unreadable_tickets(), 2);
}

/// A pipe among the inputs (named like a message or an mbox) would wait for
/// a writer for ever: it is refused unread and the run ends.
#[cfg(unix)]
#[test]
fn a_pipe_among_the_inputs_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["a.eml", "b.mbox"] {
        let path = dir.path().join(name);
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo");
        assert!(made.success());
    }
    let state = tempfile::tempdir().expect("tempdir");
    let out = rootmail(&[
        "run",
        "--state",
        state.path().to_str().unwrap(),
        dir.path().to_str().unwrap(),
        dir.path().join("a.eml").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}
