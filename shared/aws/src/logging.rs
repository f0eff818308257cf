//! JSON logs for Lambda: one object per line, with the current span's fields
//! (message key, account, thread, kind), so CloudWatch Logs Insights can query them.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The subscriber the functions log through, writing to `writer`
/// (`RUST_LOG` overrides the `info` default).
pub fn json_logs<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
        .with(levels(std::env::var("RUST_LOG").ok().as_deref()))
}

/// The levels `RUST_LOG` asks for (`warn`, `rootmail_aws=info,warn`), or
/// `info` when it is unset or not in that form. The Lambda bootstraps hold no
/// event below `info` (each function's `tracing` has `release_max_level_info`:
/// the SDK's and HTTP stack's debug and trace events were 212 KB of
/// mail-ingest), so `debug` there logs what `info` does; the command-line
/// tool keeps them. Targets and levels only: the
/// span-field filters of `tracing`'s `EnvFilter` would link a regex DFA
/// builder into every bootstrap for a setting nobody deploys.
pub fn levels(setting: Option<&str>) -> Targets {
    let info = || Targets::new().with_default(tracing::Level::INFO);
    match setting.map(str::trim) {
        None | Some("") => info(),
        Some(text) => text.parse().unwrap_or_else(|_| info()),
    }
}

/// Installs [`json_logs`] on stdout for the whole process.
pub fn init_json_logs() {
    // Only fails if a subscriber is already set, which then keeps logging.
    let _ = tracing::subscriber::set_global_default(json_logs(std::io::stdout));
}

#[cfg(test)]
mod tests {
    use super::levels;
    use tracing::Level;

    #[test]
    fn rust_log_sets_levels_by_target_and_info_is_the_default() {
        for unset in [None, Some(""), Some("  ")] {
            let targets = levels(unset);
            assert!(targets.would_enable("mail_ingest", &Level::INFO));
            assert!(!targets.would_enable("mail_ingest", &Level::DEBUG));
        }
        let debug = levels(Some("debug"));
        assert!(debug.would_enable("hyper", &Level::DEBUG));
        assert!(!debug.would_enable("hyper", &Level::TRACE));

        let mixed = levels(Some("rootmail_aws=debug,warn"));
        assert!(mixed.would_enable("rootmail_aws::ledger", &Level::DEBUG));
        assert!(!mixed.would_enable("mail_ingest", &Level::INFO));
        assert!(mixed.would_enable("mail_ingest", &Level::WARN));
    }

    #[test]
    fn a_filter_it_cannot_read_falls_back_to_info() {
        // EnvFilter's span-field syntax is not a target list.
        let targets = levels(Some("[ingest{key=abc}]=debug"));
        assert!(targets.would_enable("mail_ingest", &Level::INFO));
        assert!(!targets.would_enable("mail_ingest", &Level::DEBUG));
    }
}
