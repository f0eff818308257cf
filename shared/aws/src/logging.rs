//! JSON logs for Lambda: one object per line, with the current span's fields
//! (message key, account, thread, kind), so CloudWatch Logs Insights can query them.

/// Installs the JSON subscriber; `RUST_LOG` overrides the `info` default.
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .init();
}
