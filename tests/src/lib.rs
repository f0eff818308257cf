//! Shared helpers for the integration tests and benchmarks: where the corpus is,
//! what it contains, and how to run the `rootmail` binary.

use rootmail_domain::InMemoryDirectory;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The checkout the tests run in. Read when they run, from the manifest
/// directory cargo gives the running test: `env!` would give the one this
/// crate was compiled in, and a target directory shared between checkouts
/// (`.ci/run` reuses one) keeps a crate that did not change as another
/// checkout compiled it, with that checkout's path, which may be gone.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or_else(|| panic!("no Cargo.lock above {}", manifest_dir.display()))
        .to_path_buf()
}

pub fn corpus_dir() -> PathBuf {
    workspace_root().join("tests").join("corpus")
}

pub fn corpus_accounts() -> PathBuf {
    corpus_dir().join("accounts.csv")
}

pub fn directory() -> InMemoryDirectory {
    rootmail_local::accounts::load(&corpus_accounts()).expect("corpus accounts.csv loads")
}

/// The corpus written from the design brief (fixtures numbered below 20; the
/// ones from 21 on are modelled on real AWS mail, `SOURCES.md`). The tests
/// that run every mail through the pipeline many times (crash points, a flaky
/// API, Request Tracker) use these; the corpus, golden, leak and pipeline
/// tests use every fixture.
pub fn design_corpus(dir: &Path) -> Vec<PathBuf> {
    eml_files(dir)
        .into_iter()
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let number: Option<u32> = name.get(..2).and_then(|n| n.parse().ok());
            number.is_none_or(|n| n < 20)
        })
        .collect()
}

/// Every `.eml` under `dir`, sorted by path (the order `rootmail triage` uses).
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("corpus directory is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "eml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A corpus path as the tests name it: relative to the corpus folder, `/`-separated.
pub fn relative(path: &Path) -> String {
    path.strip_prefix(corpus_dir())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// `(fixture, secret value)` for every secret the corpus and the sample mailbox hold.
pub fn known_secrets() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(corpus_dir().join("SECRETS.tsv")).expect("SECRETS.tsv is readable");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (path, value) = l
                .split_once('\t')
                .expect("SECRETS.tsv lines are path<TAB>value");
            (path.to_string(), value.to_string())
        })
        .collect()
}

/// `raw` (a message SES stored) as SES stores another delivery of it, sent
/// again by the sender from another server: a new SES message id in its
/// `Received` header, a new receipt and signature, another sending address
/// and host name wherever SES wrote them. The message itself, its recipient
/// and SES's verdicts stay the same.
pub fn another_ses_delivery(raw: &[u8], n: u32) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).expect("an UTF-8 fixture");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let renewed = [
            " with SMTP id ",
            "X-SES-RECEIPT: ",
            "X-SES-DKIM-SIGNATURE: ",
        ]
        .iter()
        .find_map(|stamp| line.find(stamp).map(|at| at + stamp.len()));
        match renewed {
            Some(at) => {
                out.push_str(&line[..at]);
                out.push_str(&format!("delivery{n}"));
                out.push_str(&line[at..]);
            }
            None => out.push_str(line),
        }
    }
    assert_ne!(out.as_bytes(), raw, "the fixture has SES's block");
    // The sending server, in SES's block only (above the first blank line).
    let block_end = out
        .find("\r\n\r\n")
        .or_else(|| out.find("\n\n"))
        .unwrap_or(0);
    let (block, rest) = out.split_at(block_end);
    let named = |property: &str| {
        let at = block.find(property).expect("the fixture names its sender") + property.len();
        block[at..]
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let moved = block
        .replace(&named("client-ip="), "192.0.2.99")
        .replace(&named("helo="), "a9-99.smtp-out.amazonses.com");
    format!("{moved}{rest}").into_bytes()
}

/// The `rootmail` binary next to the test executable (built by `make test`).
pub fn rootmail_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ROOTMAIL_BIN") {
        return PathBuf::from(path);
    }
    workspace_bin("rootmail")
}

/// A binary of the workspace (`rootmail`, `mail-ingest`, `ticket-writer`) in the
/// target directory the tests run from.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace` first (make test does)",
        bin.display()
    );
    bin
}

pub fn rootmail(args: &[&str]) -> Output {
    Command::new(rootmail_bin())
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("rootmail runs")
}

/// A small deterministic generator, so generated inputs are the same on every run.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Triage with the corpus' account directory and the built-in rules, as the
/// `triage` command does (no store, no waiting rotation).
pub struct Triager {
    directory: InMemoryDirectory,
    rules: rootmail_domain::Rules,
}

impl Default for Triager {
    fn default() -> Self {
        Self {
            directory: directory(),
            rules: rootmail_domain::Rules::built_in(),
        }
    }
}

impl Triager {
    pub fn triage(
        &self,
        raw: &[u8],
        origin: &str,
        object_name: Option<&str>,
    ) -> rootmail_domain::Triage {
        self.triage_knowing(raw, origin, object_name, &rootmail_domain::NoKnownThreads)
    }

    /// [`Triager::triage`] where the stores know the threads `known` answers.
    pub fn triage_knowing(
        &self,
        raw: &[u8],
        origin: &str,
        object_name: Option<&str>,
        known: &dyn rootmail_domain::KnownThreads,
    ) -> rootmail_domain::Triage {
        let ctx = rootmail_domain::Context {
            directory: &self.directory,
            rules: &self.rules,
            known_threads: known,
            rotations: &rootmail_domain::NoRotations,
        };
        rootmail_domain::triage(
            &rootmail_domain::MailInput {
                raw,
                origin,
                object_name,
            },
            &ctx,
        )
    }
}

pub mod account_fake;
pub mod aws;
pub mod backfill;
pub mod flaky;
pub mod function_url;
pub mod lambda;
pub mod large_mail;
pub mod leaks;
pub mod lifecycle;
pub mod memory_sink;
pub mod pipeline;
pub mod rt;
pub mod runtime_api;
pub mod secret_mail;
pub mod soak;
pub mod webhook_server;
pub mod zendesk_fake;

/// Every log line the handlers in this test process write, in the functions'
/// own JSON format. Installed once, process-wide, before any handler runs (a
/// per-thread subscriber would miss lines logged where other tests run).
pub fn captured_logs() -> rootmail_aws::metrics::CapturedLines {
    static LOGS: std::sync::OnceLock<rootmail_aws::metrics::CapturedLines> =
        std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let lines = rootmail_aws::metrics::CapturedLines::default();
        let writer = lines.clone();
        tracing::subscriber::set_global_default(rootmail_aws::logging::json_logs(move || {
            writer.clone()
        }))
        .expect("no other global subscriber in the tests");
        lines
    })
    .clone()
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
