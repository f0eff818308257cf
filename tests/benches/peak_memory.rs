//! Peak memory of `mail-ingest` on the largest message SES delivers, against
//! moto (`make bench` starts it). The release build of `ingest-one` (the
//! deployed handler, wired and configured as in Lambda, with the template's
//! `INGEST_CONCURRENCY=2`) ingests objects from S3 in a process of its own and
//! reports its peak resident set (VmHWM).
//!
//! Four cases, each run three times on objects it has not seen: a small
//! message (the baseline: runtime, SDK clients, TLS), one message just under
//! 40 MiB, two of those at once (one SQS batch of two), and one of forwarded
//! messages just under 40 MiB (the most text to decode and search). Not a criterion
//! benchmark: it prints a table, and leaves it in
//! `target/criterion/peak-memory.txt` for `scripts/bench-summary`.

use rootmail_tests::aws::{ENDPOINT_VARIABLE, Stack, process_env};
use rootmail_tests::large_mail::{
    JUST_UNDER_LIMIT, abuse_report_with_evidence, forwarded_messages,
};
use rootmail_tests::workspace_root;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

const RUNS: usize = 3;
const CONCURRENCY: &str = "2";
const MIB: f64 = 1024.0 * 1024.0;
/// Lambda's 256 MB read the stricter way, as 10^6-byte megabytes.
const LAMBDA_MIB: f64 = 256e6 / MIB;

struct Case {
    name: &'static str,
    size: usize,
    count: usize,
    mail: fn(usize, u64) -> Vec<u8>,
}

const CASES: [Case; 4] = [
    Case {
        name: "small message (8 KiB)",
        size: 8 * 1024,
        count: 1,
        mail: abuse_report_with_evidence,
    },
    Case {
        name: "one message, just under 40 MiB",
        size: JUST_UNDER_LIMIT,
        count: 1,
        mail: abuse_report_with_evidence,
    },
    Case {
        name: "two such messages at once",
        size: JUST_UNDER_LIMIT,
        count: 2,
        mail: abuse_report_with_evidence,
    },
    // The shape a review found past Lambda's memory (600 MB): every
    // forwarded message decoded and searched, until a budget bounded it.
    Case {
        name: "forwarded messages, just under 40 MiB",
        size: JUST_UNDER_LIMIT,
        count: 1,
        mail: forwarded_messages,
    },
];

/// Runs `ingest-one` on `keys`; its peak RSS in MiB.
fn ingest_in_own_process(stack: &Stack, keys: &[String]) -> f64 {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ingest-one"))
        .arg(&stack.bucket)
        .args(keys)
        .envs(process_env())
        .envs(stack.function_env())
        .env("INGEST_CONCURRENCY", CONCURRENCY)
        .output()
        .expect("ingest-one runs");
    assert!(
        output.status.success(),
        "ingest-one failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("ingest-one report");
    let outcome = report["outcome"].as_str().unwrap_or_default();
    let ingested = match keys {
        [_] => outcome.starts_with("Triaged"),
        _ => report["failed"] == 0,
    };
    assert!(ingested, "not ingested: {report}");
    report["peak_rss_kib"].as_u64().expect("peak_rss_kib") as f64 / 1024.0
}

fn main() {
    if std::env::var_os(ENDPOINT_VARIABLE).is_none() {
        eprintln!(
            "peak_memory skipped: it needs moto. Run `make bench`, or \
             `scripts/with-moto cargo bench -p rootmail-tests --bench peak_memory`."
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let stack = runtime.block_on(async {
        let stack = Stack::create().await;
        stack.load_corpus_accounts().await;
        stack
    });

    let mut seed = 1000;
    let mut rows = Vec::new();
    for case in &CASES {
        let mut peaks = Vec::new();
        let mut message_bytes = 0;
        for _ in 0..RUNS {
            let mut keys = Vec::new();
            for _ in 0..case.count {
                seed += 1;
                let raw = (case.mail)(case.size, seed);
                message_bytes = raw.len();
                let key = format!("inbound/peak-memory-{seed}");
                runtime.block_on(stack.put_mail(&key, raw));
                keys.push(key);
            }
            peaks.push(ingest_in_own_process(&stack, &keys));
            eprintln!(
                "peak_memory: {} run: {:.1} MiB",
                case.name,
                peaks[peaks.len() - 1]
            );
        }
        rows.push((case, message_bytes, peaks));
    }

    let table = report(&rows);
    print!("{table}");
    let path = table_path();
    std::fs::create_dir_all(path.parent().expect("a directory")).expect("criterion directory");
    std::fs::write(&path, table).expect("write the table");
}

/// Beside criterion's results, where `scripts/bench-summary` reads them.
fn table_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    workspace_root()
        .join(target)
        .join("criterion")
        .join("peak-memory.txt")
}

fn report(rows: &[(&Case, usize, Vec<f64>)]) -> String {
    let max = |peaks: &[f64]| peaks.iter().copied().fold(0.0, f64::max);
    let min = |peaks: &[f64]| peaks.iter().copied().fold(f64::MAX, f64::min);
    let baseline = max(&rows[0].2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mail-ingest peak memory: release ingest-one, VmHWM, {RUNS} runs each, \
         INGEST_CONCURRENCY={CONCURRENCY}\n\
         Lambda's 256 MB taken as {LAMBDA_MIB:.1} MiB (10^6-byte MB; 256 MiB if MiB)\n"
    );
    let _ = writeln!(
        out,
        "{:<32} {:>12} {:>10} {:>17} {:>13} {:>11}",
        "case", "mail (MiB)", "peak MiB", "range (MiB)", "above small", "of 256 MB"
    );
    for (i, (case, bytes, peaks)) in rows.iter().enumerate() {
        let peak = max(peaks);
        let above = match i {
            0 => "-".to_string(),
            _ => format!("{:.1}", peak - baseline),
        };
        let _ = writeln!(
            out,
            "{:<32} {:>12.2} {:>10.1} {:>17} {:>13} {:>10.0}%",
            case.name,
            (bytes * case.count) as f64 / MIB,
            peak,
            format!("{:.1}..{:.1}", min(peaks), peak),
            above,
            100.0 * peak / LAMBDA_MIB,
        );
    }
    let one = max(&rows[1].2) - baseline;
    let two = max(&rows[2].2);
    let message_mib = rows[1].1 as f64 / MIB;
    let both_at_peak = baseline + 2.0 * one;
    let worst = both_at_peak.max(two);
    let _ = writeln!(
        out,
        "\none message: {one:.1} MiB above the small one, {:.2}x its {message_mib:.1} MiB\n\
         two at once: {two:.1} MiB measured, {both_at_peak:.1} MiB if both peaked together \
         (small + 2 x one)\n\
         against 256 MB: the worse of those, {worst:.1} MiB, is {:.0}%, {:.1} MiB to spare",
        one / message_mib,
        100.0 * worst / LAMBDA_MIB,
        LAMBDA_MIB - worst,
    );
    out
}
