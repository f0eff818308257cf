//! Every command README.md shows still works: `make` targets exist, a usage
//! line's flags are the command's own, and the runnable commands run (against
//! a state made by `rootmail run` on the sample mailbox where they name
//! `.rootmail`). A command of another kind fails the test until it is taught.

use rootmail_tests::{rootmail, workspace_root};

/// The commands of README.md's `sh` blocks, continuation lines joined and
/// trailing comments dropped.
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let (mut commands, mut in_block, mut pending) = (Vec::new(), false, String::new());
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block || line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let line = line.split("  #").next().unwrap_or(line).trim();
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

/// Splits a command line into words, keeping a double-quoted argument whole.
fn words(command: &str) -> Vec<String> {
    let (mut out, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in command.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_readme_command_works() {
    let commands = readme_commands();
    assert!(
        commands.len() >= 5,
        "found the README's commands: {commands:?}"
    );
    let makefile = std::fs::read_to_string(workspace_root().join("Makefile")).expect("Makefile");
    let state = tempfile::tempdir().expect("tempdir");
    let state_dir = state.path().display().to_string();
    let sample = rootmail(&[
        "run",
        "--state",
        &state_dir,
        "--accounts",
        "examples/accounts.csv",
        "examples/mailbox",
    ]);
    ok(&sample, "the sample run the commands read");

    for command in &commands {
        let words: Vec<String> = words(command)
            .into_iter()
            .map(|w| w.replace(".rootmail", &state_dir))
            .collect();
        match words.first().map(String::as_str) {
            Some("make") => {
                let target = format!("\n{}:", words[1]);
                assert!(makefile.contains(&target), "{command}: no such make target");
            }
            Some("rootmail") if command.contains('[') => {
                let help = rootmail(&[words[1].as_str(), "--help"]);
                ok(&help, command);
                let help = String::from_utf8_lossy(&help.stdout);
                for flag in words
                    .iter()
                    .filter_map(|w| w.trim_start_matches('[').split(']').next())
                {
                    if flag.starts_with("--") {
                        assert!(
                            help.contains(flag),
                            "{command}: `{flag}` is not in its --help"
                        );
                    }
                }
            }
            Some("rootmail") => {
                let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
                ok(&rootmail(&args), command);
            }
            Some("sqlite3") => {
                let db = rusqlite::Connection::open(&words[1]).expect("the state's database");
                let rows: usize = db
                    .prepare(&words[2])
                    .and_then(|mut query| query.query_map([], |_| Ok(())).map(|rows| rows.count()))
                    .unwrap_or_else(|e| panic!("{command}: {e}"));
                assert!(rows > 0, "{command}: no rows");
            }
            _ => panic!("README command this test cannot check yet: {command}"),
        }
    }
}

#[test]
fn commands_are_read_whole_from_the_readme_s_blocks() {
    assert_eq!(
        words(r#"sqlite3 db "SELECT a, b FROM t" x"#),
        ["sqlite3", "db", "SELECT a, b FROM t", "x"]
    );
    let commands = readme_commands();
    assert!(commands.iter().any(|c| c == "make test"), "{commands:?}");
    assert!(
        commands
            .iter()
            .all(|c| !c.ends_with('\\') && !c.contains("  #")),
        "{commands:?}"
    );
}
