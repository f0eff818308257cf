//! The envelope SES records in the `Received` header it prepends.

use crate::mail::ParsedMail;
use crate::types::EmailAddress;
use regex::Regex;
use std::sync::LazyLock;

/// The object name SES writes when a receipt rule is created.
pub const SETUP_NOTIFICATION_OBJECT: &str = "AMAZON_SES_SETUP_NOTIFICATION";

static SES_RECEIVED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bby\s+inbound-smtp\.[a-z0-9-]+\.amazonaws\.com\s+with\s+\S+\s+id\s+(\S+)(?:\s+for\s+<?([^\s;<>]+)>?)?")
        .expect("static regex")
});

/// What SES's topmost `Received` header says about the delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub ses_message_id: Option<String>,
    pub recipients: Vec<EmailAddress>,
}

pub fn envelope(mail: &ParsedMail) -> Envelope {
    mail.headers_named("Received")
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
