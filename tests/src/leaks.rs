//! The secret-leak scan: every secret value the inputs hold, searched for in
//! every text a sink kept, in the forms it could take there (as written,
//! HTML- or percent-encoded, base64 inside a JSON value, and a link's token
//! on its own). A hit names the sink and the secret's origin, never the value.

use base64::Engine;
use serde_json::Value;

/// The secret values to look for, each with where it came from.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<(String, String)>);

impl Secrets {
    /// Every secret of the corpus and the sample mailbox (`tests/corpus/SECRETS.tsv`).
    pub fn corpus() -> Self {
        let mut secrets = Self::default();
        for (origin, value) in crate::known_secrets() {
            secrets.add(&origin, &value);
        }
        secrets
    }

    /// A secret, and for a link its token on its own (the reset token without
    /// the rest of the URL is a leak too; the account id in it is not a secret).
    pub fn add(&mut self, origin: &str, value: &str) {
        assert!(value.len() >= 6, "{origin}: too short to be a real secret");
        self.push(origin, value);
        for token in link_tokens(value) {
            self.push(&format!("{origin} (link token)"), token);
        }
    }

    fn push(&mut self, origin: &str, value: &str) {
        if !self.0.iter().any(|(_, v)| v == value) {
            self.0.push((origin.to_string(), value.to_string()));
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The forms a value can take in a sink's text.
    fn forms(value: &str) -> Vec<String> {
        let mut forms = vec![value.to_string()];
        // Percent-encoding as strict encoders write it, and as URL encoders
        // that keep the unreserved characters do.
        const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let html = value.replace('&', "&amp;");
        let strict =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let url = percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string();
        for form in [html, strict, url] {
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
        forms
    }
}

/// Whether `text` holds `form`. A code of digits counts only where it stands
/// alone: "123456" inside the millisecond timestamp 1764812345678 of a metric
/// line is a number that happens to contain it, not the code.
pub fn contains_secret(text: &str, form: &str) -> bool {
    if !form.bytes().all(|b| b.is_ascii_digit()) {
        return text.contains(form);
    }
    let bytes = text.as_bytes();
    text.match_indices(form).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + form.len()).copied();
        !before.is_some_and(|b| b.is_ascii_digit()) && !after.is_some_and(|b| b.is_ascii_digit())
    })
}

/// One secret found in one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub sink: String,
    pub origin: String,
}

/// The scan of many sinks for one set of secrets.
pub struct Scan {
    secrets: Vec<(String, Vec<String>)>,
    hits: Vec<Hit>,
    /// Texts and bytes searched, per sink, for the report.
    searched: std::collections::BTreeMap<String, (usize, usize)>,
}

impl Scan {
    pub fn new(secrets: &Secrets) -> Self {
        assert!(!secrets.is_empty(), "a scan for nothing proves nothing");
        Self {
            secrets: secrets
                .0
                .iter()
                .map(|(origin, value)| (origin.clone(), Secrets::forms(value)))
                .collect(),
            hits: Vec::new(),
            searched: Default::default(),
        }
    }

    /// Searches one text a sink holds.
    pub fn text(&mut self, sink: &str, text: &str) {
        self.search(sink, text.len(), |form| contains_secret(text, form));
    }

    /// Counts one text of `len` bytes searched in `sink`, and records a hit
    /// for each secret one of whose forms `holds` says is there.
    fn search(&mut self, sink: &str, len: usize, holds: impl Fn(&str) -> bool) {
        let entry = self.searched.entry(sink.to_string()).or_default();
        entry.0 += 1;
        entry.1 += len;
        for (origin, forms) in &self.secrets {
            if forms.iter().any(|f| holds(f)) {
                self.hits.push(Hit {
                    sink: sink.to_string(),
                    origin: origin.clone(),
                });
            }
        }
    }

    /// Searches bytes (an attachment, a file) as text.
    pub fn bytes(&mut self, sink: &str, bytes: &[u8]) {
        self.text(sink, &String::from_utf8_lossy(bytes));
    }

    /// Searches a structured record (a JSON log line, a metric): a code of
    /// digits only in its strings and keys, since a JSON number there is a
    /// measurement (a retry's wait in ms, a size), never a code, which every
    /// rootmail type holds as a string; other secrets in the whole text.
    pub fn record(&mut self, sink: &str, value: &Value) {
        let whole = value.to_string();
        let mut strings = Vec::new();
        collect_strings(value, &mut strings);
        let strings = strings.join("\n");
        self.search(sink, whole.len(), |form| {
            let digits = form.bytes().all(|b| b.is_ascii_digit());
            contains_secret(if digits { &strings } else { &whole }, form)
        });
    }

    /// Searches a JSON document, and every string in it that is base64 (an
    /// attachment in a webhook body, a message in a queue) decoded.
    pub fn json(&mut self, sink: &str, value: &Value) {
        self.text(sink, &value.to_string());
        let mut decoded = Vec::new();
        collect_base64(value, &mut decoded);
        for bytes in decoded {
            self.bytes(&format!("{sink} (base64 decoded)"), &bytes);
        }
    }

    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// What was searched: sink, texts, bytes.
    pub fn report(&self) -> String {
        self.searched
            .iter()
            .map(|(sink, (texts, bytes))| format!("{sink:<48} {texts:>7} texts {bytes:>11} bytes"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Fails with every hit (sink and origin), after checking that each sink
    /// named in `sinks` was actually searched.
    pub fn assert_clean(&self, sinks: &[&str]) {
        for sink in sinks {
            assert!(
                self.searched
                    .keys()
                    .any(|s| s == sink || s.starts_with(&format!("{sink} "))),
                "the sink {sink} was never searched:\n{}",
                self.report()
            );
        }
        assert!(
            self.hits.is_empty(),
            "secrets leaked: {:#?}\nsearched:\n{}",
            self.hits,
            self.report()
        );
    }
}

/// The secret query values of a link: its token, code or signature.
pub fn link_tokens(link: &str) -> Vec<&str> {
    let Some((_, query)) = link.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, value)| {
            let name = name.to_ascii_lowercase();
            matches!(name.as_str(), "token" | "code" | "x-amz-signature") && value.len() >= 12
        })
        .map(|(_, value)| value)
        .collect()
}

/// Every string and key of `value`, but a `timestamp`'s value: the log
/// formatter writes it (its microseconds can be any six digits), never a
/// code.
pub fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k);
            if k != "timestamp" {
                collect_strings(v, out);
            }
        }),
        _ => {}
    }
}

fn collect_base64(value: &Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::String(s) if s.len() >= 16 && !s.contains(' ') => {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s) {
                out.push(bytes);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_base64(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_base64(v, out)),
        _ => {}
    }
}

/// Every item of a DynamoDB table, each as one text.
pub async fn dynamodb_items(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan table");
        texts.extend(page.items().iter().map(|item| format!("{item:?}")));
        start = page.last_evaluated_key;
        if start.is_none() {
            return texts;
        }
    }
}

/// Every file under `dir` except those under `except` (paths relative to `dir`).
pub fn files_under(dir: &std::path::Path, except: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable directory") {
            let path = entry.expect("entry").path();
            let relative = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .to_string();
            if except.iter().any(|e| relative.starts_with(e)) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((relative, std::fs::read(&path).expect("readable file")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        let mut s = Secrets::default();
        s.add("otp.eml", "Q7K2M9");
        s.add(
            "reset.eml",
            "https://signin.aws.amazon.com/resetpassword?token=n4cJHoMeM41tpqyL6xIq&type=RESET",
        );
        s
    }

    #[test]
    fn finds_a_secret_in_every_form_it_can_take() {
        let planted = [
            ("plain", "your code is Q7K2M9".to_string()),
            ("html", "resetpassword?token=n4cJHoMeM41tpqyL6xIq&amp;type=RESET".into()),
            ("token alone", "t=n4cJHoMeM41tpqyL6xIq".into()),
            (
                "percent",
                "https%3A%2F%2Fsignin%2Eaws%2Eamazon%2Ecom%2Fresetpassword%3Ftoken%3Dn4cJHoMeM41tpqyL6xIq%26type%3DRESET".into(),
            ),
        ];
        for (sink, text) in planted {
            let mut scan = Scan::new(&secrets());
            scan.text(sink, &text);
            assert!(!scan.hits().is_empty(), "{sink}: not found");
        }
        let mut scan = Scan::new(&secrets());
        let attachment = base64::engine::general_purpose::STANDARD.encode("code: Q7K2M9\n");
        scan.json(
            "webhook",
            &serde_json::json!({"attachments": [{"content": attachment}]}),
        );
        assert_eq!(
            scan.hits(),
            &[Hit {
                sink: "webhook (base64 decoded)".into(),
                origin: "otp.eml".into()
            }]
        );
    }

    #[test]
    fn a_code_of_digits_counts_where_it_stands_alone() {
        let mut s = Secrets::default();
        s.add("otp.eml", "482913");
        let mut scan = Scan::new(&s);
        scan.text(
            "metrics",
            r#"{"Timestamp":1764824829137,"LatencyMs":48291300}"#,
        );
        assert!(
            scan.hits().is_empty(),
            "inside longer numbers: {:?}",
            scan.hits()
        );
        for text in ["code: 482913", "482913", "code=482913&x", "[482913]"] {
            let mut scan = Scan::new(&s);
            scan.text("logs", text);
            assert_eq!(scan.hits().len(), 1, "{text}");
        }
    }

    #[test]
    fn in_a_record_a_number_is_a_measurement_and_a_string_is_searched() {
        let mut s = Secrets::default();
        s.add("otp.eml", "482913");
        s.add("reset.eml", "n4cJHoMeM41tpqyL6xIq");
        let mut scan = Scan::new(&s);
        scan.record(
            "logs",
            &serde_json::json!({"wait_ms": 482913, "message": "retrying"}),
        );
        assert!(scan.hits().is_empty(), "{:?}", scan.hits());
        for leaked in [
            serde_json::json!({"message": "code 482913"}),
            serde_json::json!({"fields": {"482913": true}}),
            serde_json::json!({"n": 1, "link": "token=n4cJHoMeM41tpqyL6xIq"}),
        ] {
            let mut scan = Scan::new(&s);
            scan.record("logs", &leaked);
            assert_eq!(scan.hits().len(), 1, "{leaked}");
        }
    }

    #[test]
    fn a_clean_text_and_an_unsearched_sink_are_told_apart() {
        let mut scan = Scan::new(&secrets());
        scan.text("logs", "code [redacted verification_code]");
        assert!(scan.hits().is_empty());
        scan.assert_clean(&["logs"]);
        let missing = std::panic::catch_unwind(|| scan.assert_clean(&["tickets"]));
        assert!(missing.is_err(), "a sink never searched fails the scan");
    }
}
