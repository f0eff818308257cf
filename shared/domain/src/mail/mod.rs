//! One raw message, parsed once into the owned facts the rest of the domain reads.
//! The model is here; `parse` builds it from mail-parser's message, and
//! `shape` measures a message's structure before it is parsed.

use crate::types::{AccountId, EmailAddress};
use mail_parser::{HeaderName, MessageParser};
use std::sync::{LazyLock, OnceLock};

mod parse;
mod shape;

pub use parse::*;
pub use shape::*;

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
                .map(|n| bounded_line(n, MAX_NAME_CHARS).0)
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
    /// Whether it is text a person could read a secret in: declared so, or
    /// read so whatever its declared type.
    #[serde(skip)]
    pub textual: bool,
    /// The decoded text of a textual attachment (up to [`MAX_SCANNED_ATTACHMENT_BYTES`]),
    /// kept only so triage can search it for secrets before it is ever uploaded.
    #[serde(skip)]
    pub text: Option<String>,
}

impl Attachment {
    /// Text a person could read a secret in, not searched for one (too long,
    /// past the mail's budget, or nested too deep).
    pub fn unsearched(&self) -> bool {
        self.textual && self.text.is_none()
    }
}

/// How much of a textual attachment is searched for secrets; a longer one is
/// never uploaded (it could hide a secret past the scanned part).
pub const MAX_SCANNED_ATTACHMENT_BYTES: usize = 1024 * 1024;

/// How much of all a mail's attachments is searched for secrets: later
/// ones are withheld. A 40 MiB mail of forwarded messages made every one of
/// them be decoded and searched, past what mail-ingest's memory holds
/// (600 MB, 12 s of triage, measured).
pub const MAX_SCANNED_BYTES_PER_MAIL: usize = 4 * MAX_SCANNED_ATTACHMENT_BYTES;

/// mail-parser as rootmail reads mail: the MIME headers and the fields
/// `ParsedMail` keeps are parsed, every other header is only skipped over
/// (its default parses `Received`, `List-*` and `Return-Path` too, which
/// nothing reads). Every field still keeps its place in the raw mail, which
/// is where `ParsedMail::headers` reads them: keeping a value raw was a
/// byte loop and a UTF-8 check of a value nothing read (about 15% of parsing
/// in `perf`). Parse and attachment download share it, so both see the same
/// parts in the same order.
static MESSAGE_PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .with_mime_headers()
        .header_date(HeaderName::Date)
        .header_text(HeaderName::Subject)
        .header_address(HeaderName::From)
        .header_address(HeaderName::To)
        .header_address(HeaderName::Cc)
        .header_id(HeaderName::MessageId)
        .header_id(HeaderName::InReplyTo)
        .header_id(HeaderName::References)
        .default_header_ignore()
});

/// The decoded bytes of the message's attachments at `indexes` (the order
/// of [`ParsedMail::attachments`]), for uploading to a ticket: the message is
/// parsed once for all of them (once each made a mail of 50 attachments
/// cost 50 parses). `None` where the message has no such attachment, and
/// for every index when it does not parse.
pub fn attachments_bytes(raw: &[u8], indexes: &[usize]) -> Vec<Option<Vec<u8>>> {
    let parsed = Shape::of(raw)
        .check()
        .ok()
        .and_then(|()| MESSAGE_PARSER.parse(raw));
    let Some(message) = parsed else {
        return vec![None; indexes.len()];
    };
    let parts: Vec<_> = message.attachments().collect();
    (indexes.iter())
        .map(|&i| parts.get(i).map(|part| part.contents().to_vec()))
        .collect()
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
    /// Top-level headers, each value unfolded, in order: SES prepends its own first.
    pub headers: Headers,
    /// How many of `headers`, from the top, SES wrote (see [`crate::ses::ses_block`]).
    pub ses_headers: usize,
    /// Where in the raw message SES's block ends (0: there is none): what
    /// follows is the message as its sender sent it.
    pub ses_block_end: usize,
    /// What SES's `Received` says of the delivery (empty without SES's block).
    pub envelope: crate::ses::Envelope,
    pub warnings: Vec<String>,
    /// [`Self::mentioned_account_ids`], found on first use: the pipeline asks
    /// before triage (to fetch those accounts) and triage asks again. Read
    /// from `subject` and `text` as parsed (nothing changes them after).
    mentioned: OnceLock<crate::directory::Mentions>,
}

impl ParsedMail {
    /// The account ids the subject and text mention, in order of appearance
    /// ([`crate::directory::mentioned_account_ids`]), searched for once.
    pub fn mentioned_account_ids(&self) -> &[AccountId] {
        &self.mentions().ids
    }

    /// The first account id the subject or text writes after a label,
    /// outside links ([`crate::directory::Mentions::labelled`]).
    pub fn labelled_account_id(&self) -> Option<&AccountId> {
        self.mentions().labelled.as_ref()
    }

    /// The last four digits of the first account id written masked
    /// (`****-****-6006`, [`crate::directory::Mentions::masked_tail`]).
    pub fn masked_account_tail(&self) -> Option<&str> {
        self.mentions().masked_tail.as_deref()
    }

    fn mentions(&self) -> &crate::directory::Mentions {
        self.mentioned.get_or_init(|| {
            let mut text = String::with_capacity(self.text.len() + 256);
            text.push_str(self.subject.as_deref().unwrap_or_default());
            text.push('\n');
            text.push_str(&self.text);
            crate::directory::mentions(&text)
        })
    }

    /// The first header of that name (case-insensitive): the one nearest the top,
    /// which for SES's headers is the one SES wrote, not one the sender forged below.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers_named(name).next()
    }

    /// When the mail reached the mailbox it was read from (seconds since the
    /// epoch): the date its topmost `Received` header ends with, which the
    /// receiving server wrote (SES, or the mailbox's own server). Only a mail
    /// with no `Received` header at all (a file written by hand) is taken at
    /// its `Date`, which anyone can set to any day; a stamp that cannot be
    /// read is not replaced by it: None, so a backfill tickets the mail.
    pub fn delivered_at(&self) -> Option<i64> {
        let Some(received) = self.header("Received") else {
            return self.sent_at;
        };
        let (_, date) = received.rsplit_once(';')?;
        let date = date.trim();
        // A trailing comment, as in "+0000 (UTC)".
        let date = match date.rfind('(') {
            Some(open) if date.ends_with(')') => date[..open].trim_end(),
            _ => date,
        };
        mail_parser::DateTime::parse_rfc822(date).map(|d| d.to_timestamp())
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
            .map(|(_, v)| v)
    }
}

/// Header fields as (name, value) in order, kept in one buffer: a mail has
/// tens of them, and a `String` each was two allocations per field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    text: String,
    /// Where each field's name ends and its value ends, in `text` (each
    /// starts where the one before it ends).
    ends: Vec<(usize, usize)>,
}

impl Headers {
    /// Adds a field, its value unfolded ([`unfold`]).
    pub fn push(&mut self, name: &str, raw_value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        unfold(&mut self.text, raw_value);
        self.ends.push((name_end, self.text.len()));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|&(_, end)| end));
        starts.zip(&self.ends).map(|(start, &(name_end, end))| {
            (&self.text[start..name_end], &self.text[name_end..end])
        })
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
    /// A panic while parsing: a bug that this message reached.
    #[error("parsing it failed (an internal error; the log says where)")]
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forwarded message's subject and senders' names are searched as
    /// they read: in encoded words, the bytes hide them (a code in the
    /// subject of a forwarded `.eml` reached the ticket's attachments).
    #[test]
    fn a_forwarded_message_is_searched_with_its_headers_decoded() {
        let raw = "From: a@b.example\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
             --b\r\nContent-Type: message/rfc822; name=note.eml\r\n\r\n\
             From: =?UTF-8?Q?Root_code_615_274?= <x@y.example>\r\n\
             Subject: =?UTF-8?B?QVdTIHZlcmlmaWNhdGlvbiBjb2RlIDYxNTI3NA==?=\r\n\r\nhello\r\n--b--\r\n";
        let mail = parse(raw.as_bytes()).expect("parses");
        let text = mail.attachments[0].text.as_deref().expect("searched");
        assert!(text.contains("AWS verification code 615274"), "{text}");
        assert!(text.contains("Root code 615 274"), "{text}");
    }

    /// `format=flowed` text reads as its reader shows it (RFC 3676): a line
    /// that ends with a space goes on in the next of the same quote depth.
    #[test]
    fn flowed_text_is_joined_as_its_reader_shows_it() {
        let joined = |text: &str, delsp| parse::unflowed(text, delsp);
        assert_eq!(
            joined("Your code is 615 \n274 thanks\n", false),
            "Your code is 615 274 thanks\n\n"
        );
        assert_eq!(joined("a verylongwo \nrd\n", true), "a verylongword\n\n");
        assert_eq!(joined("> a \n> b\nc\n", false), "> a b\nc\n\n");
        // Another depth ends the flowed line; the signature line stays; a
        // stuffed space goes.
        assert_eq!(joined("> a \nb\n", false), "> a \nb\n\n");
        assert_eq!(joined("text\n-- \nsig\n", false), "text\n-- \nsig\n\n");
        assert_eq!(joined(" From here\n", false), "From here\n\n");
        let raw = "From: a@b.example\r\nSubject: s\r\n\
                   Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n\
                   the verification code, it is 615 \r\n274 - thanks\r\n";
        let mail = parse(raw.as_bytes()).expect("parses");
        assert_eq!(mail.text, "the verification code, it is 615 274 - thanks");
    }

    /// Printable ASCII is cleaned by a shortcut: it gives what the character
    /// by character way gives, on generated lines of words and space runs.
    #[test]
    fn the_ascii_shortcut_cleans_lines_as_the_general_way() {
        let mut next = crate::generator(0x9e37_79b9_7f4a_7c15);
        let pieces = [" ", "  ", "a", "Re:", "<id@x>", "=?", "~", "!\"#", "z9"];
        for _ in 0..2000 {
            let line: String = (0..next(12)).map(|_| pieces[next(pieces.len())]).collect();
            assert_eq!(
                parse::clean_ascii_line(&line),
                parse::clean_any_line(&line),
                "{line:?}"
            );
        }
    }

    /// What a mail's attachments have searched is bounded: a mail of many
    /// forwarded messages had every one decoded and searched (600 MB and
    /// 12 s for 40 MiB, past mail-ingest's memory); past the budget they
    /// are withheld (no text: never uploaded).
    #[test]
    fn attachments_past_the_mails_scan_budget_are_withheld() {
        let each = MAX_SCANNED_ATTACHMENT_BYTES / 2;
        let parts = 2 * MAX_SCANNED_BYTES_PER_MAIL / each;
        let part = format!(
            "--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.example\r\nSubject: f\r\n\r\n{}\r\n",
            "code ABC120 ".repeat(each / 12 - 10)
        );
        let raw = format!(
            "From: a@b.example\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n{}--b--\r\n",
            part.repeat(parts)
        );
        let mail = parse(raw.as_bytes()).expect("parses");
        let searched: Vec<bool> = mail.attachments.iter().map(|a| a.text.is_some()).collect();
        assert_eq!(searched.len(), parts);
        let within = searched.iter().take_while(|s| **s).count();
        assert!(
            (parts / 2 - 1..=parts / 2).contains(&within) && searched[within..].iter().all(|s| !s),
            "{searched:?}"
        );
    }

    /// A Message-ID with a noncharacter (`EF BF BF` is valid UTF-8 for
    /// U+FFFF) reaches the thread key; SQS refuses U+FFFE and U+FFFF.
    #[test]
    fn noncharacters_never_reach_ids_or_the_subject() {
        let raw = b"From: a@b.example\r\nMessage-ID: <\xEF\xBF\xBF@x>\r\n\
                    References: <r\xEF\xBF\xBE@x>\r\nSubject: s \xEF\xBF\xBF\r\n\r\nhi\r\n";
        let mail = parse(raw).expect("parses");
        let ids = format!(
            "{:?} {:?} {:?}",
            mail.message_id, mail.references, mail.subject
        );
        assert!(
            !ids.contains('\u{FFFF}') && !ids.contains('\u{FFFE}'),
            "{ids}"
        );
        assert_eq!(mail.message_id.as_deref(), Some("\u{FFFD}@x"));
    }

    /// A sender's Date may say any day; the server that delivered the mail
    /// stamped its topmost Received header.
    #[test]
    fn delivered_at_reads_the_receiving_servers_stamp_before_the_senders_date() {
        let mail = |received: &str| {
            let raw = format!(
                "{received}From: a@b.example\r\nDate: Mon, 1 Jan 2018 00:00:00 +0000\r\n\
                 Subject: s\r\n\r\nhi\r\n"
            );
            parse(raw.as_bytes()).expect("parses")
        };
        let stamped = mail(
            "Received: from mx.example (mx.example [192.0.2.1])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id x\r\n \
             for root@msp.example;\r\n Tue, 03 Mar 2026 10:15:02 +0000 (UTC)\r\n\
             Received: from forged.example; Mon, 1 Jan 2018 00:00:00 +0000\r\n",
        );
        assert_eq!(stamped.delivered_at(), Some(1_772_532_902));
        assert_eq!(stamped.sent_at, Some(1_514_764_800));
        let unstamped = mail("");
        assert_eq!(unstamped.delivered_at(), Some(1_514_764_800));
        let garbled = mail("Received: from mx.example; not a date\r\n");
        assert_eq!(
            garbled.delivered_at(),
            None,
            "never the sender's word instead"
        );
    }

    #[test]
    fn empty_and_headerless_input_is_an_error_not_a_panic() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::Empty);
        assert_eq!(parse(b"  \r\n").unwrap_err(), ParseError::Empty);
        assert!(parse(&[0xff, 0x00, 0x13, 0x37, 0x80, 0x0a, 0x0d]).is_err());
    }

    #[test]
    fn folded_header_values_become_one_line_of_their_trimmed_pieces() {
        let mut headers = Headers::default();
        headers.push("Subject", "  one line \r\n");
        headers.push("DKIM-Signature", "a=1;\r\n\tb=2;\r\n   \r\n c=3\n\rd");
        headers.push("X-Empty", "\r\n \r\n");
        headers.push("Ünï", "ünï\r\n cödé");
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [
                ("Subject", "one line"),
                ("DKIM-Signature", "a=1; b=2; c=3 d"),
                ("X-Empty", ""),
                ("Ünï", "ünï cödé"),
            ]
        );
        assert_eq!(headers.len(), 4);
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

    /// A base64 forwarded message that starts inside another's encoded
    /// stretch: a `message/rfc822` body is a message of its own with no
    /// boundary before it, and mail-parser believes the last of two
    /// encodings where the scan counts the first. Decoded once, over the
    /// outer stretch (out of step with its base64 at three paddings of
    /// four), its nesting went uncounted; it is decoded on its own as well.
    #[test]
    fn a_forwarded_message_inside_another_s_base64_is_counted_too() {
        use base64_for_tests::encode;
        let inner = encode(nested_messages(150).as_bytes());
        for pad in 0..4 {
            let raw = format!(
                "From: a@b.example\r\nContent-Type: message/rfc822\r\n\
                 Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
                 Content-Type: message/rfc822\r\nX-Pad: {}\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{inner}\r\n",
                "a".repeat(pad)
            );
            assert!(
                Shape::of(raw.as_bytes()).encoded_containers >= 150,
                "pad {pad}: {:?}",
                Shape::of(raw.as_bytes())
            );
            assert!(parse(raw.as_bytes()).is_err(), "pad {pad}");
        }
    }

    /// A saved `.eml` sent as a file, holding a saved `.eml` among its own
    /// files, `depth` times, the innermost with a base64 body.
    fn saved_in_saved(depth: usize) -> String {
        use base64_for_tests::encode;
        let mut file = "From: no-reply@signin.aws\r\nSubject: code\r\n\
                        Content-Transfer-Encoding: base64\r\n\r\n\
                        WW91ciB2ZXJpZmljYXRpb24gY29kZSBpcyA0OTM4MTc=\r\n"
            .to_string();
        for _ in 0..depth {
            file = format!(
                "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=s\r\n\r\n\
                 --s\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--s\r\n\
                 Content-Type: application/octet-stream; name=saved.eml\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--s--\r\n",
                encode(file.as_bytes())
            );
        }
        file
    }

    /// Saved messages inside saved messages are read decoded to
    /// [`parse::MAX_SAVED_MESSAGE_DEPTH`] deep (each is parsed again from
    /// its own bytes, so the bound keeps the work linear); one deeper is
    /// withheld, never read as bytes that hide its code.
    #[test]
    fn saved_messages_are_read_decoded_to_a_bounded_depth() {
        let decoded = |depth| {
            let mail = parse(saved_in_saved(depth).as_bytes()).unwrap();
            mail.attachments[0].text.clone()
        };
        for depth in 1..=parse::MAX_SAVED_MESSAGE_DEPTH {
            let text = decoded(depth).unwrap_or_else(|| panic!("depth {depth} read"));
            assert!(text.contains("code is 493817"), "depth {depth}");
        }
        assert_eq!(decoded(parse::MAX_SAVED_MESSAGE_DEPTH + 1), None);
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

    /// A cut ends after the last whitespace of any width: a no-break or an
    /// ideographic space (two and three bytes) before a code the limit cuts.
    #[test]
    fn a_cut_after_wide_whitespace_keeps_the_words_before_it() {
        for space in [" ", "\u{a0}", "\u{3000}", "\u{2028}"] {
            let words = "x".repeat(MAX_SUBJECT_CHARS - 3);
            let raw = format!("From: a@b.example\r\nSubject: {words}{space}615274\r\n\r\nhi\r\n");
            let mail = parse(raw.as_bytes()).expect("parsed");
            let subject = mail.subject.expect("a subject");
            assert_eq!(subject.trim_end(), words, "{space:?}");
        }
        // A short name followed by invisible characters past the limit:
        // nothing visible was cut, so the name stays whole.
        let raw = format!(
            "From: a@b.example\r\nSubject: ACME 615274{}\r\n\r\nhi\r\n",
            "\u{200b}".repeat(2 * MAX_SUBJECT_CHARS)
        );
        let mail = parse(raw.as_bytes()).expect("parsed");
        assert_eq!(mail.subject.as_deref(), Some("ACME 615274"));
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
