//! Event times (`eventTime`, SES `mail.timestamp`): RFC 3339 date-times read
//! to epoch milliseconds by the `time` crate.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the epoch of an RFC 3339 date-time such as
/// `2026-11-28T10:00:00.250Z` or `2026-11-28T11:00:00+01:00`, or `None` when
/// `text` is not one or names an instant before 1970.
///
/// It reads exactly what the AWS SDK's `DateTimeWithOffset` format reads: a
/// `T` or `t` separator, any number of fraction digits (the first three
/// count), `Z`, `z` or a `±hh:mm` offset, and a leap second (`:60`) only as
/// the last second of a UTC month, read as the millisecond before it.
pub fn rfc3339_millis(text: &str) -> Option<u64> {
    // `time` takes any one byte between the date and the time (RFC 3339 lets
    // applications choose a space); the SDK takes only `T` or `t`, and so do
    // we (`reads_what_the_sdk_read` holds a space).
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    // Floored, so the last half millisecond of 1969 is before 1970 too.
    u64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::DateTime;
    use aws_smithy_types::date_time::Format;

    /// What `mail-ingest` computed with the AWS SDK before this module existed.
    fn sdk_millis(text: &str) -> Option<u64> {
        DateTime::from_str(text, Format::DateTimeWithOffset)
            .ok()
            .and_then(|t| u64::try_from(t.to_millis().ok()?).ok())
    }

    #[test]
    fn reads_event_times() {
        assert_eq!(
            rfc3339_millis("2026-11-28T10:00:00.250Z"),
            Some(1_795_860_000_250)
        );
        assert_eq!(
            rfc3339_millis("2026-11-28T11:00:00.250+01:00"),
            Some(1_795_860_000_250)
        );
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_millis("1969-12-31T23:59:59.999Z"), None);
        assert_eq!(
            rfc3339_millis("2016-12-31T23:59:60Z"),
            Some(1_483_228_799_999)
        );
        assert_eq!(rfc3339_millis("2016-12-30T23:59:60Z"), None);
        assert_eq!(rfc3339_millis("2026-02-29T00:00:00Z"), None);
    }

    /// Odd inputs read the way we want, and the way the SDK read them.
    #[test]
    fn odd_inputs_read_as_we_want() {
        let cases = [
            // A leap second is the millisecond before the next UTC month,
            // wherever the offset puts it, and nothing elsewhere.
            ("2016-12-31T23:59:60Z", Some(1_483_228_799_999)),
            ("2017-01-01T05:29:60+05:30", Some(1_483_228_799_999)),
            ("2016-12-31T22:59:60Z", None),
            ("9999-12-31T23:59:60Z", Some(253_402_300_799_999)),
            // Lowercase `t` and `z` are the same instant.
            ("2026-11-28t10:00:00.250z", Some(1_795_860_000_250)),
            // Any separator but `T` or `t` is refused, though `time` takes it.
            ("2026-11-28 10:00:00.250Z", None),
            ("2026-11-28_10:00:00.250Z", None),
            // Half-hour and negative offsets.
            ("2026-11-28T15:30:00.250+05:30", Some(1_795_860_000_250)),
            ("2026-11-28T04:30:00.250-05:30", Some(1_795_860_000_250)),
            ("2026-11-28T10:00:00.250\u{2212}01:00", None),
            // Fractions: every digit after the third is dropped, not rounded.
            (
                "2026-11-28T10:00:00.2509999999999999999999Z",
                Some(1_795_860_000_250),
            ),
            ("2026-11-28T10:00:00.9Z", Some(1_795_860_000_900)),
            // Four-digit years at both ends: 0000 is before 1970, 9999 is not,
            // and an offset may carry 9999 into 10000 UTC.
            ("0000-01-01T00:00:00Z", None),
            ("9999-12-31T23:59:59.999Z", Some(253_402_300_799_999)),
            ("9999-12-31T23:59:59.999-23:59", Some(253_402_387_139_999)),
            ("10000-01-01T00:00:00Z", None),
            // 29 February only in a leap year.
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("2000-02-29T00:00:00Z", Some(951_782_400_000)),
            ("2023-02-29T00:00:00Z", None),
            ("1900-02-29T00:00:00Z", None),
            // Half a millisecond before 1970 is still before it.
            ("1969-12-31T23:59:59.9995Z", None),
            ("1970-01-01T00:00:00.0005Z", Some(0)),
        ];
        for (text, want) in cases {
            assert_eq!(rfc3339_millis(text), want, "{text:?}");
            assert_eq!(sdk_millis(text), want, "the SDK on {text:?}");
        }
    }

    #[test]
    fn reads_what_the_sdk_read() {
        let samples = [
            "2026-11-28T10:00:00.250Z",
            "2026-11-28T10:00:00Z",
            "2026-11-28t10:00:00z",
            "2026-11-28 10:00:00Z",
            "2026-11-28T10:00:00.1Z",
            "2026-11-28T10:00:00.123456789123Z",
            "2026-11-28T10:00:00.Z",
            "2026-11-28T10:00:00.250-00:00",
            "2026-11-28T10:00:00+23:59",
            "2026-11-28T10:00:00-23:59",
            "2026-11-28T10:00:00+24:00",
            "2026-11-28T10:00:00+01:60",
            "2026-11-28T10:00:00+0100",
            "2026-11-28T10:00:00",
            "2026-11-28T24:00:00Z",
            "2026-11-28T23:60:00Z",
            "2024-02-29T12:00:00Z",
            "2100-02-29T12:00:00Z",
            "2026-04-31T12:00:00Z",
            "2026-00-10T12:00:00Z",
            "2026-13-10T12:00:00Z",
            "2026-01-00T12:00:00Z",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2017-01-01T00:59:60+01:00",
            "2016-12-31T23:59:60+01:00",
            "2016-06-30T23:59:60Z",
            "2016-06-29T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999-23:59",
            "1970-01-01T00:00:00+00:01",
            "1970-01-01T00:00:00-00:01",
            "+2026-11-28T10:00:00Z",
            "2026-11-28T10:00:00Z ",
            "2026-11-28",
            "2026-11-28T",
            "",
            "٢٠٢٦-11-28T10:00:00Z",
        ];
        for text in samples {
            assert_eq!(rfc3339_millis(text), sdk_millis(text), "{text:?}");
        }
    }
}
