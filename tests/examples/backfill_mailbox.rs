//! Writes the generated mailbox `make backfill` runs (`N` messages, as one
//! mbox with its accounts file) into a directory, to profile `rootmail run`
//! on it by hand (`make profile-backfill`).
//!
//! Usage: backfill_mailbox N DIR

use rootmail_tests::backfill::write_mailbox;
use rootmail_tests::soak::generate::Plan;
use std::path::PathBuf;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: backfill_mailbox N DIR";
    let count: usize = args.next().and_then(|n| n.parse().ok()).ok_or(usage)?;
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (mbox, accounts) = (dir.join("backfill.mbox"), dir.join("accounts.csv"));
    let written = write_mailbox(&Plan::generate(count, 100), &mbox, &accounts);
    println!("{written} messages in {}", mbox.display());
    Ok(())
}
