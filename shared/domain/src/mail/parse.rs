//! The parse: mail-parser's message turned into the owned facts of `ParsedMail`,
//! every field bounded.

use super::*;
use crate::html::html_to_text;
use mail_parser::{Address, HeaderValue, Message, MessagePart, MimeHeaders, PartType};

/// Distinct unknown charsets named in warnings (each part may name its own).
pub(super) const MAX_CHARSET_WARNINGS: usize = 5;

/// Headers whose presence shows the bytes really are a message.
pub(super) const MESSAGE_HEADERS: &[&str] = &[
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

/// The message, read. A panic on the way (a bug, ours or mail-parser's,
/// that hostile mail reached) is an error like any unreadable message's, so
/// the message is quarantined and the rest of a batch goes on.
pub fn parse(raw: &[u8]) -> Result<ParsedMail, ParseError> {
    std::panic::catch_unwind(|| parse_message(raw)).unwrap_or(Err(ParseError::Failed))
}

fn parse_message(raw: &[u8]) -> Result<ParsedMail, ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    Shape::of(raw).check()?;
    let message = MESSAGE_PARSER.parse(raw).ok_or(ParseError::NoHeaders)?;
    let (headers, field_ends) = message_headers(&message)?;

    let mut warnings = Vec::new();
    let (from, more_from) = senders(&message);
    let (text, alternative_text) = body_texts(&message, &mut warnings);
    if let Some(warning) = subject_line_break_warning(&message) {
        warnings.push(warning);
    }
    let mut scan_budget = MAX_SCANNED_BYTES_PER_MAIL;
    let attachments = message
        .attachments()
        .map(|part| attachment(part, &mut scan_budget))
        .collect();
    push_charset_warnings(&message, &mut warnings);
    if multipart_never_ends(&message, raw) {
        warnings.push("message is truncated: its multipart body never ends".into());
    }
    let subject = bounded_subject(&message, &mut warnings);
    let ses_headers = crate::ses::ses_block_len(&headers);
    // The end of SES's last header (its line break included): a line below
    // it that is not in `headers` (no colon) is the sender's.
    let ses_block_end = match ses_headers {
        0 => 0,
        n => field_ends.get(n - 1).copied().unwrap_or(0),
    };
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
        ses_headers,
        ses_block_end,
        envelope: crate::ses::envelope_in(&headers, ses_headers),
        headers,
        warnings,
        mentioned: Default::default(),
    })
}

/// The header fields, unfolded, and where each ends in the raw message;
/// refused unless one is a field a message has (bytes that merely parse are
/// not yet mail). A value that is not UTF-8 is kept with U+FFFD for what
/// does not decode: left out, it would let the header below it take its
/// place (a sender's forged `Authentication-Results` in SES's block, when
/// SES's own quoted a sender's 8-bit HELO).
fn message_headers(message: &Message<'_>) -> Result<(Headers, Vec<usize>), ParseError> {
    let mut headers = Headers::default();
    let mut ends = Vec::new();
    let raw = &message.raw_message[..];
    for header in message.headers() {
        let start = header.offset_start as usize;
        let end = header.offset_end as usize;
        if let Some(value) = raw.get(start..end) {
            headers.push(header.name.as_str(), &lossy(value));
            ends.push(end);
        }
    }
    let recognised = headers
        .iter()
        .any(|(name, _)| MESSAGE_HEADERS.iter().any(|m| name.eq_ignore_ascii_case(m)));
    if !recognised {
        return Err(ParseError::NoHeaders);
    }
    Ok((headers, ends))
}

/// The first `From:` mailbox (the sender) and the others, at most
/// [`MAX_FROM_MAILBOXES`] in all: the others are only checked for what they claim.
fn senders(message: &Message<'_>) -> (Option<Sender>, Vec<Sender>) {
    let mut senders = message
        .from()
        .map(|a| {
            a.iter()
                .take(MAX_FROM_MAILBOXES)
                .map(Sender::of)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter();
    let from = senders.next();
    (from, senders.collect())
}

/// The text shown (the plain-text bodies, else the HTML ones as text) and the
/// HTML alternative of a plain-text mail; a warning when either was cut.
fn body_texts(message: &Message<'_>, warnings: &mut Vec<String>) -> (String, String) {
    let mut text = String::new();
    let mut cut = false;
    for part in message.text_bodies() {
        cut |= append_body(&mut text, &part.body, Lines::of(part));
    }
    if text.is_empty() {
        for part in message.html_bodies() {
            cut |= append_body(&mut text, &part.body, Lines::of(part));
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
            cut |= append_body(&mut alternative_text, &part.body, Lines::of(part));
        }
    }
    if cut {
        warnings.push(format!(
            "the message text is longer than {} MiB: only its start is searched and shown (open the original)",
            MAX_TEXT_BYTES >> 20
        ));
    }
    (text, alternative_text)
}

/// A line break decoded into the subject may be an attempt to inject headers
/// into what shows it.
fn subject_line_break_warning(message: &Message<'_>) -> Option<String> {
    let raw_subject = message.subject().unwrap_or_default();
    raw_subject
        .chars()
        .any(|c| c == '\r' || c == '\n')
        .then(|| {
            "subject contained line breaks (a header injection attempt?); shown on one line".into()
        })
}

/// An attachment as a ticket lists it: type and name on one bounded line, and
/// the text of what can be searched, while the mail's `scan_budget` lasts
/// (what is not searched is withheld).
fn attachment(part: &MessagePart<'_>, scan_budget: &mut usize) -> Attachment {
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
    let name = part
        .attachment_name()
        .map(|n| bounded_line(n, MAX_NAME_CHARS).0)
        .unwrap_or_else(|| "(unnamed)".into());
    let contents = part.contents();
    let textual = matches!(part.body, PartType::Message(_))
        || is_textual(&content_type)
        || reads_as_text(contents);
    let text = match &part.body {
        _ if textual && contents.len() > *scan_budget => None,
        PartType::Message(forwarded) => forwarded_text(contents, forwarded, 0),
        _ if !textual || contents.len() > MAX_SCANNED_ATTACHMENT_BYTES => None,
        _ if holds_a_message(part.attachment_name(), contents) => saved_message_text(contents, 0),
        // A page is searched as the body is too: its character references
        // read (`https&colon;&sol;&sol;...` is a link), beside the markup.
        _ if is_html(&content_type, &name) => {
            let markup = file_text(contents);
            let mut text = html_to_text(prefix(&markup, MAX_HTML_BYTES));
            text.push('\n');
            text.push_str(&markup);
            Some(text)
        }
        _ => Some(file_text(contents)),
    };
    let text = text.map(|mut text| {
        *scan_budget = scan_budget.saturating_sub(contents.len());
        remove_invisible(&mut text);
        text
    });
    Attachment {
        name,
        textual,
        text,
        content_type,
        size: part.body.len(),
    }
}

/// A page, by its declared type or by its name (a page sent as
/// `application/octet-stream` or `text/plain` is a page all the same).
fn is_html(content_type: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(content_type, "text/html" | "application/xhtml+xml")
        || name.ends_with(".html")
        || name.ends_with(".htm")
        || name.ends_with(".xhtml")
}

/// How much of an attachment declared opaque is looked at to tell text.
const SNIFFED_BYTES: usize = 8000;

/// Whether bytes read as text whatever type they were sent as (many mail
/// clients send a `.txt` or a saved `.eml` as `application/octet-stream`, and
/// the type is the sender's word): git's rule, no NUL in the first 8,000
/// bytes, or UTF-16 with its byte-order mark (what Windows' Notepad and
/// PowerShell 5 write). Images, archives and compressed PDFs have a NUL
/// almost at once; a text file in any 8-bit charset has none.
fn reads_as_text(contents: &[u8]) -> bool {
    utf16_order(contents).is_some() || !contents[..contents.len().min(SNIFFED_BYTES)].contains(&0)
}

/// The byte order a UTF-16 byte-order mark at the start says, if any.
fn utf16_order(contents: &[u8]) -> Option<fn([u8; 2]) -> u16> {
    match contents {
        [0xFF, 0xFE, ..] => Some(u16::from_le_bytes),
        [0xFE, 0xFF, ..] => Some(u16::from_be_bytes),
        _ => None,
    }
}

/// Whether a file is a saved message, however it was sent (as
/// `text/plain`, `application/octet-stream`, no type): named `.eml` (the
/// whole name, not the cut one a ticket lists), or starting as a message
/// does, with one of [`MESSAGE_HEADERS`]. Such a file is read decoded, so
/// a code in its base64 body is found; reading a text file that merely
/// starts so as a message only adds to what is searched.
fn holds_a_message(name: Option<&str>, contents: &[u8]) -> bool {
    let named = name.and_then(|n| n.rsplit_once('.'));
    if named.is_some_and(|(_, extension)| extension.eq_ignore_ascii_case("eml")) {
        return true;
    }
    let first_line = contents.split(|&b| b == b'\n').next().unwrap_or_default();
    let field = first_line.split(|&b| b == b':').next().unwrap_or_default();
    field.len() < first_line.len()
        && MESSAGE_HEADERS
            .iter()
            .any(|h| field.eq_ignore_ascii_case(h.as_bytes()))
}

/// The text of a file sent without a charset: UTF-8 when it is, else read
/// as Windows-1252 (every byte a character), so a Latin-1 "Código: 493817"
/// keeps the word that makes its number a code.
fn file_text(contents: &[u8]) -> String {
    if let Some(unit) = utf16_order(contents) {
        let units: Vec<u16> = contents[2..]
            .chunks_exact(2)
            .map(|pair| unit([pair[0], pair[1]]))
            .collect();
        // And as bytes too: two bytes that look like a byte-order mark
        // before 8-bit text must not hide that text.
        let mut text = String::from_utf16_lossy(&units);
        text.push('\n');
        text.push_str(&eight_bit_text(&contents[2..]));
        return text;
    }
    eight_bit_text(contents)
}

/// Bytes as UTF-8 when they are, else as Windows-1252.
/// `bytes` as text, invalid UTF-8 replaced: `from_utf8` checks valid text
/// (nearly all of it) several times faster than `from_utf8_lossy` reads it
/// (profiled: 3% of triage's instructions for header values).
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn eight_bit_text(contents: &[u8]) -> String {
    match std::str::from_utf8(contents) {
        Ok(text) => text.to_string(),
        Err(_) => mail_parser::decoders::charsets::map::charset_decoder(b"windows-1252")
            .map_or_else(
                || String::from_utf8_lossy(contents).into_owned(),
                |decode| decode(contents),
            ),
    }
}

/// How many saved messages deep, one inside another's files, a saved message
/// is still read; one deeper is withheld. Each is parsed from its own bytes,
/// so the bound keeps the work linear in the attachment's size.
pub(super) const MAX_SAVED_MESSAGE_DEPTH: usize = 4;

/// A message saved as a file and attached as such, `depth` saved messages
/// deep, read as a forwarded one: decoded, so a code in its base64 body is
/// found. Its shape is checked first, as the message's own is (nothing
/// outside saw inside the encoded file); None, so the file is withheld,
/// when it fails that check or is nested deeper than
/// [`MAX_SAVED_MESSAGE_DEPTH`].
fn saved_message_text(contents: &[u8], depth: usize) -> Option<String> {
    if depth >= MAX_SAVED_MESSAGE_DEPTH {
        return None;
    }
    Shape::of(contents).check().ok()?;
    match MESSAGE_PARSER.parse(contents) {
        Some(saved) => forwarded_text(contents, &saved, depth),
        None => Some(file_text(contents)),
    }
}

/// What a search for secrets reads of a forwarded message: its bytes as
/// written and every text and HTML body inside it decoded, as the message's
/// own text is read ([`append_body`]), however deeply forwarded (AWS writes
/// its secret mail in base64 or quoted-printable, which the bytes alone
/// hide), and a saved message among its files decoded too. None, so the
/// attachment is withheld, when the bytes are over
/// [`MAX_SCANNED_ATTACHMENT_BYTES`] or the decoded text had to be cut.
fn forwarded_text(raw: &[u8], forwarded: &Message<'_>, depth: usize) -> Option<String> {
    if raw.len() > MAX_SCANNED_ATTACHMENT_BYTES {
        return None;
    }
    let mut decoded = String::new();
    let mut messages = vec![forwarded];
    while let Some(message) = messages.pop() {
        // Its subject and senders' names as they read: an encoded word hides
        // what the bytes hold ("=?UTF-8?B?...?=").
        let names = message.from().into_iter().flat_map(|from| from.iter());
        let shown = message
            .subject()
            .into_iter()
            .chain(names.filter_map(|a| a.name()));
        for header in shown {
            decoded.push('\n');
            decoded.push_str(header);
        }
        for part in &message.parts {
            let file = part.contents();
            let saved = !matches!(part.body, PartType::Message(_) | PartType::Html(_))
                && holds_a_message(part.attachment_name(), file);
            match &part.body {
                PartType::Message(inner) => messages.push(inner),
                // A saved message among its files, however it was sent.
                _ if saved => {
                    if decoded.len() + file.len() > MAX_SCANNED_ATTACHMENT_BYTES {
                        return None;
                    }
                    decoded.push_str("\n\n");
                    decoded.push_str(&saved_message_text(file, depth + 1)?);
                }
                // A file of the forwarded message, decoded as its own are.
                PartType::Binary(bytes) | PartType::InlineBinary(bytes) if reads_as_text(bytes) => {
                    if decoded.len() + bytes.len() > MAX_SCANNED_ATTACHMENT_BYTES {
                        return None;
                    }
                    decoded.push_str("\n\n");
                    decoded.push_str(&file_text(bytes));
                }
                body if append_body(&mut decoded, body, Lines::of(part)) => return None,
                _ => {}
            }
        }
    }
    Some(format!("{}\n{decoded}", String::from_utf8_lossy(raw)))
}

/// A warning for each distinct charset no decoder knows (its text is shown as
/// best effort), at most [`MAX_CHARSET_WARNINGS`]: every part may name its own.
fn push_charset_warnings(message: &Message<'_>, warnings: &mut Vec<String>) {
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
}

/// Whether a multipart message lacks its closing boundary: it was cut short.
fn multipart_never_ends(message: &Message<'_>, raw: &[u8]) -> bool {
    message
        .root_part()
        .content_type()
        .filter(|ct| ct.ctype().eq_ignore_ascii_case("multipart"))
        .and_then(|ct| ct.attribute("boundary"))
        .is_some_and(|boundary| !contains_literal(raw, &format!("--{boundary}--")))
}

/// The subject on one line, at most [`MAX_SUBJECT_CHARS`]; a warning when cut.
fn bounded_subject(message: &Message<'_>, warnings: &mut Vec<String>) -> Option<String> {
    message.subject().map(|raw| {
        let (subject, cut) = bounded_line(raw, MAX_SUBJECT_CHARS);
        if cut {
            warnings.push(format!(
                "Subject of {} characters cut to its first {MAX_SUBJECT_CHARS}",
                raw.chars().count()
            ));
        }
        subject
    })
}

/// A header's words (a subject, a name) on one line, at most `max`
/// characters, and whether they were cut. A cut ends at the last whole
/// word: the secret search reads the line as kept, and would not know the
/// first digits of a code cut in two for one, where the ticket shows them.
/// A longer last piece (a line of one word) is kept as cut: no code is that
/// long, and a link's start is still read as a link.
pub(super) fn bounded_line(raw: &str, max: usize) -> (String, bool) {
    let start = prefix(raw, 4 * max + 4);
    let (mut line, cut) = cut_chars(clean_line(start), max);
    // Past the prefix, only characters clean_line drops (invisible ones):
    // nothing visible was cut, and the last word is whole.
    let rest_visible = || !clean_line(&raw[start.len()..]).trim().is_empty();
    if !cut && (start.len() == raw.len() || !rest_visible()) {
        return (line, start.len() < raw.len());
    }
    let whole = (line.char_indices().rev())
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(at, c)| at + c.len_utf8());
    if line[whole..].chars().nth(MAX_CUT_PIECE_CHARS).is_none() {
        line.truncate(whole);
        line.truncate(line.trim_end().len());
    }
    (line, true)
}

/// The longest last piece of a cut line that is dropped rather than shown.
const MAX_CUT_PIECE_CHARS: usize = 64;

/// How much of a message's text is kept: searched for secrets and facts, and
/// the start shown (a ticket shows 16,000 characters).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// How much HTML is converted to text (markup is most of it).
pub(super) const MAX_HTML_BYTES: usize = 4 * MAX_TEXT_BYTES;

/// Appends a body part's text, up to [`MAX_TEXT_BYTES`] in all; `true` when
/// some of it did not fit.
pub(super) fn append_body(text: &mut String, body: &PartType<'_>, lines: Lines) -> bool {
    let room = MAX_TEXT_BYTES.saturating_sub(text.len() + 2);
    let (piece, cut) = match body {
        PartType::Text(t) => {
            let piece = prefix(t, room).replace("\r\n", "\n");
            match lines {
                Lines::Fixed => (piece, t.len() > room),
                Lines::Flowed { delsp } => (unflowed(&piece, delsp), t.len() > room),
            }
        }
        PartType::Html(h) => {
            let converted = html_to_text(prefix(h, MAX_HTML_BYTES));
            let cut = h.len() > MAX_HTML_BYTES || converted.len() > room;
            (prefix(&converted, room).to_string(), cut)
        }
        _ => return false,
    };
    let mut piece = piece;
    remove_invisible(&mut piece);
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

/// How a plain-text part's lines are wrapped (RFC 3676): in `format=flowed`
/// text a line that ends with a space goes on in the next, as a reader shows
/// it (Thunderbird sends it so); with `delsp=yes` that space is the
/// sender's, not the text's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lines {
    Fixed,
    Flowed { delsp: bool },
}

impl Lines {
    pub(super) fn of(part: &MessagePart<'_>) -> Self {
        let Some(content_type) = part.content_type() else {
            return Lines::Fixed;
        };
        let is = |name: &str, value: &str| {
            content_type
                .attribute(name)
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        };
        match is("format", "flowed") {
            true => Lines::Flowed {
                delsp: is("delsp", "yes"),
            },
            false => Lines::Fixed,
        }
    }
}

/// `text` (lines ending `\n`) with its flowed lines joined (RFC 3676 4.2): a
/// line that ends with a space goes on in the next line of the same quote
/// depth; a line's first space is the sender's stuffing; the signature line
/// `-- ` is never flowed. A code wrapped there ("615 274" broken after its
/// space) was shown and searched in two lines.
pub(super) fn unflowed(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    // The quote depth of a flowed line whose next line goes on with it.
    let mut open: Option<usize> = None;
    for line in text.split('\n') {
        let depth = line.bytes().take_while(|&b| b == b'>').count();
        let content = &line[depth..];
        let content = content.strip_prefix(' ').unwrap_or(content);
        let goes_on = open == Some(depth);
        if open.is_some() && !goes_on {
            out.push('\n');
        }
        if !goes_on && depth > 0 {
            out.extend(std::iter::repeat_n('>', depth));
            out.push(' ');
        }
        let flowed = content.ends_with(' ') && content != "-- ";
        out.push_str(match flowed && delsp {
            true => &content[..content.len() - 1],
            false => content,
        });
        open = flowed.then_some(depth);
        if !flowed {
            out.push('\n');
        }
    }
    out
}

/// A character that shows nothing, yet splits a word for a search: a code
/// written "482\u{200B}913" (a zero-width space or joiner, a soft hyphen or
/// `&shy;`, a direction mark, a variation selector, a tag character) reads as
/// 482913 and was not found. Removed from the text searched and shown, an
/// attachment's included, and from header values.
pub(super) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// `text` without its [`is_invisible`] characters. Most text has none (no
/// byte that starts one), and is left as it is after a byte scan.
pub(super) fn remove_invisible(text: &mut String) {
    let may_hold = |b: &u8| matches!(b, 0xC2 | 0xCD | 0xD8 | 0xE1 | 0xE2 | 0xEF | 0xF0 | 0xF3);
    if text.as_bytes().iter().any(may_hold) && text.chars().any(is_invisible) {
        text.retain(|c| !is_invisible(c));
    }
}

/// The longest start of `s` of at most `max` bytes that ends on a character.
pub(super) fn prefix(s: &str, max: usize) -> &str {
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
pub(super) fn cut_chars(s: String, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((end, _)) => (s[..end].to_string(), true),
        None => (s, false),
    }
}

pub(super) fn addresses(address: Option<&Address<'_>>) -> Vec<EmailAddress> {
    address
        .map(|a| {
            a.iter()
                .filter_map(|addr| addr.address())
                .filter_map(|a| EmailAddress::parse(a).ok())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn ids(value: &HeaderValue<'_>) -> Vec<String> {
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
pub(crate) const MAX_NAME_CHARS: usize = 250;

/// `From:` mailboxes read (the first is the sender; the rest are only checked
/// for what they claim).
pub(super) const MAX_FROM_MAILBOXES: usize = 20;

/// RFC 5322 caps a header line at 998 characters; a longer id is not one a
/// mail system made, and keys derived from it would not fit the stores.
pub const MAX_ID_CHARS: usize = 998;
/// Threading needs the first few references; a mail listing thousands must not
/// cost thousands of lookups.
pub const MAX_REFERENCES: usize = 50;

pub(super) fn bounded_id(id: Option<String>, warnings: &mut Vec<String>) -> Option<String> {
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

pub(super) fn bounded_ids(
    ids: Vec<String>,
    header: &str,
    warnings: &mut Vec<String>,
) -> Vec<String> {
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

pub(super) fn clean_id(id: &str) -> String {
    clean_line(id.trim().trim_start_matches('<').trim_end_matches('>'))
}

/// The noncharacters U+FFFE and U+FFFF, which SQS refuses in a message.
pub fn is_refused_noncharacter(c: char) -> bool {
    matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// One line of header text: control characters (CR/LF injected through encoded
/// words included) become spaces, so a header can never start a new line; the
/// noncharacters U+FFFE and U+FFFF become U+FFFD (SQS refuses them, and a
/// Message-ID's end up in the thread key every queued operation carries).
pub fn clean_line(s: &str) -> String {
    match s.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        true => clean_ascii_line(s),
        false => clean_any_line(s),
    }
}

/// [`clean_line`] character by character.
pub(super) fn clean_any_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| !is_invisible(*c)) {
        let c = match c {
            c if c.is_control() => ' ',
            c if is_refused_noncharacter(c) => '\u{FFFD}',
            c => c,
        };
        if !(c == ' ' && (out.is_empty() || out.ends_with(' '))) {
            out.push(c);
        }
    }
    out.trim_end().to_string()
}

/// [`clean_line`] of printable ASCII, which has nothing to replace or
/// remove but spaces: its words joined by one space (profiled: most header
/// text, several times cheaper than reading it character by character).
pub(super) fn clean_ascii_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A header value longer than this is kept cut (the headers triage reads are
/// short; a 1 MB value is noise).
pub(super) const MAX_HEADER_VALUE_BYTES: usize = 64 * 1024;

/// Appends a raw header value unfolded (RFC 5322 folding) into one line, at most
/// [`MAX_HEADER_VALUE_BYTES`] of it.
pub(super) fn unfold(out: &mut String, value: &str) {
    let value = prefix(value, MAX_HEADER_VALUE_BYTES);
    // Each line of the value trimmed, the non-empty ones joined by a space.
    let breaks = memchr::memchr2_iter(b'\r', b'\n', value.as_bytes());
    let (mut start, mut first) = (0, true);
    for end in breaks.chain([value.len()]) {
        // Line breaks are ASCII, so both ends fall on characters.
        let piece = value[start..end].trim();
        start = end + 1;
        if !piece.is_empty() {
            if !first {
                out.push(' ');
            }
            out.push_str(piece);
            first = false;
        }
    }
}

pub(super) fn is_utf8_or_ascii(charset: &str) -> bool {
    matches!(
        charset.to_ascii_lowercase().as_str(),
        "utf-8" | "utf8" | "us-ascii" | "ascii"
    )
}

/// Whether `needle` occurs in a large haystack, searched from the end (where
/// a closing boundary stands).
pub(super) fn contains_literal(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty() && memchr::memmem::rfind(haystack, needle.as_bytes()).is_some()
}
