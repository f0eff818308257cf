//! Triages one message file as the `triage` command does (the corpus' account
//! directory, the built-in rules, no waiting rotation) and reports the decision,
//! how long triage took and the process's peak memory. A separate process, so
//! the measurement is this message's alone.
//!
//! Triage runs on a thread with a 2 MiB stack, the size of a tokio worker's
//! (where the Lambda handlers run): input that would overflow the stack there
//! overflows it here.
//!
//!   triage-one FILE   ->   {"triage": {...}, "bytes": N, "elapsed_ms": N,
//!                           "rss_after_read_kib": N, "peak_rss_kib": N}

use std::time::Instant;

/// A tokio worker thread's default stack.
const STACK_BYTES: usize = 2 * 1024 * 1024;

fn peak_rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args().nth(1) else {
        return Err("usage: triage-one FILE".into());
    };
    let triager = rootmail_tests::Triager::default();
    let raw = std::fs::read(&path)?;
    let rss_after_read_kib = peak_rss_kib()?;
    let origin = path.clone();
    let (triage, elapsed) = std::thread::Builder::new()
        .name("triage".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let started = Instant::now();
            let triage = triager.triage(&raw, &origin, None);
            let value = serde_json::to_value(&triage).expect("triage serializes");
            // Dropping the parsed message is part of the work (and can recurse).
            drop(triage);
            drop(raw);
            (value, started.elapsed())
        })?
        .join()
        .map_err(|_| "triage panicked")?;
    println!(
        "{}",
        serde_json::json!({
            "triage": triage,
            "bytes": std::fs::metadata(&path)?.len(),
            "elapsed_ms": elapsed.as_millis() as u64,
            "rss_after_read_kib": rss_after_read_kib,
            "peak_rss_kib": peak_rss_kib()?,
        })
    );
    Ok(())
}
