//! No decision reads an error's text: retry, dead-letter and refusal choices
//! branch on `PortError`'s kind, status and the service's code (issue 18).
//! A scan of the production sources (test modules left out) keeps it so.

use rootmail_tests::workspace_root;
use std::path::{Path, PathBuf};

pub(super) fn production_sources() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = ["shared", "functions", "cli"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() && !matches!(name, "tests" | "target" | "examples") {
                stack.push(path);
            } else if name.ends_with(".rs") && path.components().any(|c| c.as_os_str() == "src") {
                files.push(path);
            }
        }
    }
    // A scan that finds nothing passes whatever the code says.
    assert!(
        files.len() > 50,
        "the scan found the sources ({})",
        files.len()
    );
    files
}

/// The file's code before its `#[cfg(test)]` module.
pub(super) fn production_part(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable source");
    match text.find("#[cfg(test)]\nmod ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// What reading an error's text looks like: a string search on an error, its
/// message or its Display/Debug text.
fn reads_error_text(line: &str) -> bool {
    let searched = regex::Regex::new(
        r"\b(e|err|error|source|message)\b(\.[a-z_]+\(\))*\.(contains|starts_with|ends_with|find)\(",
    )
    .expect("valid");
    let formatted = regex::Regex::new(r#"format!\("\{(e|err|error)(:\?)?\}"\)\.(contains|find)"#)
        .expect("valid");
    searched.is_match(line) || formatted.is_match(line) || line.contains("StatusCode(5")
}

/// `PortError { port, .. }` built by hand instead of with a constructor.
fn is_port_error_literal(line: &str) -> bool {
    regex::Regex::new(r"(^|[(=\s])PortError \{")
        .expect("valid")
        .is_match(line)
        && !line.contains("-> PortError {")
}

#[test]
fn no_production_decision_reads_an_error_s_text() {
    let files = production_sources();
    let mut found = Vec::new();
    for path in &files {
        for (n, line) in production_part(path).lines().enumerate() {
            let literal = is_port_error_literal(line) && !path.ends_with("pipeline/src/error.rs");
            if reads_error_text(line) || literal {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "decisions on error text or PortError literals:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_recognises_what_it_forbids() {
    for bad in [
        r#"Err(e) if e.to_string().contains("IdempotentRequestError") => {"#,
        r#"PortError::Permanent { message, .. } => message.contains("HTTP 422 "),"#,
        r#"if format!("{e:?}").contains("status: StatusCode(5") {"#,
        r#"let gone = error.to_string().to_ascii_lowercase().contains("closed");"#,
    ] {
        assert!(reads_error_text(bad), "{bad}");
    }
    for fine in [
        r#"Err(e) if e.code.as_deref() == Some("IdempotentRequestError") =>"#,
        r#"let text = error.answer.as_deref()?.to_ascii_lowercase();"#,
        r#"if value.contains('&') {"#,
    ] {
        assert!(!reads_error_text(fine), "{fine}");
    }
    assert!(is_port_error_literal("        Err(PortError {"));
    assert!(!is_port_error_literal(
        "fn bad_row(message: String) -> PortError {"
    ));
}
