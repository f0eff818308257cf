//! Operator commands against a deployed rootmail (AWS): import accounts, replay
//! stored mail or dead letters, report the ledger. Credentials, region and
//! endpoint come from the standard AWS settings (profile, environment).

pub mod accounts;
pub mod replay;
pub mod status;

use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;

/// Runs an async command on a runtime made for it.
pub fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// A progress bar on stderr; it draws nothing when stderr is not a terminal.
pub fn progress(length: Option<u64>, what: &str) -> ProgressBar {
    let bar = match length {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if length.is_some() {
        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)"
    } else {
        "{msg} {spinner} {pos} ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
