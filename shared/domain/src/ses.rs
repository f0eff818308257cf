//! The envelope SES records in the `Received` header it prepends.

use crate::mail::{Headers, ParsedMail};
use crate::types::EmailAddress;
use regex::Regex;
use std::sync::LazyLock;

/// The object name SES writes when a receipt rule is created.
pub const SETUP_NOTIFICATION_OBJECT: &str = "AMAZON_SES_SETUP_NOTIFICATION";

static SES_RECEIVED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bby\s+inbound-smtp\.[a-z0-9-]+\.amazonaws\.com\s+with\s+\S+\s+id\s+(\S+)(?:\s+for\s+<?([^\s;<>]+)>?)?")
        .expect("static regex")
});

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

/// How many headers from the top make SES's block (computed once, at parse).
pub fn ses_block_len(headers: &Headers) -> usize {
    let end = headers
        .iter()
        .position(|(name, value)| !is_ses_header(name, value))
        .unwrap_or(headers.len());
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

pub fn envelope(mail: &ParsedMail) -> Envelope {
    ses_headers_named(mail, "Received")
        .find_map(|value| SES_RECEIVED.captures(value))
        .map(|c| Envelope {
            ses_message_id: Some(c[1].trim_end_matches(';').to_string()),
            recipients: c
                .get(2)
                .and_then(|m| EmailAddress::parse(m.as_str()).ok())
                .into_iter()
                .collect(),
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse;

    const SES: &str = "Return-Path: <b@amazonses.com>\r\nReceived: from mx.example\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id abc\r\n for root@msp.example;\r\n Tue, 03 Mar 2026 10:15:02 +0000\r\nX-SES-Spam-Verdict: PASS\r\nAuthentication-Results: amazonses.com; dmarc=pass\r\n";

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
        assert_eq!(envelope(&mail), Envelope::default());
    }

    #[test]
    fn envelope_recipient_comes_from_the_ses_received_header() {
        let raw = "Received: from mx.example (mx.example [1.2.3.4])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id abc123def\r\n for Root+A@Root.Example-MSP.com;\r\n Tue, 03 Mar 2026 10:15:02 +0000 (UTC)\r\nReceived: by mx.example for <other@example.com>\r\nFrom: a@b.com\r\nTo: list@example.com\r\n\r\nhi";
        let env = envelope(&parse(raw.as_bytes()).unwrap());
        assert_eq!(env.ses_message_id.as_deref(), Some("abc123def"));
        assert_eq!(
            env.recipients,
            vec![EmailAddress::parse("root+a@root.example-msp.com").unwrap()]
        );
    }
}
