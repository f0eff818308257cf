//! Event times (`eventTime`, SES `mail.timestamp`): RFC 3339 date-times read
//! to epoch milliseconds over the domain's civil-date functions, with no
//! date-time library.

use rootmail_domain::dates::{civil_from_days, days_from_civil};

/// Milliseconds since the epoch of an RFC 3339 date-time such as
/// `2026-11-28T10:00:00.250Z` or `2026-11-28T11:00:00+01:00`, or `None` when
/// `text` is not one or names an instant before 1970.
///
/// It reads exactly what the AWS SDK's `DateTimeWithOffset` format reads: a
/// `T` or `t` separator, any number of fraction digits (the first three
/// count), `Z`, `z` or a `±hh:mm` offset, and a leap second (`:60`) only as
/// the last second of a UTC month, read as the millisecond before it.
pub fn rfc3339_millis(text: &str) -> Option<u64> {
    let mut input = Cursor(text.as_bytes());
    let year = input.digits(4)?;
    input.expect(b"-")?;
    let month = input.digits(2)?;
    input.expect(b"-")?;
    let day = input.digits(2)?;
    input.expect(b"Tt")?;
    let hour = input.digits(2)?;
    input.expect(b":")?;
    let minute = input.digits(2)?;
    input.expect(b":")?;
    let mut second = input.digits(2)?;
    let mut millis = 0;
    if input.expect(b".").is_some() {
        let fraction = input.fraction();
        if fraction.is_empty() {
            return None;
        }
        millis = fraction
            .iter()
            .chain(b"00")
            .take(3)
            .fold(0, |acc, digit| acc * 10 + u64::from(digit - b'0'));
    }
    let offset = if input.expect(b"Zz").is_some() {
        0
    } else {
        let sign = if input.expect(b"+-")? == b'-' { -1 } else { 1 };
        let hours = input.digits(2)?;
        input.expect(b":")?;
        let minutes = input.digits(2)?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        sign * (hours * 3600 + minutes * 60)
    };
    if !input.0.is_empty() {
        return None;
    }
    let leap_second = second == 60;
    if leap_second {
        second = 59;
        millis = 999;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year as i32, month as u32, day as u32)?;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    // 23:59:60 UTC on the last day of a month, the only place leap seconds go.
    if leap_second
        && (secs.rem_euclid(86_400) != 86_399
            || civil_from_days(secs.div_euclid(86_400) + 1).2 != 1)
    {
        return None;
    }
    Some(u64::try_from(secs).ok()? * 1000 + millis)
}

/// The unread rest of a date-time.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    /// The next byte, when it is one of `allowed`.
    fn expect(&mut self, allowed: &[u8]) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        allowed.contains(&first).then(|| {
            self.0 = rest;
            first
        })
    }

    /// Exactly `n` ASCII digits, as a number.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let digits = self.0.get(..n)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[n..];
        Some(
            digits
                .iter()
                .fold(0, |acc, digit| acc * 10 + i64::from(digit - b'0')),
        )
    }

    /// All the ASCII digits that follow (possibly none).
    fn fraction(&mut self) -> &[u8] {
        let n = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.0.split_at(n);
        self.0 = rest;
        digits
    }
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
