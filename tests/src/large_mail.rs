//! The largest message `mail-ingest` accepts, for the benchmarks: an abuse
//! report from AWS Trust & Safety with the reporter's evidence attached, filled
//! to at most SES's 40 MiB limit (`MAX_MESSAGE_BYTES`, headers included).
//!
//! Deterministic: one seed, one message. Different seeds give different
//! attachments and Message-IDs, so the ledger sees each message as new.

use crate::XorShift;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// SES's limit as the handler applies it: 40 MiB, 41,943,040 bytes.
pub const SES_LIMIT: usize = rootmail_aws::mail::SES_MAX_MESSAGE_BYTES as usize;

/// The benchmarks' large message: just under the limit (40 MiB less 64 bytes,
/// less up to 7 more for the last base64 line).
pub const JUST_UNDER_LIMIT: usize = SES_LIMIT - 64;

/// The recipient: a corpus account (Hooli Media, 888899990000).
pub const RECIPIENT: &str = "root+h1q5w3e9@root.example-msp.com";

const BOUNDARY: &str = "----=_Part_40960_1773042940.7142421693019";
/// Bytes of attachment per base64 line: 76 characters and CRLF.
const RAW_PER_LINE: usize = 57;
const LINE: usize = 78;

/// A message of at most `size` bytes (and within 8 bytes of it): the report's
/// text and a base64 `evidence.zip` of deterministic random bytes (compressed
/// data does not compress further, and neither does its base64).
pub fn abuse_report_with_evidence(size: usize, seed: u64) -> Vec<u8> {
    let head = head(seed);
    let tail = format!("--{BOUNDARY}--\r\n");
    let room = size
        .checked_sub(head.len() + tail.len())
        .unwrap_or_else(|| panic!("{size} bytes cannot hold the headers and the text"));
    let full_lines = room / LINE;
    // The last line: whole 4-character groups of what is left after its CRLF.
    let last_groups = (room % LINE).saturating_sub(2) / 4;
    let raw_len = full_lines * RAW_PER_LINE + last_groups * 3;
    let evidence = XorShift::new(seed).bytes(raw_len);

    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(head.as_bytes());
    let mut line = [0u8; 76];
    for chunk in evidence.chunks(RAW_PER_LINE) {
        let n = STANDARD
            .encode_slice(chunk, &mut line)
            .expect("57 bytes fit a 76-character line");
        out.extend_from_slice(&line[..n]);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(tail.as_bytes());
    debug_assert!(out.len() <= size && size - out.len() < 8);
    out
}

fn head(seed: u64) -> String {
    let id = format!("010018de{seed:08x}-698e5841-2e59-8684-ae6b-f135dc07fa5f-000000");
    format!(
        "Return-Path: <{id}@amazonses.com>\r\n\
         Received: from a48-101.smtp-out.amazonses.com (a48-101.smtp-out.amazonses.com [54.240.48.101])\r\n \
         by inbound-smtp.us-east-1.amazonaws.com with SMTP id big{seed:x}\r\n \
         for {RECIPIENT};\r\n \
         Thu, 09 Apr 2026 07:04:10 +0000 (UTC)\r\n\
         X-SES-Spam-Verdict: PASS\r\n\
         X-SES-Virus-Verdict: PASS\r\n\
         Received-SPF: pass (spf=pass) client-ip=54.240.48.101; envelope-from={id}@amazonses.com; helo=a48-101.smtp-out.amazonses.com;\r\n\
         Authentication-Results: amazonses.com;\r\n \
         spf=pass (spf=pass) client-ip=54.240.48.101; envelope-from={id}@amazonses.com; helo=a48-101.smtp-out.amazonses.com;\r\n \
         dkim=pass header.i=@support.aws.com;\r\n \
         dkim=pass header.i=@amazonses.com;\r\n \
         dmarc=pass header.from=support.aws.com;\r\n\
         Date: Thu, 09 Apr 2026 07:03:58 +0000\r\n\
         From: AWS Trust & Safety <trustandsafety@support.aws.com>\r\n\
         To: {RECIPIENT}\r\n\
         Message-ID: <{id}@email.amazonses.com>\r\n\
         Subject: AWS Abuse Report [Malware] - evidence attached\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed;\r\n\tboundary=\"{BOUNDARY}\"\r\n\
         \r\n\
         --{BOUNDARY}\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\
         Content-Transfer-Encoding: 7bit\r\n\
         \r\n\
         Hello,\r\n\
         \r\n\
         We have received a report that an instance in your account is distributing\r\n\
         malware.\r\n\
         \r\n\
         AWS ID: 888899990000\r\n\
         Resource: arn:aws:ec2:us-east-1:888899990000:instance/i-0f3c9a7d2b1e4a6c8\r\n\
         Reporter IP evidence: 203.0.113.19, 203.0.113.57\r\n\
         \r\n\
         Please remove the content and reply within 24 hours with the actions taken.\r\n\
         The reporter's packet captures are attached.\r\n\
         \r\n\
         Regards,\r\n\
         AWS Trust & Safety\r\n\
         --{BOUNDARY}\r\n\
         Content-Type: application/zip; name=\"evidence.zip\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"evidence.zip\"\r\n\
         \r\n"
    )
}

/// A message of at most `size` bytes made of forwarded messages (about
/// 1 MiB each, `message/rfc822`), their text dense with a code's words: what
/// makes triage decode and search the most text per byte of mail.
pub fn forwarded_messages(size: usize, seed: u64) -> Vec<u8> {
    let head = head(seed);
    // The report's text, then parts instead of its evidence file.
    let head = head
        .rsplit_once(&format!("--{BOUNDARY}\r\nContent-Type: application/zip"))
        .map_or(head.as_str(), |(text, _)| text)
        .to_string();
    let tail = format!("--{BOUNDARY}--\r\n");
    let part_head = format!(
        "--{BOUNDARY}\r\nContent-Type: message/rfc822\r\n\r\n\
         From: someone@example.org\r\nSubject: fwd\r\nContent-Type: text/plain\r\n\r\n"
    );
    let words = "code ABC120 ";
    let mut out = head.into_bytes();
    while out.len() + part_head.len() + tail.len() + 2 + words.len() <= size {
        out.extend_from_slice(part_head.as_bytes());
        let room = size - out.len() - tail.len() - 2;
        let n = room.min(1 << 20) / words.len();
        out.extend_from_slice(words.repeat(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(tail.as_bytes());
    debug_assert!(out.len() <= size);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_to_the_size_asked_and_parses() {
        for size in [8 * 1024, 100_003, 1 << 20] {
            let raw = abuse_report_with_evidence(size, 7);
            assert!(raw.len() <= size && size - raw.len() < 8, "{}", raw.len());
            let parsed = mail_parser::MessageParser::default()
                .parse(raw.as_slice())
                .expect("parses");
            let attachment = parsed.attachment(0).expect("evidence attached");
            assert!(attachment.contents().len() > (size - 4000) / 78 * 57);
        }
        assert_eq!(
            abuse_report_with_evidence(8192, 1),
            abuse_report_with_evidence(8192, 1)
        );
        assert_ne!(
            abuse_report_with_evidence(8192, 1),
            abuse_report_with_evidence(8192, 2)
        );
    }

    #[test]
    fn forwarded_messages_fill_to_the_size_asked_and_parse() {
        let raw = forwarded_messages(3 << 20, 7);
        assert!(
            raw.len() <= 3 << 20 && raw.len() > (3 << 20) - 64,
            "{}",
            raw.len()
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_slice())
            .expect("parses");
        assert_eq!(parsed.attachments().count(), 3);
    }
}
