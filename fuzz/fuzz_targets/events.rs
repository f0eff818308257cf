//! Bytes through every way `mail-ingest` decodes the event that announces mail:
//! an S3 notification (direct, or the body of an SQS record), an SQS batch as
//! the Lambda receives it, and the SES Lambda action. None may panic.
//!
//! Then three properties of the pure helpers, on the input's first line (a
//! time) and the rest (an object key):
//! - event times read exactly as the AWS SDK's parser read them before;
//! - a key survives S3's event encoding, and a replayed location
//!   (`created_event`, what `rootmail replay` sends) reads back as itself;
//! - a location survives `s3://bucket/key` and back.

#![no_main]

use aws_lambda_events::sqs::SqsEvent;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use libfuzzer_sys::fuzz_target;
use rootmail_events::time::rfc3339_millis;
use rootmail_events::{
    MailLocation, MailRef, created_event, decode_key, encode_key, s3_notification, ses_event,
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // SQS bodies and Lambda payloads are JSON text: the runtime refuses other bytes.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    decoders(text);
    let (time, key) = text.split_once('\n').unwrap_or((text, ""));
    properties(time, key);
});

fn decoders(text: &str) {
    // An SQS record's body.
    let _ = s3_notification(text);
    let Ok(payload) = serde_json::from_str::<Value>(text) else {
        return;
    };
    // A direct S3 invocation (the handler re-serializes the payload).
    let _ = s3_notification(&payload.to_string());
    // The SES Lambda action.
    let _ = ses_event(payload.clone(), "mail", "inbound/");
    // An SQS batch, each body an S3 notification.
    if let Ok(batch) = serde_json::from_value::<SqsEvent>(payload) {
        for record in batch.records {
            let _ = s3_notification(record.body.as_deref().unwrap_or_default());
        }
    }
}

fn properties(time: &str, key: &str) {
    let sdk = DateTime::from_str(time, Format::DateTimeWithOffset)
        .ok()
        .and_then(|t| u64::try_from(t.to_millis().ok()?).ok());
    assert_eq!(rfc3339_millis(time), sdk, "event time {time:?}");

    assert_eq!(decode_key(&encode_key(key)), key, "key {key:?}");
    let location = MailLocation {
        bucket: "mail".to_string(),
        key: key.to_string(),
    };
    let event = created_event(&location, key.len() as u64, time).to_string();
    let expected = MailRef {
        location: location.clone(),
        arrived_ms: sdk,
    };
    assert_eq!(
        s3_notification(&event),
        Ok(vec![expected]),
        "replay of {key:?}"
    );

    if !key.is_empty() {
        assert_eq!(MailLocation::parse(&location.to_string()), Some(location));
    }
}
