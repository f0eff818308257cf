//! Where a stored message is, and object keys as S3 events spell them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailLocation {
    pub bucket: String,
    pub key: String,
}

impl fmt::Display for MailLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl MailLocation {
    /// Reads `s3://bucket/key` back.
    pub fn parse(uri: &str) -> Option<Self> {
        let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty()).then(|| Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

/// S3 event keys are form-encoded: `+` is a space, then percent-escapes.
pub fn decode_key(key: &str) -> String {
    percent_decode_str(&key.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// What S3 leaves unescaped in event keys.
const KEY_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// A key as S3 writes it into an event (the inverse of [`decode_key`]).
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_SAFE)
        .to_string()
        .replace("%20", "+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_event_encoding() {
        for key in [
            "inbound/abc",
            "inbound/a b+c",
            "inbound/é%&?#",
            "x/AMAZON_SES_SETUP_NOTIFICATION",
        ] {
            assert_eq!(decode_key(&encode_key(key)), key);
        }
        assert_eq!(encode_key("inbound/a b+c"), "inbound/a+b%2Bc");
        assert_eq!(decode_key("inbound%2Fa+b%2Bc"), "inbound/a b+c");
    }
}
