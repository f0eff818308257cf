//! The events that announce stored mail, reduced to object locations. Pure
//! (no AWS SDK), so `fuzz/` can feed it arbitrary bytes cheaply.
//!
//! Mail reaches `mail-ingest` three ways:
//! - an SQS message whose body is an S3 event notification (the default wiring);
//! - an S3 event notification invoking the function directly;
//! - the SES Lambda action (`Records[].ses`), which carries no body: the object
//!   is `<prefix><mail.messageId>` in the bucket the S3 action wrote to.

pub mod location;
pub mod time;

pub use location::{MailLocation, decode_key, encode_key};

use crate::time::rfc3339_millis;
use aws_lambda_events::s3::S3Entity;
use serde::Deserialize;

/// One stored message to ingest, and when it arrived (for latency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRef {
    pub location: MailLocation,
    pub arrived_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("not an S3 event notification: {0}")]
    NotS3(String),
    #[error("not an SES receipt event: {0}")]
    NotSes(String),
    #[error("S3 event record without a bucket name or object key")]
    NoLocation,
}

/// An S3 event notification, or the test event S3 sends when notifications
/// are configured (`Event`, no `Records`). The entity (bucket, object) is
/// `aws_lambda_events`'; the envelope and record are ours, holding only what
/// is read, because the crate's `S3Event` has no test event and its
/// `S3EventRecord` demands `eventTime` (read by chrono, not as the SDK read
/// it), `userIdentity` and `requestParameters`: it refuses the events
/// `created_event` replays, removals without a time and a time it cannot
/// read (`the_crates_s3_records_refuse_what_we_read`).
#[derive(Deserialize)]
struct S3Notification {
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "Records", default)]
    records: Vec<S3Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_name: Option<String>,
    event_time: Option<String>,
    s3: S3Entity,
}

/// The messages an S3 notification announces. `s3:TestEvent` (sent when
/// notifications are configured) and non-create events announce none.
pub fn s3_notification(body: &str) -> Result<Vec<MailRef>, EventError> {
    let notification: S3Notification =
        serde_json::from_str(body).map_err(|e| EventError::NotS3(e.to_string()))?;
    if notification.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    let mut refs = Vec::new();
    for record in notification.records {
        let created = record
            .event_name
            .as_deref()
            .is_none_or(|name| name.starts_with("ObjectCreated:"));
        if !created {
            continue;
        }
        let (Some(bucket), Some(key)) = (record.s3.bucket.name, record.s3.object.key) else {
            return Err(EventError::NoLocation);
        };
        refs.push(MailRef {
            location: MailLocation {
                bucket,
                key: decode_key(&key),
            },
            arrived_ms: record.event_time.as_deref().and_then(rfc3339_millis),
        });
    }
    Ok(refs)
}

/// The SES Lambda action's event, holding only what is read. Not
/// `aws_lambda_events::ses::SimpleEmailEvent`: it demands some twenty fields
/// we never read (`commonHeaders`, `headers`, every verdict) and a
/// `mail.timestamp` chrono can read: an event missing one, or with a time it
/// cannot read, would lose its mail rather than only its latency
/// (`the_crates_ses_event_refuses_what_we_read`).
#[derive(Deserialize)]
struct SesEvent {
    #[serde(rename = "Records")]
    records: Vec<SesRecord>,
}

#[derive(Deserialize)]
struct SesRecord {
    ses: SesService,
}

#[derive(Deserialize)]
struct SesService {
    mail: SesMail,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesMail {
    message_id: String,
    timestamp: Option<String>,
}

/// The objects an SES Lambda-action event names, given where the S3 action stores mail.
pub fn ses_event(
    event: serde_json::Value,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<MailRef>, EventError> {
    let event: SesEvent =
        serde_json::from_value(event).map_err(|e| EventError::NotSes(e.to_string()))?;
    Ok(event
        .records
        .into_iter()
        .map(|r| MailRef {
            location: MailLocation {
                bucket: bucket.to_string(),
                key: format!("{prefix}{}", r.ses.mail.message_id),
            },
            arrived_ms: r.ses.mail.timestamp.as_deref().and_then(rfc3339_millis),
        })
        .collect())
}

/// The S3 event notification S3 would send for `location`, so stored mail can be
/// re-driven through the inbound queue exactly like new mail.
pub fn created_event(location: &MailLocation, size: u64, event_time: &str) -> serde_json::Value {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Replay",
        "eventTime": event_time,
        "s3": {
            "bucket": {"name": location.bucket},
            "object": {"key": encode_key(&location.key), "size": size},
        },
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_events_announce_nothing() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-28T10:00:00.000Z","Bucket":"mail","RequestId":"X","HostId":"Y"}"#;
        assert_eq!(s3_notification(body), Ok(Vec::new()));
    }

    #[test]
    fn keys_are_url_decoded_and_times_read() {
        let body = r#"{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2026-11-28T10:00:00.250Z",
            "s3":{"bucket":{"name":"mail"},"object":{"key":"inbound/a+b%2Bc%C3%A9","size":3}}}]}"#;
        let refs = s3_notification(body).unwrap();
        assert_eq!(refs[0].location.key, "inbound/a b+cé");
        assert_eq!(refs[0].location.bucket, "mail");
        assert_eq!(refs[0].arrived_ms, Some(1_795_860_000_250));
    }

    #[test]
    fn removals_are_not_mail_and_garbage_is_an_error() {
        let body = r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"m"},"object":{"key":"k"}}}]}"#;
        assert_eq!(s3_notification(body), Ok(Vec::new()));
        assert!(matches!(
            s3_notification("hello"),
            Err(EventError::NotS3(_))
        ));
        let no_key = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"m"},"object":{}}}]}"#;
        assert_eq!(s3_notification(no_key), Err(EventError::NoLocation));
    }

    #[test]
    fn replayed_events_read_back_as_the_location_they_name() {
        let location = MailLocation {
            bucket: "mail".into(),
            key: "inbound/a b+c%é".into(),
        };
        let event = created_event(&location, 12, "2026-11-28T10:00:00.250Z");
        let refs = s3_notification(&event.to_string()).unwrap();
        assert_eq!(
            refs,
            vec![MailRef {
                location,
                arrived_ms: Some(1_795_860_000_250)
            }]
        );
    }

    #[test]
    fn ses_events_name_the_object_the_s3_action_wrote() {
        let event = serde_json::json!({"Records":[{"eventSource":"aws:ses","ses":{
            "mail":{"messageId":"o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1","timestamp":"2026-11-28T10:00:00.000Z"},
            "receipt":{"recipients":["root+1@x.com"]}}}]});
        let refs = ses_event(event, "mail", "inbound/").unwrap();
        assert_eq!(
            refs[0].location.key,
            "inbound/o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"
        );
    }

    /// Why the record and envelope are not `aws_lambda_events::s3::S3Event`.
    #[test]
    fn the_crates_s3_records_refuse_what_we_read() {
        use aws_lambda_events::s3::S3Event;
        let location = MailLocation {
            bucket: "mail".into(),
            key: "inbound/a".into(),
        };
        let replayed = created_event(&location, 12, "2026-11-28T10:00:00.250Z").to_string();
        let removal = r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"m"},"object":{"key":"k"}}}]}"#;
        let unreadable_time = r#"{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"yesterday",
            "userIdentity":{},"requestParameters":{},"s3":{"bucket":{"name":"m"},"object":{"key":"k"}}}]}"#;
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"mail"}"#;
        for body in [replayed.as_str(), removal, unreadable_time, test_event] {
            assert!(serde_json::from_str::<S3Event>(body).is_err(), "{body}");
            assert!(s3_notification(body).is_ok(), "{body}");
        }
        let refs = s3_notification(unreadable_time).unwrap();
        assert_eq!(refs[0].location.key, "k");
        assert_eq!(refs[0].arrived_ms, None);
    }

    /// The entity is the crate's, so a field of it we do not read must still
    /// have the type S3 gives it: a number for an ETag is not an S3 event.
    #[test]
    fn a_mistyped_entity_field_is_not_an_s3_event() {
        let body = r#"{"Records":[{"eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"m"},"object":{"key":"k","eTag":5}}}]}"#;
        assert!(matches!(s3_notification(body), Err(EventError::NotS3(_))));
    }

    /// Why the SES event is not `aws_lambda_events::ses::SimpleEmailEvent`.
    #[test]
    fn the_crates_ses_event_refuses_what_we_read() {
        use aws_lambda_events::ses::SimpleEmailEvent;
        let full = |timestamp: &str| {
            serde_json::json!({"Records":[{"eventSource":"aws:ses","ses":{
                "mail":{"messageId":"m1","timestamp":timestamp,"source":"a@b.c",
                    "destination":["root+1@x.com"],"headersTruncated":false,"headers":[],
                    "commonHeaders":{"from":["a@b.c"]}},
                "receipt":{"timestamp":"2026-11-28T10:00:00.000Z","processingTimeMillis":1,
                    "recipients":["root+1@x.com"],"spamVerdict":{},"virusVerdict":{},
                    "spfVerdict":{},"dkimVerdict":{},"dmarcVerdict":{},"action":{}}}}]})
        };
        // The crate reads a complete event with a time it can read...
        assert!(serde_json::from_value::<SimpleEmailEvent>(full("2026-11-28T10:00:00Z")).is_ok());
        // ...and refuses one whose time it cannot read, or whose fields we do
        // not need are missing; we read both, losing at most the latency.
        let minimal = serde_json::json!({"Records":[{"ses":{"mail":{"messageId":"m1"}}}]});
        for event in [full("yesterday"), minimal] {
            assert!(serde_json::from_value::<SimpleEmailEvent>(event.clone()).is_err());
            let refs = ses_event(event, "mail", "inbound/").unwrap();
            assert_eq!(refs[0].location.key, "inbound/m1");
            assert_eq!(refs[0].arrived_ms, None);
        }
    }
}
