//! The ticket text every backend writes the same way: the listing of
//! attachments that were not uploaded, the marker line (see [`crate::marker`])
//! after the text, and a size cap that never cuts the marker.

use rootmail_domain::{ContentHash, ThreadKey};
use rootmail_pipeline::{AttachmentContent, TicketAttachment};

/// A short, label-safe token naming a thread (Jira labels and Zendesk tags allow
/// no spaces or colons; thread keys have both).
pub fn thread_token(key: &ThreadKey) -> String {
    format!(
        "rootmail-thread-{}",
        &ContentHash::of(key.as_str().as_bytes()).as_str()[..24]
    )
}

/// The body text followed by a list of the attachments not uploaded (with their
/// reason and the original's location), without the marker.
pub fn text_with_listing(body: &str, attachments: &[TicketAttachment]) -> String {
    let mut text = body.trim_end().to_string();
    let listed: Vec<String> = attachments
        .iter()
        .filter_map(|a| match &a.content {
            AttachmentContent::Upload(_) => None,
            AttachmentContent::Listed { reason, original } => Some(format!(
                "- {} ({}, {} bytes): {reason}{}",
                a.name,
                a.content_type,
                a.size,
                original.as_deref().map_or(String::new(), |o| format!(
                    "; it is in the original message at {o}"
                ))
            )),
        })
        .collect();
    if !listed.is_empty() {
        text.push_str("\n\nAttachments not uploaded:\n");
        text.push_str(&listed.join("\n"));
    }
    text
}

/// [`text_with_listing`] and then the marker line, last.
pub fn body_with_listing(body: &str, attachments: &[TicketAttachment], marker: &str) -> String {
    format!("{}\n\n{marker}", text_with_listing(body, attachments))
}

/// Where the original message is, as the internal note names it
/// (`Original message: <location>`).
pub fn original_location(note: &str) -> Option<&str> {
    note.lines()
        .find_map(|line| line.strip_prefix("Original message: "))
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// `text` in at most `max_bytes` bytes: when it is longer, its end is cut (at a
/// character boundary) and a line says how much and where the whole message
/// is, so a system that would cut it silently never cuts what follows it (the
/// marker). `keep` is a suffix of `text` that is never cut.
pub fn capped(text: &str, keep: &str, max_bytes: usize, original: Option<&str>) -> String {
    capped_in(text, keep, (max_bytes, char::len_utf8), original)
}

/// [`capped`] for a system that counts its limit in other units: `max`
/// units, each character counting `units(c)` (`char::len_utf16` for one
/// that counts as Java does).
pub fn capped_in(
    text: &str,
    keep: &str,
    (max, units): (usize, fn(char) -> usize),
    original: Option<&str>,
) -> String {
    let measure = |s: &str| s.chars().map(units).sum::<usize>();
    if text.len() <= max || measure(text) <= max {
        return text.to_string();
    }
    let head = text.strip_suffix(keep).unwrap_or(text);
    let note = |cut: usize| match original {
        Some(at) => format!("\n\n[{cut} bytes cut; the original is at {at}]"),
        None => {
            format!("\n\n[{cut} bytes cut; the original message is named in the internal note]")
        }
    };
    // The note's own length depends on the number it shows: size it for the
    // largest number it can show.
    let room = max
        .saturating_sub(measure(keep))
        .saturating_sub(measure(&note(head.len())));
    let mut end = 0;
    let mut used = 0;
    for (at, c) in head.char_indices() {
        used += units(c);
        if used > room {
            break;
        }
        end = at + c.len_utf8();
    }
    let kept = head[..end].trim_end_matches('\\');
    let cut = head.len() - kept.len();
    format!("{kept}{}{keep}", note(cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_not_uploaded_are_listed_with_reason_and_original() {
        let attachments = vec![
            TicketAttachment {
                name: "invoice.pdf".into(),
                content_type: "application/pdf".into(),
                size: 3,
                content: AttachmentContent::Upload(vec![1, 2, 3]),
            },
            TicketAttachment {
                name: "big.zip".into(),
                content_type: "application/zip".into(),
                size: 99_000_000,
                content: AttachmentContent::Listed {
                    reason: "not attached: too large".into(),
                    original: Some("s3://bucket/inbound/x".into()),
                },
            },
        ];
        let body = body_with_listing("Hello", &attachments, "MARKER");
        assert!(body.contains("- big.zip (application/zip, 99000000 bytes): not attached: too large; it is in the original message at s3://bucket/inbound/x"));
        assert!(!body.contains("invoice.pdf"));
        assert!(body.ends_with("\n\nMARKER"));
    }

    #[test]
    fn a_capped_text_keeps_its_marker_and_says_what_was_cut() {
        let head = "é".repeat(1000);
        let text = format!("{head}\n\nMARKER");
        let short = capped(&text, "\n\nMARKER", 500, Some("s3://mail/inbound/1"));
        assert!(short.len() <= 500, "{}", short.len());
        assert!(short.ends_with("]\n\nMARKER"), "{short}");
        let (kept, note) = short.split_once("\n\n[").expect("a note");
        assert!(head.starts_with(kept));
        let cut = head.len() - kept.len();
        assert!(
            note.starts_with(&format!(
                "{cut} bytes cut; the original is at s3://mail/inbound/1]"
            )),
            "{note}"
        );
        assert_eq!(capped(&text, "\n\nMARKER", text.len(), None), text);
    }

    #[test]
    fn a_cut_never_leaves_a_dangling_escape() {
        let text = format!("{}MARKER", "\\*".repeat(100));
        let short = capped(&text, "MARKER", 120, None);
        let head = short.split("\n\n[").next().unwrap();
        assert!(!head.ends_with('\\'), "{head}");
        assert!(short.ends_with("MARKER"));
    }

    #[test]
    fn the_original_is_read_from_the_internal_note() {
        let note = "Authentication: spf=pass\nOriginal message: s3://mail/inbound/abc\n";
        assert_eq!(original_location(note), Some("s3://mail/inbound/abc"));
        assert_eq!(original_location("nothing"), None);
    }

    #[test]
    fn thread_tokens_are_label_safe_and_stable() {
        let key = ThreadKey::message("reply-1@example.com");
        let token = thread_token(&key);
        assert_eq!(token, thread_token(&key));
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
