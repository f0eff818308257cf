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

/// Installs [`json_logs`] on stdout for the whole process, and
/// [`log_panics_by_place`].
pub fn init_json_logs() {
    // Only fails if a subscriber is already set, which then keeps logging.
    let _ = tracing::subscriber::set_global_default(json_logs(std::io::stdout));
    log_panics_by_place();
}

/// A panic is logged as an error naming where it happened, never with its
/// message: a message can quote what the code was reading, which is mail
/// (a panic on a hostile header quoted the header), and mail can hold a
/// verification code. The place is enough to find the bug.
pub fn log_panics_by_place() {
    std::panic::set_hook(Box::new(|info| {
        let place = panic_place(info);
        tracing::error!(
            place,
            "panic (its message is not logged: it may quote mail)"
        );
    }));
}

/// [`log_panics_by_place`] for the command-line tool, which logs to no
/// subscriber: one line on stderr, the place only (its output lands in
/// terminals, cron mail and CI logs alike).
pub fn print_panics_by_place() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "rootmail: internal error at {} (its message is not shown: it may quote mail)",
            panic_place(info)
        );
    }));
}

/// A handler's panic as its error, with nothing of the panic's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panicked;

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the handler panicked (its place is in the log)")
    }
}

impl std::error::Error for Panicked {}

/// `handling` with a panic turned into the error [`Panicked`]. The runtime
/// catches a handler's panic too, but sends its message to the Runtime API
/// as the invocation's error, where it reaches the function's log, the
/// event source's failure record and a state machine's error cause: the
/// message can quote mail, as the hook above knows. Caught here first,
/// nothing of it leaves.
pub async fn without_panic_message<T, E: From<Panicked>>(
    handling: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(handling).catch_unwind().await {
        Ok(answer) => answer,
        Err(_) => Err(Panicked.into()),
    }
}

/// Where a panic happened: file, line and column.
fn panic_place(info: &std::panic::PanicHookInfo<'_>) -> String {
    info.location()
        .map_or_else(|| "an unknown place".to_string(), ToString::to_string)
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

    /// What a panic logs, caught as the functions' logs are written.
    #[test]
    fn a_panic_is_logged_by_its_place_never_its_message() {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let written = lines.clone();
        super::log_panics_by_place();
        tracing::subscriber::with_default(super::json_logs(move || written.clone()), || {
            let _ = std::panic::catch_unwind(|| panic!("Your verification code is 318244"));
        });
        drop(std::panic::take_hook());
        let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("\"level\":\"ERROR\""), "{logged}");
        assert!(logged.contains("logging.rs:"), "{logged}");
        assert!(!logged.contains("318244"), "{logged}");
    }

    /// lambda_runtime sends a panic's message to the Runtime API as the
    /// invocation's error; the handler's own catch leaves only [`Panicked`].
    #[tokio::test]
    async fn a_handler_that_panics_answers_without_the_message() {
        type Boxed = Box<dyn std::error::Error + Send + Sync>;
        let panicking = super::without_panic_message(async {
            if std::hint::black_box(true) {
                panic!("Your verification code is 318244");
            }
            Ok::<(), Boxed>(())
        });
        let error = panicking.await.expect_err("a panic is an error");
        assert_eq!(error.to_string(), super::Panicked.to_string());
        assert!(!format!("{error:?}").contains("318244"));

        let failing =
            super::without_panic_message(async { Err::<(), Boxed>("the queue is gone".into()) });
        assert_eq!(failing.await.unwrap_err().to_string(), "the queue is gone");
        let answering = super::without_panic_message(async { Ok::<_, Boxed>(7) });
        assert_eq!(answering.await.unwrap(), 7);
    }

    #[test]
    fn a_filter_it_cannot_read_falls_back_to_info() {
        // EnvFilter's span-field syntax is not a target list.
        let targets = levels(Some("[ingest{key=abc}]=debug"));
        assert!(targets.would_enable("mail_ingest", &Level::INFO));
        assert!(!targets.would_enable("mail_ingest", &Level::DEBUG));
    }
}
