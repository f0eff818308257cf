//! One raw message, parsed once into the owned facts the rest of the domain reads.

use crate::html::html_to_text;
use crate::types::EmailAddress;
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use std::sync::LazyLock;

/// The sender as written in `From:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub name: Option<String>,
    pub address: Option<EmailAddress>,
    /// The address exactly as written (one line), also when it is not a valid
    /// address (`no-reply@signin.aws.`): authentication judges what it claims.
    pub written: Option<String>,
}

impl Sender {
    fn of(addr: &mail_parser::Addr<'_>) -> Self {
        Sender {
            name: addr
                .name()
                .map(|n| cut_chars(clean_line(prefix(n, 4 * MAX_NAME_CHARS)), MAX_NAME_CHARS).0)
                .filter(|n| !n.is_empty()),
            address: addr.address().and_then(|a| EmailAddress::parse(a).ok()),
            written: addr
                .address()
                .map(|a| cut_chars(clean_line(prefix(a, 4 * MAX_NAME_CHARS)), MAX_NAME_CHARS).0)
                .filter(|a| !a.is_empty()),
        }
    }

    /// The domain the address names, as written (after the last `@`).
    pub fn domain(&self) -> Option<&str> {
        match &self.address {
            Some(address) => Some(address.domain()),
            None => self
                .written
                .as_deref()
                .and_then(|w| w.rsplit_once('@'))
                .map(|(_, d)| d.trim_end_matches('>'))
                .filter(|d| !d.is_empty()),
        }
    }
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
    Shape::of(raw).check().ok()?;
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
    /// Further mailboxes of `From:` (AWS never sends from more than one).
    pub more_from: Vec<Sender>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: Option<String>,
    pub date: Option<String>,
    /// `date` as seconds since the epoch (before 1970: negative).
    pub sent_at: Option<i64>,
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
    /// How many of `headers`, from the top, SES wrote (see [`crate::ses::ses_block`]).
    pub ses_headers: usize,
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
    /// `what` names the limit as `{limit}`.
    #[error(
        "it {} ({found} counted): not parsed, to keep parsing within a bounded stack and memory",
        what.replace("{limit}", &limit.to_string())
    )]
    TooComplex {
        what: &'static str,
        found: usize,
        limit: usize,
    },
}

/// Distinct unknown charsets named in warnings (each part may name its own).
const MAX_CHARSET_WARNINGS: usize = 5;

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
    Shape::of(raw).check()?;
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
    let mut senders = message
        .from()
        .map(|a| a.iter().take(MAX_FROM_MAILBOXES).map(Sender::of).collect())
        .unwrap_or_else(Vec::new)
        .into_iter();
    let from = senders.next();
    let more_from: Vec<Sender> = senders.collect();
    let (mut text, mut attachments) = (String::new(), Vec::new());
    let mut cut = false;
    for part in message.text_bodies() {
        cut |= append_body(&mut text, &part.body);
    }
    if text.is_empty() {
        for part in message.html_bodies() {
            cut |= append_body(&mut text, &part.body);
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
            cut |= append_body(&mut alternative_text, &part.body);
        }
    }
    if cut {
        warnings.push(format!(
            "the message text is longer than {} MiB: only its start is searched and shown (open the original)",
            MAX_TEXT_BYTES >> 20
        ));
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
        let content_type = cut_chars(clean_line(&content_type), MAX_NAME_CHARS)
            .0
            .to_ascii_lowercase();
        attachments.push(Attachment {
            name: part
                .attachment_name()
                .map(|n| cut_chars(clean_line(prefix(n, 4 * MAX_NAME_CHARS)), MAX_NAME_CHARS).0)
                .unwrap_or_else(|| "(unnamed)".into()),
            text: scannable_text(&content_type, part.contents()),
            content_type,
            size: part.body.len(),
        });
    }
    let mut charset_warnings = 0;
    for part in message.parts.iter() {
        if let Some(charset) = part.content_type().and_then(|ct| ct.attribute("charset"))
            && mail_parser::decoders::charsets::map::charset_decoder(charset.as_bytes()).is_none()
            && !is_utf8_or_ascii(charset)
        {
            let warning = format!(
                "unknown charset {:?}: text shown as best effort",
                cut_chars(clean_line(charset), 60).0
            );
            if !warnings.contains(&warning) && charset_warnings < MAX_CHARSET_WARNINGS {
                warnings.push(warning);
                charset_warnings += 1;
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
        if !contains_literal(raw, &closing) {
            warnings.push("message is truncated: its multipart body never ends".into());
        }
    }

    let subject = message.subject().map(|raw| {
        let start = prefix(raw, 4 * MAX_SUBJECT_CHARS + 4);
        let (subject, cut) = cut_chars(clean_line(start), MAX_SUBJECT_CHARS);
        if cut || start.len() < raw.len() {
            warnings.push(format!(
                "Subject of {} characters cut to its first {MAX_SUBJECT_CHARS}",
                raw.chars().count()
            ));
        }
        subject
    });
    let message_id = message
        .message_id()
        .map(clean_id)
        .filter(|id| !id.is_empty());
    let message_id = bounded_id(message_id, &mut warnings);
    let references = bounded_ids(ids(message.references()), "References", &mut warnings);
    let in_reply_to = bounded_ids(ids(message.in_reply_to()), "In-Reply-To", &mut warnings);
    Ok(ParsedMail {
        from,
        more_from,
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        subject,
        date: message.date().map(|d| d.to_rfc3339()),
        sent_at: message.date().map(|d| d.to_timestamp()),
        message_id,
        references,
        in_reply_to,
        text,
        alternative_text,
        attachments,
        ses_headers: crate::ses::ses_block_len(&headers),
        headers,
        warnings,
    })
}

/// How much of a message's text is kept: searched for secrets and facts, and
/// the start shown (a ticket shows 16,000 characters).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// How much HTML is converted to text (markup is most of it).
const MAX_HTML_BYTES: usize = 4 * MAX_TEXT_BYTES;

/// Appends a body part's text, up to [`MAX_TEXT_BYTES`] in all; `true` when
/// some of it did not fit.
fn append_body(text: &mut String, body: &PartType<'_>) -> bool {
    let room = MAX_TEXT_BYTES.saturating_sub(text.len() + 2);
    let (piece, cut) = match body {
        PartType::Text(t) => (prefix(t, room).replace("\r\n", "\n"), t.len() > room),
        PartType::Html(h) => {
            let converted = html_to_text(prefix(h, MAX_HTML_BYTES));
            let cut = h.len() > MAX_HTML_BYTES || converted.len() > room;
            (prefix(&converted, room).to_string(), cut)
        }
        _ => return false,
    };
    let piece = piece.trim();
    if piece.is_empty() {
        return cut;
    }
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str(piece);
    cut
}

/// The longest start of `s` of at most `max` bytes that ends on a character.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// At most `max` characters of `s`, and whether it was longer.
fn cut_chars(s: String, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((end, _)) => (s[..end].to_string(), true),
        None => (s, false),
    }
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

/// A subject longer than any mail system writes is cut (ticket subjects show
/// 250 characters).
pub const MAX_SUBJECT_CHARS: usize = 1_000;
/// Display names and attachment names are cut to this many characters.
const MAX_NAME_CHARS: usize = 250;

/// `From:` mailboxes read (the first is the sender; the rest are only checked
/// for what they claim).
const MAX_FROM_MAILBOXES: usize = 20;

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

/// A header value longer than this is kept cut (the headers triage reads are
/// short; a 1 MB value is noise).
const MAX_HEADER_VALUE_BYTES: usize = 64 * 1024;

/// Unfolds a raw header value (RFC 5322 folding) into one line, at most
/// [`MAX_HEADER_VALUE_BYTES`] of it.
fn unfold(value: &str) -> String {
    let value = prefix(value, MAX_HEADER_VALUE_BYTES);
    // Most values are one line: no pieces to join.
    if !value.trim_end().contains(['\r', '\n']) {
        return value.trim().to_string();
    }
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

/// Whether `needle` occurs in a large haystack.
fn contains_literal(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty() && memchr::memmem::find(haystack, needle.as_bytes()).is_some()
}

/// Structure beyond what any mail needs is refused before mail-parser sees it.
/// mail-parser nests without limit, and drops what it built (and copies the
/// forwarded messages inside base64 or quoted-printable parts) by recursion,
/// one stack frame per level: 100,000 nested `message/rfc822` levels (9 MB),
/// or 700 inside one base64 part, overflow a 2 MiB stack, and a stack overflow
/// aborts the process (no panic to catch, the whole Lambda batch is lost).
pub const MAX_MIME_CONTAINERS: usize = 1_000;
/// `multipart` and `message` parts inside encoded forwarded messages, whose
/// parse recurses more deeply per level (700 overflow 2 MiB).
pub const MAX_ENCODED_CONTAINERS: usize = 100;
/// Quoted-printable forwarded messages (each is searched to the end).
const MAX_QUOTED_PRINTABLE_MESSAGES: usize = 8;
/// MIME parts: mail-parser keeps at least a 4 KiB page for each decoded part
/// body while much of the message remains (10,000 small base64 parts cost it
/// 43 MB), so 11,000 parts stay under 50 MB.
pub const MAX_MIME_PARTS: usize = 11_000;
/// Header fields, in all header blocks: each costs a few hundred bytes
/// parsed (100,000 cost 26 MB).
pub const MAX_HEADER_FIELDS: usize = 150_000;
/// How deep mail-parser parses forwarded messages that are base64 or
/// quoted-printable encoded (its `MAX_NESTED_ENCODED`).
const ENCODED_LEVELS: usize = 3;

/// What a raw message's structure will cost to parse, counted generously (a
/// count is never below what mail-parser will build): `Content-Type` fields
/// of type `multipart` or `message` anywhere (a part's headers can start in
/// the middle of a line, right after a boundary, and mail-parser reads header
/// names with whitespace ignored, in any case), runs of dashes (a boundary
/// starts with `--`), lines with a colon in paragraphs that can be header
/// blocks, and the same inside the encoded forwarded messages it decodes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub containers: usize,
    pub encoded_containers: usize,
    pub parts: usize,
    pub header_fields: usize,
    quoted_printable_messages: usize,
}

impl Shape {
    pub fn of(raw: &[u8]) -> Self {
        let mut shape = Shape::default();
        scan_shape(raw, 0, &mut shape);
        shape
    }

    /// Why parsing the message would not be bounded, if it would not.
    pub fn check(&self) -> Result<(), ParseError> {
        let too_many = |what: &'static str, found: usize, limit: usize| {
            Err(ParseError::TooComplex { what, found, limit })
        };
        if self.containers > MAX_MIME_CONTAINERS {
            return too_many(
                "nests more than {limit} multipart and message parts",
                self.containers,
                MAX_MIME_CONTAINERS,
            );
        }
        if self.encoded_containers > MAX_ENCODED_CONTAINERS {
            return too_many(
                "nests more than {limit} multipart and message parts inside encoded forwarded messages",
                self.encoded_containers,
                MAX_ENCODED_CONTAINERS,
            );
        }
        if self.quoted_printable_messages > MAX_QUOTED_PRINTABLE_MESSAGES {
            return too_many(
                "holds more than {limit} quoted-printable forwarded messages",
                self.quoted_printable_messages,
                MAX_QUOTED_PRINTABLE_MESSAGES,
            );
        }
        if self.parts > MAX_MIME_PARTS {
            return too_many(
                "has more than {limit} MIME parts",
                self.parts,
                MAX_MIME_PARTS,
            );
        }
        if self.header_fields > MAX_HEADER_FIELDS {
            return too_many(
                "has more than {limit} header fields",
                self.header_fields,
                MAX_HEADER_FIELDS,
            );
        }
        Ok(())
    }
}

static DIGEST: LazyLock<regex::bytes::Regex> =
    LazyLock::new(|| regex::bytes::Regex::new(r"(?i)digest").expect("static regex"));

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Base64,
    QuotedPrintable,
}

/// What one paragraph (lines between empty lines) holds.
#[derive(Default)]
struct Paragraph {
    dashes: usize,
    colon_lines: usize,
    /// Lines with a colon from the first run of dashes on: a part's header
    /// block starts after its boundary, which ends the previous part's body.
    colon_lines_from_dashes: usize,
    message_type: bool,
    encoding: Option<Encoding>,
}

fn scan_shape(data: &[u8], level: usize, shape: &mut Shape) {
    // In a digest, a part without a type is a forwarded message.
    let digest = DIGEST.is_match(data);
    let mut paragraph = Paragraph::default();
    let (mut first, mut previous_opens_headers) = (true, false);
    // Lines are found and searched with memchr, quick on the base64 that most
    // of a big message is.
    let mut offset = 0;
    loop {
        let start = offset;
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        offset = (end + 1).min(data.len());
        // The text after the last newline (perhaps empty) is the last line.
        let last = end == data.len();
        let line = &data[start..end];
        if !line.trim_ascii().is_empty() {
            if memchr::memchr(b'-', line).is_some() {
                paragraph.dashes += dash_runs(line);
            }
            if memchr::memchr(b':', line).is_some() {
                scan_fields(data, start, end, &mut paragraph, shape);
            }
            if !last {
                continue;
            }
        }
        if shape.check().is_err() {
            return;
        }
        // The paragraph ends: was it (or could it be) a header block?
        shape.header_fields += if first || previous_opens_headers {
            paragraph.colon_lines
        } else {
            paragraph.colon_lines_from_dashes
        };
        shape.parts += paragraph.dashes;
        // Encoded forwarded messages are decoded and parsed by mail-parser.
        let body = &data[offset..];
        if let Some(encoding) = paragraph.encoding
            && (paragraph.message_type || digest)
            && level < ENCODED_LEVELS
            && !body.is_empty()
        {
            let decoded = match encoding {
                // Base64 ends at the first `--` (a boundary, or an error).
                Encoding::Base64 => decode_base64_lenient(until_dashes(body)),
                // Quoted-printable may hold `--` before its boundary.
                Encoding::QuotedPrintable => {
                    shape.quoted_printable_messages += 1;
                    if shape.quoted_printable_messages > MAX_QUOTED_PRINTABLE_MESSAGES {
                        return;
                    }
                    decode_quoted_printable(body)
                }
            };
            let mut inner = Shape::default();
            scan_shape(&decoded, level + 1, &mut inner);
            shape.encoded_containers += inner.containers + inner.encoded_containers;
            shape.parts += inner.parts;
            shape.header_fields += inner.header_fields;
            shape.quoted_printable_messages += inner.quoted_printable_messages;
        }
        if last {
            return;
        }
        previous_opens_headers = paragraph.message_type || (digest && paragraph.dashes > 0);
        first = false;
        paragraph = Paragraph::default();
    }
}

/// Runs of two or more dashes (a boundary line starts with one).
fn dash_runs(line: &[u8]) -> usize {
    // A run starts at a dash that follows no dash and is followed by one.
    memchr::memchr_iter(b'-', line)
        .filter(|&i| line.get(i + 1) == Some(&b'-') && (i == 0 || line[i - 1] != b'-'))
        .count()
}

/// Reads the fields of a line with a colon: any `Content-Type` or
/// `Content-Transfer-Encoding` in it (headers may start mid-line).
fn scan_fields(
    data: &[u8],
    start: usize,
    end: usize,
    paragraph: &mut Paragraph,
    shape: &mut Shape,
) {
    let line = &data[start..end];
    paragraph.colon_lines += 1;
    if paragraph.dashes > 0 {
        paragraph.colon_lines_from_dashes += 1;
    }
    for i in memchr::memchr_iter(b':', line) {
        let before = &line[..i];
        // A value is read up to the next colon at most, so each byte is read
        // for one field only.
        let value = &data[start + i + 1..];
        let value = &value[..memchr::memchr(b':', value).unwrap_or(value.len())];
        if name_ends_with(before, b"content-type") {
            if let Some(message) = content_type_kind(value) {
                shape.containers += 1;
                paragraph.message_type |= message;
            }
        } else if name_ends_with(before, b"content-transfer-encoding") {
            let value = value.trim_ascii_start();
            let starts = |word: &[u8]| {
                value.len() >= word.len() && value[..word.len()].eq_ignore_ascii_case(word)
            };
            if starts(b"base64") {
                paragraph.encoding = Some(Encoding::Base64);
            } else if starts(b"quoted-printable") {
                paragraph.encoding = Some(Encoding::QuotedPrintable);
            }
        }
    }
}

/// Whether the bytes before a colon, whitespace ignored and in any case,
/// end with `name` (a header name as mail-parser reads it ends there).
/// Reads from the end without copying: this runs for every colon of a mail.
fn name_ends_with(text: &[u8], name: &[u8]) -> bool {
    let mut wanted = name.iter().rev();
    for &b in text.iter().rev().filter(|b| !b.is_ascii_whitespace()) {
        match wanted.next() {
            Some(&w) if w == b.to_ascii_lowercase() => {}
            Some(_) => return false,
            None => return true,
        }
    }
    wanted.next().is_none()
}

/// `Some(true)` for a `message` type, `Some(false)` for `multipart`, `None`
/// for anything else (comments and leading whitespace skipped, any case). A
/// type not found in the first KiB counts as a `message` (it cannot be ruled
/// out cheaply).
fn content_type_kind(value: &[u8]) -> Option<bool> {
    let mut token = Vec::new();
    let mut depth = 0usize;
    let mut resolved = false;
    for &b in value.iter().take(1024) {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            b'/' | b';' => {
                resolved = true;
                break;
            }
            _ if b.is_ascii_whitespace() && token.is_empty() => {}
            _ if token.len() >= 9 => {
                resolved = true;
                break;
            }
            _ => token.push(b.to_ascii_lowercase()),
        }
    }
    resolved |= value.len() <= 1024 && depth == 0;
    if !resolved || token.starts_with(b"message") {
        Some(true)
    } else if token.starts_with(b"multipart") {
        Some(false)
    } else {
        None
    }
}

/// The bytes before the first `--`.
fn until_dashes(data: &[u8]) -> &[u8] {
    let end = data
        .windows(2)
        .position(|w| w == b"--")
        .unwrap_or(data.len());
    &data[..end]
}

/// Base64 with everything outside the alphabet skipped (it decodes all that a
/// strict decoder would, and more).
fn decode_base64_lenient(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                (acc, bits) = (0, 0);
                continue;
            }
            _ => continue,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn decode_quoted_printable(data: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match (data[i], data.get(i + 1), data.get(i + 2)) {
            (b'=', Some(&high), Some(&low)) if hex(high).is_some() && hex(low).is_some() => {
                out.push(((hex(high).unwrap_or(0) << 4) | hex(low).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'=', Some(b'\r'), Some(b'\n')) => i += 3,
            (b'=', Some(b'\n'), _) => i += 2,
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
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

    fn nested_messages(depth: usize) -> String {
        let mut raw = String::from("From: a@b.example\r\nSubject: fwd\r\n");
        for level in 0..depth {
            raw.push_str(&format!(
                "Content-Type: message/rfc822\r\n\r\nFrom: l{level}@b.example\r\n"
            ));
        }
        raw + "Content-Type: text/plain\r\n\r\ninnermost\r\n"
    }

    #[test]
    fn nesting_is_counted_however_the_header_is_written() {
        assert_eq!(Shape::of(nested_messages(3).as_bytes()).containers, 3);
        // Header names are read with whitespace ignored and in any case; a
        // part's headers may start right after a boundary, mid-line.
        let tricky = "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                      text--bCONTENT - type: (comment) Message/rfc822\r\n\r\n\
                      From: c@d.example\r\nContent-type:\r\n multipart/digest; boundary=c\r\n\r\n--c--\r\n--b--\r\n";
        let shape = Shape::of(tricky.as_bytes());
        assert_eq!(shape.containers, 3, "{shape:?}");
        // Runs of dashes: `--b`, and both halves of each `--c--`, `--b--`.
        assert_eq!(shape.parts, 5, "{shape:?}");
        // Plain types, and the word in a body, are not containers.
        let plain = "From: a@b.example\r\nContent-Type: text/plain; name=message.txt\r\n\r\n\
                     The message body says multipart twice: multipart.\r\n";
        assert_eq!(Shape::of(plain.as_bytes()).containers, 0);
    }

    #[test]
    fn forwarded_messages_inside_base64_are_counted_too() {
        use base64_for_tests::encode;
        let inner = nested_messages(150);
        let raw = format!(
            "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=e\r\n\r\n--e\r\n\
             Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--e--\r\n",
            encode(inner.as_bytes())
        );
        let shape = Shape::of(raw.as_bytes());
        assert_eq!((shape.containers, shape.encoded_containers), (2, 150));
        let error = parse(raw.as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains(
                "nests more than 100 multipart and message parts inside encoded forwarded messages"
            ),
            "{error}"
        );
        // The same part as an opaque attachment is not decoded.
        let opaque = raw.replace(
            "Content-Type: message/rfc822",
            "Content-Type: application/pdf",
        );
        assert_eq!(Shape::of(opaque.as_bytes()).encoded_containers, 0);
    }

    #[test]
    fn too_much_structure_is_refused_before_parsing() {
        let error = parse(nested_messages(MAX_MIME_CONTAINERS + 1).as_bytes()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("it nests more than 1000 multipart and message parts (1001 counted)"),
            "{error}"
        );
        assert!(parse(nested_messages(MAX_MIME_CONTAINERS).as_bytes()).is_ok());
        let fields: String = (0..=MAX_HEADER_FIELDS)
            .map(|i| format!("X-F{i}: v\r\n"))
            .collect();
        let error = parse(format!("From: a@b.example\r\n{fields}\r\nbody").as_bytes()).unwrap_err();
        assert!(error.to_string().contains("header fields"), "{error}");
        // Colons in a body are not header fields, in a part's body neither.
        let log: String = (0..=MAX_HEADER_FIELDS)
            .map(|i| format!("10:00:{i} ok\r\n"))
            .collect();
        assert!(parse(format!("From: a@b.example\r\n\r\n{log}").as_bytes()).is_ok());
        let attached = format!(
            "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\n{log}--b\r\nContent-Type: text/plain\r\n\r\n{log}--b--\r\n"
        );
        assert_eq!(Shape::of(attached.as_bytes()).header_fields, 4);
    }

    #[test]
    fn long_text_subject_and_names_are_cut() {
        let raw = format!(
            "From: \"{}\" <a@b.example>\r\nSubject: {}\r\n\r\n{}",
            "N".repeat(10_000),
            "S".repeat(5_000),
            "t".repeat(MAX_TEXT_BYTES + 10)
        );
        let mail = parse(raw.as_bytes()).unwrap();
        assert_eq!(
            mail.subject.as_deref().map(str::len),
            Some(MAX_SUBJECT_CHARS)
        );
        assert_eq!(
            mail.from
                .as_ref()
                .and_then(|f| f.name.as_deref())
                .map(str::len),
            Some(MAX_NAME_CHARS)
        );
        assert!(mail.text.len() <= MAX_TEXT_BYTES);
        assert_eq!(mail.warnings.len(), 2, "{:?}", mail.warnings);
    }

    /// A small base64 encoder for the tests (the crate has no base64 dependency).
    mod base64_for_tests {
        pub fn encode(data: &[u8]) -> String {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut out = String::new();
            for chunk in data.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
                for i in 0..4 {
                    if i <= chunk.len() {
                        out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                    } else {
                        out.push('=');
                    }
                }
                if out.len() % 78 == 76 {
                    out.push_str("\r\n");
                }
            }
            out
        }
    }
}
