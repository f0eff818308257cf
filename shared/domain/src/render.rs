//! The ticket an engineer reads: plain text, facts first, never a secret.

use crate::auth::Authentication;
use crate::directory::Account;
use crate::facts::Facts;
use crate::mail::{ParsedMail, clean_line};
use crate::secret_value::{FoundSecret, SecretKind};
use crate::types::{CaseId, EmailAddress, Kind, Priority};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::LazyLock;

/// How much of a message's text a ticket shows; the original is always linked.
pub const MAX_BODY_CHARS: usize = 16_000;
const MAX_SUBJECT_CHARS: usize = 250;
const MAX_LISTED_RECIPIENTS: usize = 5;
/// Attachments listed (and offered for upload); the rest are counted.
pub const MAX_LISTED_ATTACHMENTS: usize = 50;
/// Warnings listed; the rest are counted.
const MAX_LISTED_WARNINGS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketDraft {
    pub subject: String,
    /// What the ticket shows to everyone who can read it (the customer too).
    pub body: String,
    /// For the provider's engineers only (an internal note where the backend has
    /// them): how the mail authenticated, where it was delivered, the original.
    pub internal_note: String,
    /// The attachments a backend may upload; empty when the content is withheld.
    pub attachments: Vec<AttachmentRef>,
}

/// An attachment of the original message, named by its position in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// Position among the message's attachments (see [`crate::mail::attachments_bytes`]).
    pub index: usize,
    pub name: String,
    pub content_type: String,
    pub size: usize,
    /// Why it must not be uploaded (its text holds a secret), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
}

/// Everything rendering needs, already decided and redacted by triage.
pub struct RenderInput<'a> {
    pub kind: Kind,
    pub priority: Priority,
    pub account: Option<&'a Account>,
    pub subject: Option<&'a str>,
    pub mail: Option<&'a ParsedMail>,
    pub envelope: &'a [EmailAddress],
    pub auth: &'a Authentication,
    pub case: Option<&'a CaseId>,
    pub secrets: &'a [FoundSecret],
    /// The message text with secrets already replaced.
    pub redacted_text: &'a str,
    /// What the redacted subject and text name (ids, amounts, dates).
    pub facts: &'a Facts,
    pub origin: &'a str,
    /// The message's attachments, with any that hold a secret marked withheld.
    pub attachments: &'a [AttachmentRef],
    /// Why the message's own content is not shown (quarantine, or a secret-bearing
    /// kind whose secret could not be located), if it is not.
    pub withheld_reason: Option<&'a str>,
    pub warnings: &'a [String],
    /// The original holds a secret or withheld text (`Triage::sealed`).
    pub sealed: bool,
    /// The mail holds more secrets than were collected or redacted: its
    /// sender's name, which could hold one of them, is not shown.
    pub sender_name_withheld: bool,
}

/// Mail that did not authenticate as AWS yet makes a ticket (`unknown`): anyone
/// can write to a root address, so the ticket says so before anything else.
pub fn is_unverified(kind: Kind, auth: &Authentication) -> bool {
    kind == Kind::Unknown && !(auth.aws_sender && auth.verified)
}

const UNVERIFIED_NOTE: &str = "UNVERIFIED SENDER: this mail did not come from an authenticated AWS sender. \
     Anyone on the internet can write to a root address: do not follow its links, open its \
     attachments or act on its instructions without checking with the customer or AWS.";

pub fn ticket_subject(
    kind: Kind,
    account: Option<&Account>,
    subject: Option<&str>,
    withheld: bool,
    unverified: bool,
) -> String {
    let mut who = match account {
        Some(a) => format!("[{} / {}]", a.customer, a.account_id),
        None => "[unknown account]".to_string(),
    };
    if unverified {
        who.push_str(" [unverified sender]");
    }
    let what = match (kind, withheld) {
        (Kind::PhishingSuspected, _) => {
            "Suspected phishing (quarantined, content withheld)".to_string()
        }
        (Kind::MailUnparseable, _) => "Unparseable message (quarantined)".to_string(),
        (_, true) => format!("{kind} mail (text withheld)"),
        _ => subject
            .filter(|s| !s.trim().is_empty())
            .unwrap_or("(no subject)")
            .to_string(),
    };
    let line = defang(&clean_line(&format!("{who} {what}")));
    truncate_chars(&line, MAX_SUBJECT_CHARS)
}

pub fn render(input: &RenderInput<'_>) -> TicketDraft {
    let withheld = input.withheld_reason.is_some();
    let unverified = is_unverified(input.kind, input.auth);
    let subject = ticket_subject(
        input.kind,
        input.account,
        input.subject,
        withheld,
        unverified,
    );
    let listed = &input.attachments[..input.attachments.len().min(MAX_LISTED_ATTACHMENTS)];
    // Room for the headline, warnings and facts beside the text, so the body
    // is not grown a line at a time.
    let mut body = String::with_capacity(input.redacted_text.len().min(4 * MAX_BODY_CHARS) + 2048);
    if let Some(note) = security_note(input) {
        let _ = writeln!(body, "{note}\n");
    }
    write_headline(&mut body, input);
    write_warnings(&mut body, input);
    if !withheld {
        write_facts(&mut body, input.facts);
    }
    write_attachments(&mut body, listed, input.attachments.len());
    if !withheld {
        write_message(&mut body, input.redacted_text);
    }
    TicketDraft {
        subject,
        body: defang(body.trim_end()),
        internal_note: defang(internal_note(input).trim_end()),
        attachments: if withheld {
            Vec::new()
        } else {
            listed.to_vec()
        },
    }
}

/// What the mail is and who it is about: kind, priority, account, sender,
/// recipients, date, subject, case, and what is withheld.
fn write_headline(body: &mut String, input: &RenderInput<'_>) {
    let _ = writeln!(body, "Kind: {}", input.kind);
    let _ = writeln!(body, "Priority: {}", input.priority.as_str());
    match input.account {
        Some(a) => {
            let _ = writeln!(
                body,
                "Account: {} ({}, {})",
                a.account_id,
                a.customer,
                a.status.as_str()
            );
            let _ = writeln!(body, "Root address: {}", a.root_email);
        }
        None => {
            let _ = writeln!(body, "Account: unknown (needs triage)");
        }
    }
    if let Some(mail) = input.mail {
        if let Some(from) = &mail.from {
            let address = from.address.as_ref().map_or("(no address)", |a| a.as_str());
            let name = from.name.as_ref().filter(|_| !input.sender_name_withheld);
            match name {
                Some(name) => {
                    let _ = writeln!(body, "From: {name} <{address}>");
                }
                None => {
                    let _ = writeln!(body, "From: {address}");
                }
            }
        }
        if !mail.to.is_empty() {
            let _ = writeln!(body, "To: {}", list(mail.to.iter().map(|e| e.as_str())));
        }
        if let Some(date) = &mail.date {
            let _ = writeln!(body, "Date: {date}");
        }
        if input.withheld_reason.is_none()
            && let Some(subject) = input.subject
        {
            let _ = writeln!(body, "Subject: {subject}");
        }
    }
    if let Some(case) = input.case {
        let _ = writeln!(body, "AWS support case: {case}");
    }
    if let Some(reason) = input.withheld_reason {
        let label = match input.kind {
            Kind::PhishingSuspected | Kind::MailUnparseable | Kind::MailRejected => "Quarantined",
            _ => "Text withheld",
        };
        let _ = writeln!(body, "{label}: {reason}");
    }
    if !input.secrets.is_empty() {
        let _ = writeln!(body, "Withheld secrets: {}", secret_kinds(input.secrets));
    }
}

/// The warnings, at most `MAX_LISTED_WARNINGS` (the withheld reason is said
/// already).
fn write_warnings(body: &mut String, input: &RenderInput<'_>) {
    let warnings: Vec<&String> = input
        .warnings
        .iter()
        .filter(|w| Some(w.as_str()) != input.withheld_reason)
        .collect();
    for warning in warnings.iter().take(MAX_LISTED_WARNINGS) {
        let _ = writeln!(body, "Warning: {warning}");
    }
    if warnings.len() > MAX_LISTED_WARNINGS {
        let _ = writeln!(
            body,
            "Warning: (and {} more warnings)",
            warnings.len() - MAX_LISTED_WARNINGS
        );
    }
}

fn write_facts(body: &mut String, facts: &Facts) {
    let facts = facts.labelled();
    if !facts.is_empty() {
        let _ = writeln!(body, "\nKey facts:");
        for (label, values) in facts {
            let _ = writeln!(body, "- {label}: {}", values.join(", "));
        }
    }
}

/// The attachments listed (with any withheld marked), and how many more.
fn write_attachments(body: &mut String, listed: &[AttachmentRef], total: usize) {
    if listed.is_empty() {
        return;
    }
    let _ = writeln!(body, "\nAttachments:");
    for attachment in listed {
        let _ = write!(
            body,
            "- {} ({}, {})",
            attachment.name,
            attachment.content_type,
            human_size(attachment.size)
        );
        match &attachment.withheld {
            Some(reason) => {
                let _ = writeln!(body, " [not attached: {reason}]");
            }
            None => body.push('\n'),
        }
    }
    let unlisted = total - listed.len();
    if unlisted > 0 {
        let _ = writeln!(
            body,
            "- (and {unlisted} more attachments, neither listed nor attached: open the original)"
        );
    }
}

/// The redacted text, cut at `MAX_BODY_CHARS` with the rest counted.
fn write_message(body: &mut String, redacted_text: &str) {
    let text = redacted_text.trim();
    let _ = writeln!(body, "\n--- Message ---");
    if text.is_empty() {
        let _ = writeln!(body, "(no text)");
        return;
    }
    let (shown, rest) = match text.char_indices().nth(MAX_BODY_CHARS) {
        Some((cut, _)) => (&text[..cut], text[cut..].chars().count()),
        None => (text, 0),
    };
    body.push_str(shown);
    body.push('\n');
    if rest > 0 {
        let _ = writeln!(
            body,
            "[truncated: {rest} more characters in the original message]"
        );
    }
}

/// What only the provider's staff see: authentication, the envelope, where
/// the original is.
fn internal_note(input: &RenderInput<'_>) -> String {
    let mut internal = String::new();
    let _ = writeln!(internal, "Authentication: {}", describe_auth(input.auth));
    if !input.envelope.is_empty() {
        let _ = writeln!(
            internal,
            "Envelope recipient: {}",
            list(input.envelope.iter().map(|e| e.as_str()))
        );
    }
    // In AWS a sealed original is the bucket policy's: say who may read it.
    let sealed = match input.sealed && input.origin.starts_with("s3://") {
        true => " (sealed: only mail-ingest and the roles in SealedMailReaderArns may read it)",
        false => "",
    };
    let _ = writeln!(internal, "Original message: {}{sealed}", input.origin);
    internal
}

/// The reason an engineer should care, for mail whose real content is withheld.
fn security_note(input: &RenderInput<'_>) -> Option<String> {
    // Case correspondence is relayed, whatever its kind: that comes first.
    let case = input
        .case
        .filter(|_| input.auth.aws_sender && input.auth.verified)
        .map(|case| case_note(case, input.account));
    match (case, kind_note(input)) {
        (Some(case), Some(note)) => Some(format!("{case} {note}")),
        (case, note) => case.or(note),
    }
}

/// What the mail's kind (or its sender, or its secrets) calls for first.
fn kind_note(input: &RenderInput<'_>) -> Option<String> {
    let account = input.account.map_or("this address".to_string(), |a| {
        format!("account {}", a.account_id)
    });
    let note = match input.kind {
        Kind::SigninOtp => format!(
            "Someone is signing in as the root user of {account} and AWS sent a sign-in verification code. \
             If this is not a planned, audited access, treat it as a security incident. The code is withheld."
        ),
        Kind::RootEmailOtp => format!(
            "AWS sent a code to verify this address as a new root email, and no rotation is waiting for it: \
             someone may be changing the root email of {account}. The code is withheld."
        ),
        Kind::PasswordReset => format!(
            "A root password reset was requested for {account}, and no rotation is waiting for it: \
             if nobody here asked for it, someone is trying to take over the root user. The reset link is withheld."
        ),
        Kind::MfaRecovery => format!(
            "Someone started MFA recovery for the root user of {account}. \
             If nobody here did, treat it as a security incident. The recovery link is withheld."
        ),
        Kind::PhishingSuspected => {
            "This mail claims to come from AWS but failed authentication. Its content is quarantined \
             and not shown; do not act on it. Check the original only in a safe environment."
                .to_string()
        }
        Kind::MailUnparseable => {
            "This message could not be read as mail. It is kept unchanged; look at the original.".to_string()
        }
        Kind::OrganizationsInvitation => {
            "An invitation to join an AWS Organization. Its text was written by the inviter: do not trust \
             links or instructions in it; accept only if the customer confirms the inviting organization."
                .to_string()
        }
        _ if is_unverified(input.kind, input.auth) => UNVERIFIED_NOTE.to_string(),
        _ if !input.secrets.is_empty() => format!(
            "This mail contained {} that the ticket does not show.",
            secret_kinds(input.secrets)
        ),
        _ => return None,
    };
    Some(note)
}

/// Case correspondence is genuine AWS mail carrying anyone's words: AWS
/// relays what the case's participants write to every address the case
/// copies, and a case in any AWS account may copy a root address. Whatever
/// its text reads like (a case AWS opens about a compromised account is
/// classified by its text), the case is checked before it is acted on.
fn case_note(case: &CaseId, account: Option<&Account>) -> String {
    let account = account.map_or("the account it concerns".to_string(), |a| {
        format!("account {}", a.account_id)
    });
    format!(
        "This mail relays support case {case}: AWS mails what anyone in a case writes to every address \
         the case copies, and a case opened in any AWS account may copy this address. Act on it only once \
         the case is found in the Support Center of {account}."
    )
}

fn describe_auth(auth: &Authentication) -> String {
    let field =
        |name: &str, v: &Option<String>| format!("{name}={}", v.as_deref().unwrap_or("none"));
    let mut parts = vec![
        field("spf", &auth.spf),
        field("dkim", &auth.dkim),
        field("dmarc", &auth.dmarc),
        field("spam", &auth.spam),
        field("virus", &auth.virus),
    ];
    parts.push(
        match (auth.aws_sender, auth.verified) {
            (true, true) => "verified AWS sender",
            (true, false) => "NOT verified although it claims an AWS sender",
            (false, true) => "verified sender (not AWS)",
            (false, false) => "unverified sender (not AWS)",
        }
        .to_string(),
    );
    parts.join(", ")
}

fn secret_kinds(secrets: &[FoundSecret]) -> String {
    let mut kinds: Vec<SecretKind> = secrets.iter().map(|s| s.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn list<'a>(items: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = items.len();
    let shown: Vec<&str> = items.take(MAX_LISTED_RECIPIENTS).collect();
    if total > shown.len() {
        format!("{} (and {} more)", shown.join(", "), total - shown.len())
    } else {
        shown.join(", ")
    }
}

fn human_size(bytes: usize) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

static ACTIVE_MARKUP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)<(\s*/?\s*(?:script|iframe|frame|frameset|object|embed|applet|style|svg|img|form|link|meta|base)\b)")
        .expect("static regex")
});

/// Text that looks like active markup is broken so no renderer can run it,
/// and control characters become `\u{FFFD}`: an escape sequence would run in
/// the terminal that shows the ticket (`rootmail tickets show`), a lone
/// carriage return would let later text hide earlier text there, and a NUL
/// is refused by the databases ticketing systems keep text in. Line breaks
/// (`\n`, `\r\n`) and tabs stay. Bidirectional overrides go the same way:
/// they show text in another order than it is.
pub fn defang(text: &str) -> String {
    let printable = without_controls(text);
    ACTIVE_MARKUP.replace_all(&printable, "‹$1").into_owned()
}

fn without_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !may_hold_unsafe(text) {
        return std::borrow::Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    text.char_indices()
        .map(|(i, c)| if unsafe_at(bytes, i) { '\u{FFFD}' } else { c })
        .collect::<String>()
        .into()
}

/// Whether `text` holds what [`without_controls`] replaces, read in its
/// UTF-8 bytes (see [`unsafe_at`]). Most text has none: it is read 16 bytes at
/// a time without a branch for each byte (vector code), and only a chunk
/// with a byte that is neither printable ASCII, a line break nor a tab is
/// read byte by byte (profiled: 5% of triage's instructions went to decoding
/// each character here).
fn may_hold_unsafe(text: &str) -> bool {
    const CHUNK: usize = 16;
    let bytes = text.as_bytes();
    bytes.chunks(CHUNK).enumerate().any(|(n, chunk)| {
        let plain = chunk.iter().fold(true, |all, &b| {
            all & (b == b'\n' || b == b'\t' || (0x20..0x7F).contains(&b))
        });
        !plain && (n * CHUNK..n * CHUNK + chunk.len()).any(|i| unsafe_at(bytes, i))
    })
}

/// Whether the byte at `i` starts a character [`without_controls`] replaces:
/// a control character (C0 but a line break or tab, DEL, C1 as `C2 80..9F`),
/// a bidirectional override (`E2 80 AA..AE`, `E2 81 A6..A9`) or U+FFFE and
/// U+FFFF (`EF BF BE..BF`).
fn unsafe_at(bytes: &[u8], i: usize) -> bool {
    let next = |n: usize| bytes.get(i + n).copied();
    match bytes[i] {
        b'\n' | b'\t' => false,
        b'\r' => next(1) != Some(b'\n'),
        0..0x20 | 0x7F => true,
        0xC2 => matches!(next(1), Some(0x80..=0x9F)),
        0xE2 => matches!(
            (next(1), next(2)),
            (Some(0x80), Some(0xAA..=0xAE)) | (Some(0x81), Some(0xA6..=0xA9))
        ),
        0xEF => matches!((next(1), next(2)), (Some(0xBF), Some(0xBE | 0xBF))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::is_refused_noncharacter;

    /// The embeddings, overrides and isolates of Unicode's bidirectional
    /// algorithm: they make text show in another order than it is read.
    fn is_bidi_override(c: char) -> bool {
        matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    }

    /// The byte scan replaces exactly the characters it is meant to, every
    /// one of them, also across the edge of the chunks it reads (a lone
    /// carriage return is a control character; one before a line feed stays).
    #[test]
    fn the_byte_scan_replaces_exactly_the_unsafe_characters() {
        let is_unsafe = |c: char| {
            (c.is_control() && !matches!(c, '\n' | '\t'))
                || is_bidi_override(c)
                || is_refused_noncharacter(c)
        };
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            for before in ["ab", "fifteen bytes.."] {
                let text = format!("{before}{c}cd");
                assert_eq!(
                    may_hold_unsafe(&text),
                    is_unsafe(c),
                    "{c:?} after {before:?}"
                );
            }
        }
        let replaced = format!("{}\u{202E}x\r\n", "a".repeat(14));
        assert_eq!(
            defang(&replaced),
            format!("{}\u{FFFD}x\r\n", "a".repeat(14))
        );
        let safe = "plain\r\ntext\twith é, \u{a0}, ’quotes’ — \u{200E} 日本 \u{FFFD}\u{FEFF}";
        assert_eq!(defang(safe), safe);
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(
            defang("a\0b\x07c\x1b[31md\u{9b}2Je\rf\r\ng\th\n"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}[31md\u{FFFD}2Je\u{FFFD}f\r\ng\th\n"
        );
        assert_eq!(defang("plain\ttext\n"), "plain\ttext\n");
    }

    /// A right-to-left override before "lmth.exe" shows "exe.html" as
    /// something else than it is, in a ticket title or a terminal alike
    /// (Trojan Source, CVE-2021-42574); embeddings and isolates too. The
    /// marks right-to-left text does use (LRM, RLM, ALM) stay.
    #[test]
    fn bidirectional_overrides_are_shown_not_obeyed() {
        assert_eq!(
            defang(
                "a\u{202E}exe.pdf\u{202C} b\u{2066}c\u{2069} d\u{202A}e\u{202B}f\u{202D}g\u{2067}h\u{2068}"
            ),
            "a\u{FFFD}exe.pdf\u{FFFD} b\u{FFFD}c\u{FFFD} d\u{FFFD}e\u{FFFD}f\u{FFFD}g\u{FFFD}h\u{FFFD}"
        );
        assert_eq!(defang("a\u{FFFE}b\u{FFFF}c"), "a\u{FFFD}b\u{FFFD}c");
        let marked = "\u{5E9}\u{5DC}\u{5D5}\u{5DD}\u{200F} 123\u{200E} \u{627}\u{61C}";
        assert_eq!(defang(marked), marked);
    }

    #[test]
    fn markup_that_could_run_is_defanged() {
        let out = defang("x <script>alert(1)</script> <IMG src=x> a<b");
        assert!(!out.to_lowercase().contains("<script"), "{out}");
        assert!(!out.to_lowercase().contains("<img"), "{out}");
        assert!(out.contains("a<b"));
    }

    #[test]
    fn key_facts_are_listed_by_label() {
        let text = "Key AKIAIOSFODNN7EXAMPLE used from 203.0.113.5 on i-0abc123def4567890 (arn:aws:iam::111122223333:user/ci).";
        let ids = crate::directory::mentioned_account_ids(text);
        let facts = crate::facts::facts("", text, &ids);
        let labelled = facts.labelled();
        let names: Vec<&str> = labelled.iter().map(|(label, _)| *label).collect();
        assert_eq!(
            names,
            [
                "Account ids",
                "Access key ids",
                "Resource ids",
                "ARNs",
                "IP addresses"
            ]
        );
        assert_eq!(labelled[1].1, ["AKIAIOSFODNN7EXAMPLE"]);
        assert_eq!(labelled[3].1, ["arn:aws:iam::111122223333:user/ci"]);
    }
}
