//! Cold start of each Lambda bootstrap: from the process's start to its first
//! request for an event (`GET /runtime/invocation/next`), under the Runtime
//! API stand-in, configured as a deployed function (moto behind
//! `AWS_ENDPOINT_URL`; ticket-writer reads its secret from it, as it does at
//! init). Each bootstrap is timed beside its baseline in the same run: the
//! release builds `scripts/bootstrap-sizes` leaves in `$BOOTSTRAPS` and
//! `$BASELINE_BOOTSTRAPS` (`make bench` runs it first).
//!
//! Not a criterion benchmark: it prints a table, and leaves it in
//! `target/criterion/cold-start.txt` for `scripts/bench-summary`. The page
//! cache is warm after the first start, as on a Lambda host that started the
//! same code before; what is left is loading, relocating and init.

use lifecycle::Step;
use rootmail_tests::aws::{ENDPOINT_VARIABLE, Stack};
use rootmail_tests::lifecycle::LifecycleStack;
use rootmail_tests::runtime_api::RuntimeApi;
use rootmail_tests::workspace_root;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STARTS: usize = 15;

/// One start of `binary`: milliseconds until it asked for an event.
fn time_to_first_next(binary: &Path, function: &str, env: &[(&'static str, String)]) -> f64 {
    let runtime = RuntimeApi::start(Vec::new());
    let started = Instant::now();
    let mut child = runtime.spawn(binary, function, env);
    let asked = runtime.first_next(Duration::from_secs(30));
    let _ = child.kill();
    let output = child.wait_with_output().expect("bootstrap output");
    let asked = asked.unwrap_or_else(|| {
        panic!(
            "{} never asked for an event; stderr: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    asked.duration_since(started).as_secs_f64() * 1e3
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let (Some(now), Some(baseline)) = (
        std::env::var_os("BOOTSTRAPS").map(PathBuf::from),
        std::env::var_os("BASELINE_BOOTSTRAPS").map(PathBuf::from),
    ) else {
        eprintln!(
            "cold_start skipped: BOOTSTRAPS and BASELINE_BOOTSTRAPS name the release builds \
             (`make bench` sets them after scripts/bootstrap-sizes)."
        );
        return;
    };
    if std::env::var_os(ENDPOINT_VARIABLE).is_none() {
        eprintln!("cold_start skipped: it needs moto. Run `make bench`.");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (stack, lifecycle) = runtime.block_on(async {
        let lifecycle = LifecycleStack::create().await;
        (Stack::create().await, lifecycle)
    });
    // The webhook backend reads its signing secret from Secrets Manager at
    // init; its endpoint is not called before an event.
    let mut writer_env = stack.function_env();
    writer_env.push(("TICKET_API_URL", "http://127.0.0.1:9/hooks".to_string()));
    let functions = [
        ("mail-ingest", stack.function_env()),
        ("ticket-writer", writer_env),
        ("lifecycle", lifecycle.function_env(Step::Register)),
    ];

    let mut table = String::new();
    let _ = writeln!(
        table,
        "== Cold start to the first `next` (median of {STARTS}, ms), against the build before feature gates"
    );
    let _ = writeln!(
        table,
        "  {:<14} {:>9} {:>9} {:>8}",
        "function", "ms", "baseline", "ratio"
    );
    for (function, env) in &functions {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        // In turn, so both see the same machine.
        for _ in 0..STARTS {
            ours.push(time_to_first_next(&now.join(function), function, env));
            theirs.push(time_to_first_next(&baseline.join(function), function, env));
        }
        let (ours, theirs) = (median(ours), median(theirs));
        let _ = writeln!(
            table,
            "  {function:<14} {ours:>9.1} {theirs:>9.1} {:>7.2}x",
            ours / theirs
        );
    }
    let _ = writeln!(
        table,
        "  (mail-ingest's includes rootmail_domain::warm_up, about 15 ms: the first triage's \
         one-time work, moved out of its first invocation into init, which Lambda runs on a full vCPU)"
    );
    print!("{table}");
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    let path = workspace_root()
        .join(target)
        .join("criterion")
        .join("cold-start.txt");
    std::fs::create_dir_all(path.parent().expect("a directory")).expect("criterion directory");
    std::fs::write(&path, table).expect("write the table");
}
