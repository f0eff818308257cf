//! What a raw message's structure will cost to parse, counted before parsing
//! it, and the lenient decoders that scan reads encoded forwarded messages with.

use super::*;
use std::ops::ControlFlow;

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
pub(super) const MAX_QUOTED_PRINTABLE_MESSAGES: usize = 8;
/// Base64 forwarded messages that start inside another's stretch (each is
/// decoded to that stretch's end again).
pub(super) const MAX_OVERLAPPING_BASE64_MESSAGES: usize = 8;
/// MIME parts: mail-parser keeps at least a 4 KiB page for each decoded part
/// body while much of the message remains (10,000 small base64 parts cost it
/// 43 MB), so 11,000 parts stay under 50 MB.
pub const MAX_MIME_PARTS: usize = 11_000;
/// Header fields, in all header blocks: each costs a few hundred bytes
/// parsed (100,000 cost 26 MB).
pub const MAX_HEADER_FIELDS: usize = 150_000;
/// How deep mail-parser parses forwarded messages that are base64 or
/// quoted-printable encoded (its `MAX_NESTED_ENCODED`).
pub(super) const ENCODED_LEVELS: usize = 3;

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
    overlapping_base64_messages: usize,
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
        if self.overlapping_base64_messages > MAX_OVERLAPPING_BASE64_MESSAGES {
            return too_many(
                "holds more than {limit} base64 forwarded messages inside another's encoded text",
                self.overlapping_base64_messages,
                MAX_OVERLAPPING_BASE64_MESSAGES,
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

/// Whether the bytes name a digest anywhere (`multipart/digest`), in any
/// case: one regex pass, its literal prefilter quicker than a loop over
/// every `d`.
fn names_digest(data: &[u8]) -> bool {
    static DIGEST: LazyLock<regex::bytes::Regex> =
        LazyLock::new(|| regex::bytes::Regex::new(r"(?i)digest").expect("static regex"));
    DIGEST.is_match(data)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Base64,
    QuotedPrintable,
}

/// What one paragraph (lines between empty lines) holds.
#[derive(Default)]
pub(super) struct Paragraph {
    dashes: usize,
    colon_lines: usize,
    /// Lines with a colon from the first run of dashes on: a part's header
    /// block starts after its boundary, which ends the previous part's body.
    colon_lines_from_dashes: usize,
    message_type: bool,
    encoding: Option<Encoding>,
}

pub(super) fn scan_shape(data: &[u8], level: usize, shape: &mut Shape) {
    // In a digest, a part without a type is a forwarded message.
    let digest = names_digest(data);
    let mut paragraph = Paragraph::default();
    let (mut first, mut previous_opens_headers) = (true, false);
    let (mut line_start, mut line_has_colon) = (0, false);
    // Where the last base64 forwarded message decoded here ends ([`scan_encoded_body`]).
    let mut base64_decoded_to = 0;
    // One pass over the bytes that matter (line ends, dashes, colons) found
    // with memchr3: quick on the base64 most of a big message is. The text
    // after the last newline (perhaps empty) is the last line.
    for at in memchr::memchr3_iter(b'\n', b'-', b':', data).chain([data.len()]) {
        match data.get(at) {
            Some(b'-') => {
                paragraph.dashes += usize::from(starts_dash_run(data, at));
                continue;
            }
            Some(b':') => {
                line_has_colon = true;
                scan_field(data, line_start, at, &mut paragraph, shape);
                continue;
            }
            _ => {}
        }
        let offset = (at + 1).min(data.len());
        let last = at == data.len();
        if !data[line_start..at].trim_ascii().is_empty() {
            // A line's dashes count before its colon, wherever they stand.
            if line_has_colon {
                paragraph.colon_lines += 1;
                paragraph.colon_lines_from_dashes += usize::from(paragraph.dashes > 0);
            }
            (line_start, line_has_colon) = (offset, false);
            if !last {
                continue;
            }
        }
        line_start = offset;
        if shape.check().is_err() {
            return;
        }
        // The paragraph ends: was it (or could it be) a header block?
        count_paragraph(&paragraph, first || previous_opens_headers, shape);
        // Encoded forwarded messages are decoded and parsed by mail-parser.
        let body = &data[offset..];
        let stretch = (offset, &mut base64_decoded_to);
        if let Some(encoding) = forwarded_encoding(&paragraph, digest, level, body)
            && scan_encoded_body(body, stretch, encoding, level, shape).is_break()
        {
            return;
        }
        if last {
            return;
        }
        previous_opens_headers = paragraph.message_type || (digest && paragraph.dashes > 0);
        first = false;
        paragraph = Paragraph::default();
    }
}

/// Whether the dash at `at` starts a run of two or more (a boundary line
/// starts with one): one follows it and none precedes it.
fn starts_dash_run(data: &[u8], at: usize) -> bool {
    data.get(at + 1) == Some(&b'-') && (at == 0 || data[at - 1] != b'-')
}

/// Adds an ended paragraph's header fields and parts. Its colon lines count
/// as header fields when it may be a header block (the first paragraph, or
/// one after a message's or a digest part's headers); otherwise only those
/// after a boundary may.
fn count_paragraph(paragraph: &Paragraph, opens_headers: bool, shape: &mut Shape) {
    shape.header_fields += if opens_headers {
        paragraph.colon_lines
    } else {
        paragraph.colon_lines_from_dashes
    };
    shape.parts += paragraph.dashes;
}

/// How the forwarded message an ended paragraph's headers open is encoded,
/// if it is one mail-parser decodes: a `message` part's, or any part's in a
/// digest, within mail-parser's levels.
fn forwarded_encoding(
    paragraph: &Paragraph,
    digest: bool,
    level: usize,
    body: &[u8],
) -> Option<Encoding> {
    let forwarded = (paragraph.message_type || digest) && level < ENCODED_LEVELS;
    paragraph.encoding.filter(|_| forwarded && !body.is_empty())
}

/// The encoded forwarded message `body` (at `offset` in its level) starts,
/// scanned. A base64 one that starts inside the stretch the last one decoded
/// (`decoded_to`, which it moves on) is decoded again to that stretch's end:
/// once per such paragraph was quadratic (16 s for 700 KB of
/// "Content-Transfer-Encoding: base64" paragraphs in a mail that says
/// "digest"). It may still be a message mail-parser reads (a
/// `message/rfc822` part's own message starts with no boundary), so it is
/// not skipped but counted, and a few are allowed.
fn scan_encoded_body(
    body: &[u8],
    (offset, decoded_to): (usize, &mut usize),
    encoding: Encoding,
    level: usize,
    shape: &mut Shape,
) -> ControlFlow<()> {
    let encoded = match encoding {
        // Base64 ends at the first `--` (a boundary, or an error).
        Encoding::Base64 => until_dashes(body),
        // Quoted-printable may hold `--` before its boundary.
        Encoding::QuotedPrintable => body,
    };
    if encoding == Encoding::Base64 {
        if offset < *decoded_to {
            shape.overlapping_base64_messages += 1;
            if shape.check().is_err() {
                return ControlFlow::Break(());
            }
        }
        *decoded_to = offset + encoded.len();
    }
    scan_encoded_message(encoded, encoding, level, shape)
}

/// Decodes an encoded forwarded message and adds what it holds, as
/// mail-parser will parse it too. Breaks when there are more
/// quoted-printable messages than allowed (each is decoded to the end).
fn scan_encoded_message(
    encoded: &[u8],
    encoding: Encoding,
    level: usize,
    shape: &mut Shape,
) -> ControlFlow<()> {
    let decoded = match encoding {
        Encoding::Base64 => decode_base64_lenient(encoded),
        Encoding::QuotedPrintable => {
            shape.quoted_printable_messages += 1;
            if shape.quoted_printable_messages > MAX_QUOTED_PRINTABLE_MESSAGES {
                return ControlFlow::Break(());
            }
            decode_quoted_printable(encoded)
        }
    };
    let mut inner = Shape::default();
    scan_shape(&decoded, level + 1, &mut inner);
    shape.encoded_containers += inner.containers + inner.encoded_containers;
    shape.parts += inner.parts;
    shape.header_fields += inner.header_fields;
    shape.quoted_printable_messages += inner.quoted_printable_messages;
    shape.overlapping_base64_messages += inner.overlapping_base64_messages;
    ControlFlow::Continue(())
}

/// Reads the field a colon ends the name of: a `Content-Type` or
/// `Content-Transfer-Encoding` (headers may start mid-line, so every colon
/// of a line is one).
fn scan_field(
    data: &[u8],
    line_start: usize,
    colon: usize,
    paragraph: &mut Paragraph,
    shape: &mut Shape,
) {
    let name = &data[line_start..colon];
    // A value is read up to the next colon at most, so each byte is read
    // for one field only.
    let value = || {
        let value = &data[colon + 1..];
        &value[..memchr::memchr(b':', value).unwrap_or(value.len())]
    };
    if name_ends_with(name, b"content-type") {
        if let Some(message) = content_type_kind(value()) {
            shape.containers += 1;
            paragraph.message_type |= message;
        }
    } else if name_ends_with(name, b"content-transfer-encoding") {
        let value = value().trim_ascii_start();
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

/// Whether the bytes before a colon, whitespace ignored and in any case,
/// end with `name` (a header name as mail-parser reads it ends there).
/// Reads from the end without copying: this runs for every colon of a mail.
pub(super) fn name_ends_with(text: &[u8], name: &[u8]) -> bool {
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
pub(super) fn content_type_kind(value: &[u8]) -> Option<bool> {
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
pub(super) fn until_dashes(data: &[u8]) -> &[u8] {
    let end = memchr::memmem::find(data, b"--").unwrap_or(data.len());
    &data[..end]
}

/// Base64 with everything outside the alphabet skipped (it decodes all that a
/// strict decoder would, and more).
pub(super) fn decode_base64_lenient(data: &[u8]) -> Vec<u8> {
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

pub(super) fn decode_quoted_printable(data: &[u8]) -> Vec<u8> {
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

    /// The count as the doc of [`Shape`] words it, a line at a time and
    /// without memchr: what the one-pass scan must agree with (encoded
    /// forwarded messages left out: they are scanned by the same code).
    fn counted_line_by_line(data: &[u8]) -> Shape {
        let mut shape = Shape::default();
        let mut paragraph = Paragraph::default();
        let mut opens_headers = true;
        let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        let mut line_start = 0;
        for (i, line) in lines.iter().enumerate() {
            let last = i == lines.len() - 1;
            if !line.trim_ascii().is_empty() {
                paragraph.dashes += (0..line.len())
                    .filter(|&j| line[j] == b'-' && line.get(j + 1) == Some(&b'-'))
                    .filter(|&j| j == 0 || line[j - 1] != b'-')
                    .count();
                let colons: Vec<usize> = (0..line.len()).filter(|&j| line[j] == b':').collect();
                if !colons.is_empty() {
                    paragraph.colon_lines += 1;
                    paragraph.colon_lines_from_dashes += usize::from(paragraph.dashes > 0);
                }
                for j in colons {
                    scan_field(data, line_start, line_start + j, &mut paragraph, &mut shape);
                }
            }
            line_start += line.len() + 1;
            if line.trim_ascii().is_empty() || last {
                count_paragraph(&paragraph, opens_headers, &mut shape);
                opens_headers = paragraph.message_type;
                paragraph = Paragraph::default();
            }
        }
        shape
    }

    #[test]
    fn the_one_pass_scan_counts_what_a_line_by_line_count_does() {
        let pieces: [&[u8]; 14] = [
            b"\n",
            b"\r\n",
            b" ",
            b"-",
            b"--",
            b":",
            b"a",
            b"Content-Type",
            b"content - TYPE",
            b" multipart/mixed",
            b" message/rfc822",
            b" text/plain",
            b"\t",
            b"x: y",
        ];
        // A small deterministic generator: inputs made of the pieces the scan
        // treats specially, in every order.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..3_000 {
            let mut data = Vec::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                data.extend_from_slice(pieces[(seed % pieces.len() as u64) as usize]);
            }
            assert_eq!(
                Shape::of(&data),
                counted_line_by_line(&data),
                "{:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }

    #[test]
    fn digest_is_found_in_any_case_and_only_whole() {
        assert!(names_digest(b"Content-Type: multipart/DiGeSt"));
        assert!(names_digest(b"digest"));
        assert!(!names_digest(b"diges") && !names_digest(b"d-igest") && !names_digest(b""));
    }
}
