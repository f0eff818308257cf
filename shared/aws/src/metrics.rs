//! CloudWatch Embedded Metric Format: one JSON line per data point on stdout,
//! which Lambda's log pipeline turns into metrics without an API call.
//! Dimensions are closed sets (kind, disposition, outcome), never mail content.

use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub const NAMESPACE: &str = "rootmail";

pub struct Metrics {
    namespace: String,
    out: Mutex<Box<dyn Write + Send>>,
}

/// Lines written to a [`Metrics::memory`] sink, for tests.
#[derive(Clone, Default)]
pub struct CapturedLines(Arc<Mutex<Vec<u8>>>);

impl CapturedLines {
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Write for CapturedLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Metrics {
    pub fn stdout() -> Self {
        Self {
            namespace: NAMESPACE.to_string(),
            out: Mutex::new(Box::new(std::io::stdout())),
        }
    }

    pub fn memory() -> (Self, CapturedLines) {
        let lines = CapturedLines::default();
        let metrics = Self {
            namespace: NAMESPACE.to_string(),
            out: Mutex::new(Box::new(lines.clone())),
        };
        (metrics, lines)
    }

    pub fn count(&self, name: &str, dimensions: &[(&str, &str)]) {
        self.emit(name, Unit::Count, 1.0, dimensions);
    }

    pub fn milliseconds(&self, name: &str, value: f64, dimensions: &[(&str, &str)]) {
        self.emit(name, Unit::Milliseconds, value, dimensions);
    }

    /// The time from `since_ms` (an event's time) to now.
    pub fn elapsed_since(&self, name: &str, since_ms: u64) {
        let waited = now_millis().saturating_sub(since_ms) as f64;
        self.milliseconds(name, waited, &[]);
    }

    fn emit(&self, name: &str, unit: Unit, value: f64, dimensions: &[(&str, &str)]) {
        let line = emf_line(&self.namespace, now_millis(), name, unit, value, dimensions);
        // A metric that cannot be written must not fail the message.
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Milliseconds since the epoch, from the system clock (adapters own the clock;
/// the domain is handed times).
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One EMF document: the metric's definition under `_aws`, and its dimension
/// values and value as top-level members.
pub fn emf_line(
    namespace: &str,
    timestamp_ms: u64,
    name: &str,
    unit: Unit,
    value: f64,
    dimensions: &[(&str, &str)],
) -> Value {
    let unit = match unit {
        Unit::Count => "Count",
        Unit::Milliseconds => "Milliseconds",
    };
    let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".to_string(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [names],
                "Metrics": [{"Name": name, "Unit": unit}],
            }],
        }),
    );
    for (key, val) in dimensions {
        doc.insert((*key).to_string(), Value::String((*val).to_string()));
    }
    doc.insert(name.to_string(), json!(value));
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_declares_its_dimensions_and_carries_their_values() {
        let line = emf_line(
            "rootmail",
            1_700_000_000_000,
            "Messages",
            Unit::Count,
            1.0,
            &[("Kind", "billing.invoice"), ("Disposition", "ticket")],
        );
        let def = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(def["Namespace"], "rootmail");
        assert_eq!(def["Dimensions"], json!([["Kind", "Disposition"]]));
        assert_eq!(
            def["Metrics"][0],
            json!({"Name": "Messages", "Unit": "Count"})
        );
        assert_eq!(line["Kind"], "billing.invoice");
        assert_eq!(line["Messages"], 1.0);
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }

    #[test]
    fn memory_sink_collects_lines() {
        let (metrics, lines) = Metrics::memory();
        metrics.count("Quarantines", &[("Reason", "missing")]);
        metrics.milliseconds("Latency", 12.5, &[]);
        let got = lines.lines();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["Latency"], 12.5);
    }
}
