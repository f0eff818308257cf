//! The envelope SES records in the `Received` header it prepends.

use crate::mail::{Headers, ParsedMail};
use crate::types::{ContentHash, EmailAddress};
use regex::Regex;
use std::sync::LazyLock;

/// The object name SES writes when a receipt rule is created.
pub const SETUP_NOTIFICATION_OBJECT: &str = "AMAZON_SES_SETUP_NOTIFICATION";

/// SES's `Received`: `from HELO (rDNS [IP]) by inbound-smtp.REGION...`.
/// Anchored at its start, past the one word and the parenthesis the sender
/// chooses (its HELO, its reverse DNS), so that words of theirs cannot be
/// read as SES's own `by ... id ... for`: a HELO of several words makes
/// the header no SES `Received` at all.
static SES_RECEIVED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("{RECEIVED_UP_TO_ID}{ID_AND_RECIPIENT}")).expect("static regex")
});

/// Its two parts: up to the message id (which the `\s+` it ends with ends
/// where the id starts), then the id and the recipient.
const RECEIVED_UP_TO_ID: &str = r"(?i)^from\s+\S+\s+\([^()]*\)\s+by\s+inbound-smtp\.[a-z0-9-]+\.amazonaws\.com\s+with\s+\S+\s+id\s+";
const ID_AND_RECIPIENT: &str = r"(\S+)(?:\s+for\s+<?([^\s;<>]+)>?)?";

/// The groups are read in two steps: a DFA's search for the first part, and
/// captures only in the short rest. Captures over the whole header cost 7%
/// of triage's instructions (a bounded backtracker over all its states).
static SES_RECEIVED_UP_TO_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(RECEIVED_UP_TO_ID).expect("static regex"));
static SES_ID_AND_RECIPIENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("(?i)^{ID_AND_RECIPIENT}")).expect("static regex"));

/// The message id and recipient SES's `Received` names, if `value` is one.
fn ses_id_and_recipient(value: &str) -> Option<(&str, Option<&str>)> {
    let rest = &value[SES_RECEIVED_UP_TO_ID.find(value)?.end()..];
    let groups = SES_ID_AND_RECIPIENT.captures(rest)?;
    let (id, recipient) = (groups.get(1)?, groups.get(2));
    Some((id.as_str(), recipient.map(|r| r.as_str())))
}

/// Headers SES writes on receipt, above the message it received.
fn is_ses_header(name: &str, value: &str) -> bool {
    let is = |wanted: &str| name.eq_ignore_ascii_case(wanted);
    if is("received") {
        return SES_RECEIVED.is_match(value);
    }
    is("return-path")
        || is("received-spf")
        || is("authentication-results")
        || name
            .get(..6)
            .is_some_and(|start| start.eq_ignore_ascii_case("x-ses-"))
}

/// The headers SES wrote: the run at the top of the message of the headers SES
/// adds, which holds SES's own `Received`. It ends at the first header SES does
/// not write (a sender's `DKIM-Signature`, `From`) or the first `Received` that
/// is not SES's: whatever stands below was written by someone else and proves
/// nothing, however it is named. No SES `Received` in that run: nothing is
/// SES's (the object was not stored by a receipt rule).
pub fn ses_block(mail: &ParsedMail) -> impl Iterator<Item = (&str, &str)> {
    mail.headers.iter().take(mail.ses_headers)
}

/// The most headers SES's block holds: SES writes fewer than ten.
const MAX_SES_HEADERS: usize = 16;

/// How many headers from the top make SES's block (computed once, at parse).
/// SES writes each of its headers once: a name met again starts what
/// someone else wrote (a forged verdict SES did not write, below its own).
pub fn ses_block_len(headers: &Headers) -> usize {
    let mut seen: Vec<&str> = Vec::with_capacity(MAX_SES_HEADERS);
    let end = headers
        .iter()
        .take(MAX_SES_HEADERS)
        .position(|(name, value)| {
            let repeated = seen.iter().any(|n| n.eq_ignore_ascii_case(name));
            seen.push(name);
            repeated || !is_ses_header(name, value)
        })
        .unwrap_or(headers.len().min(MAX_SES_HEADERS));
    let has_receipt = headers
        .iter()
        .take(end)
        .any(|(name, value)| name.eq_ignore_ascii_case("received") && SES_RECEIVED.is_match(value));
    if has_receipt { end } else { 0 }
}

/// The first header of that name SES wrote (see [`ses_block`]).
pub fn ses_header<'a>(mail: &'a ParsedMail, name: &str) -> Option<&'a str> {
    ses_headers_named(mail, name).next()
}

/// Every header of that name SES wrote, top first.
pub fn ses_headers_named<'a>(mail: &'a ParsedMail, name: &str) -> impl Iterator<Item = &'a str> {
    let name = name.to_string();
    ses_block(mail)
        .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
        .map(|(_, v)| v)
}

/// What SES's topmost `Received` header says about the delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub ses_message_id: Option<String>,
    pub recipients: Vec<EmailAddress>,
}

/// The envelope of a parsed mail (read once, at parse).
pub fn envelope(mail: &ParsedMail) -> &Envelope {
    &mail.envelope
}

/// What SES's own `Received` among the top `ses_headers` of `headers` says.
pub(crate) fn envelope_in(headers: &Headers, ses_headers: usize) -> Envelope {
    headers
        .iter()
        .take(ses_headers)
        .filter(|(name, _)| name.eq_ignore_ascii_case("received"))
        .find_map(|(_, value)| ses_id_and_recipient(value))
        .map(|(id, recipient)| Envelope {
            ses_message_id: Some(id.trim_end_matches(';').to_string()),
            recipients: recipient
                .and_then(|r| EmailAddress::parse(r).ok())
                .into_iter()
                .collect(),
        })
        .unwrap_or_default()
}

/// The ledger's key of a message SES stored. SES delivers at least once,
/// and each delivery is an object of its own under a block SES wrote anew
/// (its own id, receipt stamp and signature), so the bytes' hash would make
/// a second delivery a second message and a second comment. The key is what
/// the sender sent, to which of our addresses, and what SES found (its
/// verdicts, without the comments that name the sending server): a second
/// delivery is a duplicate, while a copy judged otherwise (forged bytes of
/// a genuine mail, failing DKIM) or sent to another address stays a message
/// of its own. Without SES's block: the hash of the bytes.
pub fn delivery_key(raw: &[u8], mail: &ParsedMail, envelope: &Envelope) -> ContentHash {
    let sent = match mail.ses_block_end {
        0 => None,
        end => raw.get(end..),
    };
    let Some(sent) = sent else {
        return ContentHash::of(raw);
    };
    let mut recipients = String::new();
    for recipient in &envelope.recipients {
        recipients.push_str(recipient.as_str());
        recipients.push('\n');
    }
    let mut verdicts = String::new();
    for (name, value) in ses_block(mail) {
        let is = |wanted: &str| name.eq_ignore_ascii_case(wanted);
        let found = if is("x-ses-spam-verdict") || is("x-ses-virus-verdict") {
            value.to_string()
        } else if is("authentication-results") {
            verdicts_in(value)
        } else if is("received-spf") {
            value.split_whitespace().next().unwrap_or_default().into()
        } else {
            continue;
        };
        verdicts.push_str(&name.to_ascii_lowercase());
        verdicts.push(':');
        for word in found.split_whitespace() {
            verdicts.push(' ');
            verdicts.push_str(&word.to_ascii_lowercase());
        }
        verdicts.push('\n');
    }
    let parts: [&[u8]; 4] = [
        b"ses-delivery",
        recipients.as_bytes(),
        verdicts.as_bytes(),
        sent,
    ];
    ContentHash::of_parts(&parts)
}

/// What an `Authentication-Results` value found, and for which domains
/// (`spf=pass`, `header.i=@amazon.com`): the results and `header.`
/// properties alone. Comments and the other properties (`client-ip`,
/// `helo`, `smtp.mailfrom`) name the server that sent this delivery, which
/// a retry over another connection changes.
fn verdicts_in(value: &str) -> String {
    let masked = crate::auth::outside_quotes_and_comments(value);
    let text: String = (value.chars().zip(masked.chars()))
        .filter_map(|(c, kept)| (c == kept).then_some(c))
        .collect();
    let mut kept = String::new();
    for property in text.split([';', ' ', '\t', '\r', '\n']) {
        let Some((name, _)) = property.split_once('=') else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if ["spf", "dkim", "dmarc"].contains(&name.as_str()) || name.starts_with("header.") {
            kept.push_str(property);
            kept.push(' ');
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse;

    const SES: &str = "Return-Path: <b@amazonses.com>\r\nReceived: from mx.example (mx.example [192.0.2.1])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id abc\r\n for root@msp.example;\r\n Tue, 03 Mar 2026 10:15:02 +0000\r\nX-SES-Spam-Verdict: PASS\r\nAuthentication-Results: amazonses.com; dmarc=pass\r\n";

    /// SES's `Received` starts with the sender's HELO and reverse DNS: words
    /// there cannot pose as SES's own `by inbound-smtp ... for`.
    #[test]
    fn ses_received_is_read_past_the_senders_words_only() {
        let real = "from mail.evil.example (mail.evil.example [203.0.113.9])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id real1\r\n for root@msp.example;\r\n Tue, 03 Mar 2026 10:15:02 +0000";
        assert!(SES_RECEIVED.is_match(real));
        let unfolded = real.replace("\r\n", "");
        let captured = SES_RECEIVED.captures(&unfolded).unwrap();
        assert_eq!(&captured[1], "real1");
        for posing in [
            "from x by inbound-smtp.us-east-1.amazonaws.com with SMTP id fake for victim@msp.example (x [203.0.113.9]) by inbound-smtp.us-east-1.amazonaws.com with SMTP id real2 for root@msp.example",
            "from a b (c [203.0.113.9]) by inbound-smtp.us-east-1.amazonaws.com with SMTP id fake",
            "by inbound-smtp.us-east-1.amazonaws.com with SMTP id fake for victim@msp.example",
        ] {
            assert!(!SES_RECEIVED.is_match(posing), "{posing}");
            assert_eq!(ses_id_and_recipient(posing), None, "{posing}");
        }
    }

    /// The id and recipient read in two steps are what the one regex's
    /// groups read, on SES's header and on generated variants of it.
    #[test]
    fn the_two_step_reading_of_ses_received_is_the_one_regex() {
        let mut next = crate::generator(0x6a09_e667_f3bc_c908);
        let pieces = [
            "from",
            " ",
            "\t",
            "x",
            "(",
            ")",
            "[203.0.113.9]",
            "by",
            "inbound-smtp.us-east-1.amazonaws.com",
            "with",
            "SMTP",
            "id",
            "abc",
            "for",
            "<",
            ">",
            "root@msp.example",
            ";",
            "é",
            "ID",
            "FOR",
        ];
        let real = "from x (x [203.0.113.9]) by inbound-smtp.us-east-1.amazonaws.com with SMTP id ";
        for _ in 0..20_000 {
            let tail: String = (0..next(8)).map(|_| pieces[next(pieces.len())]).collect();
            let value = match next(3) {
                0 => format!("{real}{tail}"),
                1 => format!("{real}abc{tail}"),
                _ => tail,
            };
            let one = SES_RECEIVED
                .captures(&value)
                .map(|c| (c.get(1).map(|m| m.as_str()), c.get(2).map(|m| m.as_str())));
            let two = ses_id_and_recipient(&value).map(|(id, r)| (Some(id), r));
            assert_eq!(one, two, "{value:?}");
        }
    }

    #[test]
    fn only_the_run_of_ses_headers_above_the_message_is_ses() {
        let raw = format!(
            "{SES}DKIM-Signature: v=1; d=x.example\r\nAuthentication-Results: amazonses.com; dmarc=fail\r\nFrom: a@x.example\r\n\r\nhi"
        );
        let mail = parse(raw.as_bytes()).unwrap();
        assert_eq!(ses_block(&mail).count(), 4);
        let results: Vec<&str> = ses_headers_named(&mail, "Authentication-Results").collect();
        assert_eq!(results, ["amazonses.com; dmarc=pass"]);

        // Below another MTA's Received, nothing is SES's either.
        let relayed = format!(
            "{}Received: by relay.example\r\nX-SES-Virus-Verdict: PASS\r\nFrom: a@x.example\r\n\r\nhi",
            SES.replace("X-SES-Spam-Verdict: PASS\r\n", "")
        );
        let mail = parse(relayed.as_bytes()).unwrap();
        assert_eq!(ses_header(&mail, "X-SES-Virus-Verdict"), None);
    }

    #[test]
    fn without_ses_own_received_no_header_is_ses() {
        // An object written into the bucket by someone else: every header forged.
        let raw = "X-SES-Spam-Verdict: PASS\r\nAuthentication-Results: amazonses.com; spf=pass; dkim=pass header.i=@signin.aws; dmarc=pass\r\nFrom: no-reply@signin.aws\r\n\r\nhi";
        let mail = parse(raw.as_bytes()).unwrap();
        assert_eq!(ses_block(&mail).count(), 0);
        assert_eq!(envelope(&mail), &Envelope::default());
    }

    #[test]
    fn envelope_recipient_comes_from_the_ses_received_header() {
        let raw = "Received: from mx.example (mx.example [1.2.3.4])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id abc123def\r\n for Root+A@Root.Example-MSP.com;\r\n Tue, 03 Mar 2026 10:15:02 +0000 (UTC)\r\nReceived: by mx.example for <other@example.com>\r\nFrom: a@b.com\r\nTo: list@example.com\r\n\r\nhi";
        let mail = parse(raw.as_bytes()).unwrap();
        let env = envelope(&mail);
        assert_eq!(env.ses_message_id.as_deref(), Some("abc123def"));
        assert_eq!(
            env.recipients,
            vec![EmailAddress::parse("root+a@root.example-msp.com").unwrap()]
        );
    }

    /// One delivery by SES of the same sent message: its own SES id, receipt
    /// stamp and sending server, to `recipient`, with DKIM's `dkim` result.
    fn delivery(ses_id: &str, ip: &str, recipient: &str, dkim: &str) -> String {
        let helo = format!("a{}.smtp-out.amazonses.com", ip.replace('.', "-"));
        format!(
            "Return-Path: <bounce@amazonses.com>\r\n\
             Received: from {helo} ({ip})\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id {ses_id}\r\n for {recipient};\r\n Tue, 03 Mar 2026 10:15:02 +0000 (UTC)\r\n\
             X-SES-Spam-Verdict: PASS\r\n\
             X-SES-Virus-Verdict: PASS\r\n\
             Received-SPF: pass (spf: {ip} is permitted) client-ip={ip}; helo={helo};\r\n\
             Authentication-Results: amazonses.com;\r\n spf=pass (spf: {ip} is permitted) client-ip={ip}; envelope-from=b@amazonses.com; helo={helo};\r\n dkim={dkim} header.i=@amazon.com;\r\n dmarc=pass header.from=amazon.com;\r\n\
             X-SES-RECEIPT: receipt-of-{ses_id}\r\n\
             X-SES-DKIM-SIGNATURE: a=rsa-sha256; b=signed-{ses_id}\r\n\
             DKIM-Signature: v=1; d=amazon.com; b=sender\r\n\
             From: AWS <no-reply@amazon.com>\r\n\
             Message-ID: <one@amazon.com>\r\n\
             Subject: Your AWS account\r\n\r\nBody.\r\n"
        )
    }

    fn key(raw: &str) -> ContentHash {
        let mail = parse(raw.as_bytes()).unwrap();
        delivery_key(raw.as_bytes(), &mail, envelope(&mail))
    }

    #[test]
    fn a_second_delivery_of_a_message_has_the_first_ones_key() {
        let to = "root+a@root.example-msp.com";
        let first = delivery("id-1", "192.0.2.1", to, "pass");
        let mail = parse(first.as_bytes()).unwrap();
        assert!(first[mail.ses_block_end..].starts_with("DKIM-Signature:"));

        let again = delivery("id-2", "198.51.100.7", to, "pass");
        assert_ne!(
            ContentHash::of(first.as_bytes()),
            ContentHash::of(again.as_bytes())
        );
        assert_eq!(key(&first), key(&again));
        assert_ne!(key(&first), ContentHash::of(first.as_bytes()));

        // Judged otherwise, sent to another address, or other bytes: another message.
        assert_ne!(key(&first), key(&delivery("id-2", "192.0.2.1", to, "fail")));
        let other_address = delivery("id-2", "192.0.2.1", "root+b@root.example-msp.com", "pass");
        assert_ne!(key(&first), key(&other_address));
        assert_ne!(key(&first), key(&first.replace("Body.", "Body!")));
        // A line below SES's block that is no header is the sender's too.
        let below = "X-SES-DKIM-SIGNATURE: a=rsa-sha256; b=signed-id-1\r\n";
        let with_line = first.replace(below, &format!("{below}no colon here\r\n"));
        assert_ne!(with_line, first);
        assert_ne!(key(&first), key(&with_line));
        assert_ne!(
            key(&first),
            key(&first.replace("X-SES-Spam-Verdict: PASS", "X-SES-Spam-Verdict: FAIL"))
        );
    }

    #[test]
    fn without_ses_block_the_key_is_the_bytes_hash() {
        let raw = "From: a@x.example\r\nSubject: hi\r\n\r\nbody";
        assert_eq!(key(raw), ContentHash::of(raw.as_bytes()));
    }
}
