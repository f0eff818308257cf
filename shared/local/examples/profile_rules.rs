//! Rule loading time: `Rules::built_in()`, which every Lambda runs at cold
//! start, timed N times (median). Built with the Lambdas' per-crate
//! opt-levels (the cli-release profile inherits release):
//!
//! `cargo build --profile cli-release -p rootmail-local --example profile_rules`
//! `target/cli-release/examples/profile_rules 20`
//!
//! Under `perf record --call-graph dwarf` it shows where loading goes.

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let started = std::time::Instant::now();
        std::hint::black_box(rootmail_domain::rules::Rules::built_in());
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "Rules::built_in(): median {:.1} ms of {}",
        times[times.len() / 2],
        times.len()
    );
}
