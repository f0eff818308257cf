//! Ingests one stored message with the `mail-ingest` handler, configured exactly
//! as in Lambda (environment, `AWS_ENDPOINT_URL`), and reports the process's peak
//! memory. A separate process, so the measurement is this message's alone.
//!
//!   ingest-one BUCKET KEY   ->   {"outcome": "...", "peak_rss_kib": N}
#![recursion_limit = "256"]

use mail_ingest::events::MailRef;
use mail_ingest::{Config, Ingest};
use rootmail_aws::{Env, MailLocation, Metrics};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(bucket), Some(key)) = (args.next(), args.next()) else {
        return Err("usage: ingest-one BUCKET KEY".into());
    };
    let config = Config::from_env(&Env::process())?;
    let aws = rootmail_aws::sdk_config().await;
    let handler = Ingest::on_aws(config, &aws, Metrics::memory().0);
    let outcome = handler
        .ingest_one(&MailRef {
            location: MailLocation { bucket, key },
            arrived_ms: None,
        })
        .await?;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let peak_rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM in /proc/self/status")?;
    println!(
        "{}",
        serde_json::json!({"outcome": format!("{outcome:?}"), "peak_rss_kib": peak_rss_kib})
    );
    Ok(())
}
