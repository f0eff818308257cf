//! Dates from seconds since the epoch, in the two forms rootmail writes, and
//! calendar dates back to days, over the `time` crate. Everything is UTC, and
//! every instant is the caller's: nothing here reads the clock.

use time::format_description::well_known::Rfc2822;
use time::formatting::Formattable;
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime};

/// The day counted from 1970-01-01 of a calendar date, or `None` when there is
/// no such date (month 13, 30 February) or its year is outside -9999..=9999,
/// the years `time` counts.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i64> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    Some((date - OffsetDateTime::UNIX_EPOCH.date()).whole_days())
}

/// `2026-03-03 10:15:02 UTC`, for people.
pub fn utc(secs: u64) -> String {
    format(
        secs,
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"),
    )
}

/// `Mon, 12 Jan 2026 09:41:07 +0000`, for mail headers (RFC 2822).
pub fn rfc2822(secs: u64) -> String {
    format(secs, &Rfc2822)
}

/// `secs` after the epoch written as `how` says. An instant past the end of
/// 9999 (no clock gives one; a corrupt record might) is written as that last
/// second rather than as a five-digit year.
fn format(secs: u64, how: &(impl Formattable + ?Sized)) -> String {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc());
    // Cannot fail: an `OffsetDateTime` has every component a description can
    // name, its offset is UTC and its year is 1970..=9999 (RFC 2822 wants
    // 1900 or later).
    at.format(how).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_772_532_902), "2026-03-03 10:15:02 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn days_from_civil_counts_days_and_refuses_what_is_no_date() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 2, 29), Some(11_016));
        assert_eq!(days_from_civil(1969, 12, 31), Some(-1));
        assert_eq!(days_from_civil(2026, 3, 3), Some(1_772_532_902 / 86_400));
        for (y, m, d) in [
            (2026, 2, 29),
            (2100, 2, 29),
            (2026, 4, 31),
            (2026, 13, 1),
            (2026, 0, 1),
            // 257 and 258 are 1 and 2 as a byte: refused, not wrapped.
            (2026, 257, 1),
            (2026, 1, 258),
        ] {
            assert_eq!(days_from_civil(y, m, d), None, "{y}-{m}-{d}");
        }
    }

    /// Where the hand-written calendar went on forever, `time` stops at the
    /// years a date can be written in four digits: a day in year 10000 is no
    /// day (`rootmail run --since` refuses it), and a corrupt instant past
    /// 9999 shows as the last second of 9999.
    #[test]
    fn dates_stay_within_four_digit_years() {
        assert_eq!(days_from_civil(0, 2, 29), Some(-719_469));
        assert_eq!(days_from_civil(9999, 12, 31), Some(2_932_896));
        assert_eq!(days_from_civil(10_000, 1, 1), None);
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
        assert_eq!(utc(253_402_300_800), "9999-12-31 23:59:59 UTC");
        assert_eq!(utc(u64::MAX), "9999-12-31 23:59:59 UTC");
        assert_eq!(rfc2822(u64::MAX), "Fri, 31 Dec 9999 23:59:59 +0000");
    }

    #[test]
    fn mail_dates_are_rfc_2822() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_768_210_867), "Mon, 12 Jan 2026 09:41:07 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        // A one-digit day is padded, as the hand-written format did.
        assert_eq!(rfc2822(1_772_532_902), "Tue, 03 Mar 2026 10:15:02 +0000");
    }
}
