//! Triage (or only parse) a corpus of `.eml` files many times on one core: a
//! steady load for `perf record` (`make profile-triage`). It prints the time
//! taken; `make bench` is where speed is measured against a baseline.
//!
//! `profile_triage DIR [ROUNDS] [triage|parse|rootmail-parse|prepared]`, with
//! `DIR/accounts.csv`; `parse` is mail-parser's parse alone (the bench's
//! baseline), `rootmail-parse` rootmail's (mail-parser's and what triage
//! reads beside it: the shape check, unfolded headers, text from HTML), and
//! `prepared` what `rootmail run` does on its worker cores for each message
//! (`Prepared::triaged_ahead`: parse, the candidate accounts, triage).

use std::path::{Path, PathBuf};

/// The allocator `rootmail triage` and `rootmail run` use, so the profile
/// is theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn eml_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            eml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "eml") {
            out.push(path);
        }
    }
    Ok(())
}

const USAGE: &str = "usage: profile_triage DIR [ROUNDS] [triage|parse|rootmail-parse|prepared]";

/// The modes, and what the closing line says they did.
const MODES: [(&str, &str); 4] = [
    ("triage", "triaged"),
    ("parse", "parsed"),
    ("rootmail-parse", "parsed"),
    ("prepared", "prepared"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or(USAGE)?);
    let rounds: usize = args.next().map_or(Ok(50), |n| n.parse())?;
    let mode = args.next().unwrap_or_else(|| "triage".to_string());
    let (_, what) = MODES
        .into_iter()
        .find(|(name, _)| *name == mode)
        .ok_or_else(|| format!("no mode {mode:?}; {USAGE}"))?;

    let mut files = Vec::new();
    eml_files(&dir, &mut files)?;
    let mail = files
        .iter()
        .map(std::fs::read)
        .collect::<Result<Vec<_>, _>>()?;
    let directory = rootmail_local::accounts::load(&dir.join("accounts.csv"))?;
    let rules = rootmail_domain::Rules::built_in();
    let ctx = rootmail_domain::Context::without_stores(&directory, &rules);

    let start = std::time::Instant::now();
    for _ in 0..rounds {
        for raw in &mail {
            match mode.as_str() {
                "rootmail-parse" => {
                    std::hint::black_box(rootmail_domain::mail::parse(raw)).ok();
                }
                "parse" => {
                    std::hint::black_box(mail_parser::MessageParser::default().parse(raw));
                }
                "prepared" => {
                    std::hint::black_box(rootmail_pipeline::Prepared::triaged_ahead(
                        raw,
                        "profile",
                        |hash| format!("profile/{hash}"),
                        &directory,
                        &rules,
                    ));
                }
                // "triage": the mode was checked against MODES above.
                _ => {
                    let input = rootmail_domain::MailInput {
                        raw,
                        origin: "profile",
                        object_name: None,
                    };
                    std::hint::black_box(rootmail_domain::triage(&input, &ctx));
                }
            }
        }
    }
    eprintln!(
        "{what} {} messages in {:.2?}",
        rounds * mail.len(),
        start.elapsed()
    );
    Ok(())
}
