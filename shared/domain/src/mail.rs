//! One raw message, parsed once into the owned facts the rest of the domain reads.

use crate::html::html_to_text;
use crate::types::EmailAddress;
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};

/// The sender as written in `From:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub name: Option<String>,
    pub address: Option<EmailAddress>,
}

/// An attachment, described but never opened (archives are never unpacked).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub size: usize,
    /// The decoded text of a textual attachment (up to [`MAX_SCANNED_ATTACHMENT_BYTES`]),
    /// kept only so triage can search it for secrets before it is ever uploaded.
    #[serde(skip)]
    pub text: Option<String>,
}

/// How much of a textual attachment is searched for secrets; a longer one is
/// never uploaded (it could hide a secret past the scanned part).
pub const MAX_SCANNED_ATTACHMENT_BYTES: usize = 1024 * 1024;

/// The decoded bytes of the message's `index`-th attachment (the order of
/// [`ParsedMail::attachments`]), for uploading to a ticket.
pub fn attachment_bytes(raw: &[u8], index: usize) -> Option<Vec<u8>> {
    let message = MessageParser::default().parse(raw)?;
    let part = message.attachments().nth(index)?;
    Some(part.contents().to_vec())
}

/// Whether an attachment of this (lower-case) type is text a person could read a
/// secret in; those are searched, everything else is opaque.
pub fn is_textual(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("message/")
        || matches!(
            content_type,
            "application/json" | "application/xml" | "application/csv"
        )
}

fn scannable_text(content_type: &str, contents: &[u8]) -> Option<String> {
    (is_textual(content_type) && contents.len() <= MAX_SCANNED_ATTACHMENT_BYTES)
        .then(|| String::from_utf8_lossy(contents).into_owned())
}

#[derive(Debug, Clone, Default)]
pub struct ParsedMail {
    pub from: Option<Sender>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub message_id: Option<String>,
    /// Message-IDs in `References`, oldest first.
    pub references: Vec<String>,
    pub in_reply_to: Vec<String>,
    /// The readable text of all text bodies, HTML converted.
    pub text: String,
    /// The text of HTML alternatives that `text` does not show (searched, never shown).
    pub alternative_text: String,
    pub attachments: Vec<Attachment>,
    /// Top-level headers as (name, unfolded raw value), in order: SES prepends its own first.
    pub headers: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

impl ParsedMail {
    /// The first header of that name (case-insensitive): the one nearest the top,
    /// which for SES's headers is the one SES wrote, not one the sender forged below.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers_named(name).next()
    }

    /// Message-IDs this message replies to: `References` then `In-Reply-To`.
    pub fn referenced_ids(&self) -> impl Iterator<Item = &str> {
        self.references
            .iter()
            .chain(self.in_reply_to.iter())
            .map(String::as_str)
    }

    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a message could not be read as mail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("no message headers could be read")]
    NoHeaders,
}

/// Headers whose presence shows the bytes really are a message.
const MESSAGE_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "received",
    "return-path",
    "mime-version",
    "content-type",
    "cc",
    "sender",
    "reply-to",
];

pub fn parse(raw: &[u8]) -> Result<ParsedMail, ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(ParseError::NoHeaders)?;
    let headers: Vec<(String, String)> = message
        .headers_raw()
        .map(|(name, value)| (name.to_string(), unfold(value)))
        .collect();
    let recognised = headers
        .iter()
        .any(|(name, _)| MESSAGE_HEADERS.iter().any(|m| name.eq_ignore_ascii_case(m)));
    if !recognised {
        return Err(ParseError::NoHeaders);
    }

    let mut warnings = Vec::new();
    let from = message.from().and_then(|a| a.first()).map(|addr| Sender {
        name: addr.name().map(clean_line).filter(|n| !n.is_empty()),
        address: addr.address().and_then(|a| EmailAddress::parse(a).ok()),
    });
    let (mut text, mut attachments) = (String::new(), Vec::new());
    for part in message.text_bodies() {
        append_body(&mut text, &part.body);
    }
    if text.is_empty() {
        for part in message.html_bodies() {
            append_body(&mut text, &part.body);
        }
    }
    // The HTML alternative is not shown, but a secret only it holds must still be
    // found (a rotation may need it).
    let mut alternative_text = String::new();
    let shows_plain_text = message
        .text_bodies()
        .any(|p| matches!(p.body, PartType::Text(_)));
    if shows_plain_text {
        for part in message
            .html_bodies()
            .filter(|p| matches!(p.body, PartType::Html(_)))
        {
            append_body(&mut alternative_text, &part.body);
        }
    }
    let raw_subject = message.subject().unwrap_or_default();
    if raw_subject.chars().any(|c| c == '\r' || c == '\n') {
        warnings.push(
            "subject contained line breaks (a header injection attempt?); shown on one line".into(),
        );
    }
    for part in message.attachments() {
        let content_type = part.content_type().map_or_else(
            || "application/octet-stream".to_string(),
            |ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            },
        );
        let content_type = clean_line(&content_type).to_ascii_lowercase();
        attachments.push(Attachment {
            name: part
                .attachment_name()
                .map(clean_line)
                .unwrap_or_else(|| "(unnamed)".into()),
            text: scannable_text(&content_type, part.contents()),
            content_type,
            size: part.body.len(),
        });
    }
    for part in message.parts.iter() {
        if let Some(charset) = part.content_type().and_then(|ct| ct.attribute("charset"))
            && mail_parser::decoders::charsets::map::charset_decoder(charset.as_bytes()).is_none()
            && !is_utf8_or_ascii(charset)
        {
            let warning = format!(
                "unknown charset {:?}: text shown as best effort",
                clean_line(charset)
            );
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
    }
    if let Some(boundary) = message
        .root_part()
        .content_type()
        .filter(|ct| ct.ctype().eq_ignore_ascii_case("multipart"))
        .and_then(|ct| ct.attribute("boundary"))
    {
        let closing = format!("--{boundary}--");
        if !contains_bytes(raw, closing.as_bytes()) {
            warnings.push("message is truncated: its multipart body never ends".into());
        }
    }

    let message_id = message
        .message_id()
        .map(clean_id)
        .filter(|id| !id.is_empty());
    let message_id = bounded_id(message_id, &mut warnings);
    let references = bounded_ids(ids(message.references()), "References", &mut warnings);
    let in_reply_to = bounded_ids(ids(message.in_reply_to()), "In-Reply-To", &mut warnings);
    Ok(ParsedMail {
        from,
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        subject: message.subject().map(clean_line),
        date: message.date().map(|d| d.to_rfc3339()),
        message_id,
        references,
        in_reply_to,
        text,
        alternative_text,
        attachments,
        headers,
        warnings,
    })
}

fn append_body(text: &mut String, body: &PartType<'_>) {
    let piece = match body {
        PartType::Text(t) => t.replace("\r\n", "\n"),
        PartType::Html(h) => html_to_text(h),
        _ => return,
    };
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str(piece.trim());
}

fn addresses(address: Option<&Address<'_>>) -> Vec<EmailAddress> {
    address
        .map(|a| {
            a.iter()
                .filter_map(|addr| addr.address())
                .filter_map(|a| EmailAddress::parse(a).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![clean_id(id)],
        HeaderValue::TextList(list) => list.iter().map(|id| clean_id(id)).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|id| !id.is_empty())
    .collect()
}

/// RFC 5322 caps a header line at 998 characters; a longer id is not one a
/// mail system made, and keys derived from it would not fit the stores.
pub const MAX_ID_CHARS: usize = 998;
/// Threading needs the first few references; a mail listing thousands must not
/// cost thousands of lookups.
pub const MAX_REFERENCES: usize = 50;

fn bounded_id(id: Option<String>, warnings: &mut Vec<String>) -> Option<String> {
    match id {
        Some(id) if id.chars().count() > MAX_ID_CHARS => {
            warnings.push(format!(
                "Message-ID longer than {MAX_ID_CHARS} characters ignored"
            ));
            None
        }
        other => other,
    }
}

fn bounded_ids(ids: Vec<String>, header: &str, warnings: &mut Vec<String>) -> Vec<String> {
    let total = ids.len();
    let kept: Vec<String> = ids
        .into_iter()
        .filter(|id| id.chars().count() <= MAX_ID_CHARS)
        .take(MAX_REFERENCES)
        .collect();
    if kept.len() < total {
        warnings.push(format!(
            "{header}: {} of {total} ids ignored (too long, or beyond the first {MAX_REFERENCES})",
            total - kept.len()
        ));
    }
    kept
}

fn clean_id(id: &str) -> String {
    clean_line(id.trim().trim_start_matches('<').trim_end_matches('>'))
}

/// One line of header text: control characters (CR/LF injected through encoded
/// words included) become spaces, so a header can never start a new line.
pub fn clean_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if !(c == ' ' && (out.is_empty() || out.ends_with(' '))) {
            out.push(c);
        }
    }
    out.trim_end().to_string()
}

/// Unfolds a raw header value (RFC 5322 folding) into one line.
fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_utf8_or_ascii(charset: &str) -> bool {
    matches!(
        charset.to_ascii_lowercase().as_str(),
        "utf-8" | "utf8" | "us-ascii" | "ascii"
    )
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_headerless_input_is_an_error_not_a_panic() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::Empty);
        assert_eq!(parse(b"  \r\n").unwrap_err(), ParseError::Empty);
        assert!(parse(&[0xff, 0x00, 0x13, 0x37, 0x80, 0x0a, 0x0d]).is_err());
    }

    #[test]
    fn subject_with_injected_newlines_becomes_one_line() {
        let raw = b"From: a@example.com\r\nSubject: =?UTF-8?B?SW52b2ljZQ0KQmNjOiBhdHRhY2tlckBldmlsLmV4YW1wbGU=?=\r\n\r\nbody";
        let mail = parse(raw).unwrap();
        assert_eq!(
            mail.subject.as_deref(),
            Some("Invoice Bcc: attacker@evil.example")
        );
    }

    #[test]
    fn oversized_ids_and_endless_references_are_bounded() {
        let long = "a".repeat(MAX_ID_CHARS + 1);
        let refs: Vec<String> = (0..200).map(|i| format!("<r{i}@x>")).collect();
        let raw = format!(
            "From: a@b.example\r\nMessage-ID: <{long}@x>\r\nReferences: {}\r\nSubject: s\r\n\r\nbody",
            refs.join(" ")
        );
        let mail = parse(raw.as_bytes()).unwrap();
        assert_eq!(mail.message_id, None);
        assert_eq!(mail.references.len(), MAX_REFERENCES);
        assert_eq!(mail.references[0], "r0@x");
        assert_eq!(mail.warnings.len(), 2, "{:?}", mail.warnings);
    }

    #[test]
    fn references_and_ids_lose_their_angle_brackets() {
        let raw = b"From: a@example.com\r\nMessage-ID: <m2@x>\r\nReferences: <r1@x> <r2@x>\r\nIn-Reply-To: <r2@x>\r\n\r\nhi";
        let mail = parse(raw).unwrap();
        assert_eq!(mail.message_id.as_deref(), Some("m2@x"));
        assert_eq!(mail.references, vec!["r1@x", "r2@x"]);
        assert_eq!(mail.in_reply_to, vec!["r2@x"]);
    }
}
