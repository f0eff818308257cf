//! The facts an engineer acts on, pulled out of a mail's (already redacted)
//! text whatever its language: account ids, support case ids, access key ids,
//! resource ids, ARNs, IP addresses, amounts of money, and dates (as
//! `YYYY-MM-DD`, so a deadline reads the same in every language). Each list
//! keeps at most [`MAX_PER_FACT`] distinct values; every pattern is a regex
//! scanned once, so the cost is linear in the text.

use crate::evidence::ascii_word_boundaries;
use crate::types::AccountId;
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

/// Distinct values kept per fact.
pub const MAX_PER_FACT: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub account_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub case_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_key_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub amounts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<String>,
    /// Time limits the text sets ("within 5 days", "24 hours").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub time_limits: Vec<String>,
}

impl Facts {
    /// `(label, values)` of the facts found, in the order a ticket shows them.
    pub fn labelled(&self) -> Vec<(&'static str, &[String])> {
        [
            ("Account ids", self.account_ids.as_slice()),
            ("Support case ids", &self.case_ids),
            ("Access key ids", &self.access_key_ids),
            ("Resource ids", &self.resource_ids),
            ("ARNs", &self.arns),
            ("IP addresses", &self.ip_addresses),
            ("Amounts", &self.amounts),
            ("Dates", &self.dates),
            ("Time limits", &self.time_limits),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }
}

static ACCESS_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")).expect("static regex")
});
static RESOURCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(
        r"\b(?:i|vol|sg|eni|snap|ami|subnet|vpc|igw|nat|eipalloc)-[0-9a-f]{8}(?:[0-9a-f]{9})?\b",
    ))
    .expect("static regex")
});
static ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(
        r#"\barn:aws[a-z-]*:[a-z0-9-]+:[^\s,;"'<>()\[\]&?]+"#,
    ))
    .expect("static regex")
});
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")).expect("static regex")
});

/// A support case id in running text: `[CASE 123...]`, "case ID 123...",
/// the Support Center's `displayId=`, and the words AWS's localized mail uses.
static CASE_IN_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(concat!(
        r"(?i)(?:\bcase|\bfall|\bcaso|\bcas|\bdossier|\bkasus|ケース|케이스|案例|案件)",
        r"(?:[\s\-]*(?:id|number|nummer|numéro|número|numero|no\.?|nr\.?|#|番号))?",
        r"[\s:#：\[]*(\d{10,16})\b",
        r"|\bdisplayId=(\d{10,16})\b",
    )))
    .expect("static regex")
});

/// Money: a currency sign or code before or after a number.
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(concat!(
        r"(?:US\$|R\$|A\$|C\$|NZ\$|S\$|HK\$|[$€£¥￥₩₹]|\b(?:USD|EUR|GBP|JPY|KRW|CNY|RMB|BRL|INR|IDR|AUD|CAD|CHF|Rp)\s?)",
        r"\s?\d{1,3}(?:[,.\u{a0} ]\d{3})*(?:[.,]\d{1,2})?",
        r"|\b\d{1,3}(?:[,.\u{a0} ]\d{3})*(?:[.,]\d{1,2})?\s?(?:€|\$|USD|EUR|GBP|JPY|KRW|CNY|BRL|IDR|円|원|元|美元)",
    )))
    .expect("static regex")
});

const MONTHS: &[(&str, u32)] = &[
    // English, German, French, Spanish, Portuguese, Italian, Indonesian.
    ("january", 1),
    ("jan", 1),
    ("januar", 1),
    ("janvier", 1),
    ("enero", 1),
    ("janeiro", 1),
    ("gennaio", 1),
    ("januari", 1),
    ("february", 2),
    ("feb", 2),
    ("februar", 2),
    ("février", 2),
    ("fevrier", 2),
    ("febrero", 2),
    ("fevereiro", 2),
    ("febbraio", 2),
    ("februari", 2),
    ("march", 3),
    ("mar", 3),
    ("märz", 3),
    ("maerz", 3),
    ("mars", 3),
    ("marzo", 3),
    ("março", 3),
    ("maret", 3),
    ("april", 4),
    ("apr", 4),
    ("avril", 4),
    ("abril", 4),
    ("aprile", 4),
    ("may", 5),
    ("mai", 5),
    ("mayo", 5),
    ("maio", 5),
    ("maggio", 5),
    ("mei", 5),
    ("june", 6),
    ("jun", 6),
    ("juni", 6),
    ("juin", 6),
    ("junio", 6),
    ("junho", 6),
    ("giugno", 6),
    ("july", 7),
    ("jul", 7),
    ("juli", 7),
    ("juillet", 7),
    ("julio", 7),
    ("julho", 7),
    ("luglio", 7),
    ("august", 8),
    ("aug", 8),
    ("août", 8),
    ("aout", 8),
    ("agosto", 8),
    ("agustus", 8),
    ("september", 9),
    ("sep", 9),
    ("sept", 9),
    ("septembre", 9),
    ("septiembre", 9),
    ("setembro", 9),
    ("settembre", 9),
    ("october", 10),
    ("oct", 10),
    ("oktober", 10),
    ("octobre", 10),
    ("octubre", 10),
    ("outubro", 10),
    ("ottobre", 10),
    ("november", 11),
    ("nov", 11),
    ("novembre", 11),
    ("noviembre", 11),
    ("novembro", 11),
    ("nopember", 11),
    ("december", 12),
    ("dec", 12),
    ("dezember", 12),
    ("décembre", 12),
    ("decembre", 12),
    ("diciembre", 12),
    ("dezembro", 12),
    ("dicembre", 12),
    ("desember", 12),
];

fn month_number(name: &str) -> Option<u32> {
    let name = name.trim_end_matches('.').to_lowercase();
    MONTHS.iter().find(|(m, _)| *m == name).map(|(_, n)| *n)
}

/// Dates as AWS's mail writes them in its languages, each alternative with
/// named groups: `y`, `m` (a number) or `mn` (a month's name), `d`.
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    let names = r"[A-Za-zÀ-ÿ]{3,10}\.?";
    Regex::new(&ascii_word_boundaries(&format!(
        concat!(
            r"\b(?P<y1>\d{{4}})-(?P<m1>\d{{2}})-(?P<d1>\d{{2}})\b",
            r"|(?P<y2>\d{{4}})\s*[年년]\s*(?P<m2>\d{{1,2}})\s*[月월]\s*(?P<d2>\d{{1,2}})\s*[日일]?",
            r"|\b(?P<y3>\d{{4}})\.\s?(?P<m3>\d{{1,2}})\.\s?(?P<d3>\d{{1,2}})\b",
            r"|\b(?P<mn4>{names})\s+(?P<d4>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y4>\d{{4}})\b",
            r"|\b(?P<d5>\d{{1,2}})(?:\.|er|º)?\s+(?:de\s+)?(?P<mn5>{names})\s+(?:de\s+)?(?P<y5>\d{{4}})\b",
            r"|\b(?P<d6>\d{{1,2}})\.(?P<m6>\d{{1,2}})\.(?P<y6>\d{{4}})\b",
            r"|\b(?P<a7>\d{{1,2}})/(?P<b7>\d{{1,2}})/(?P<y7>\d{{4}})\b",
        ),
        names = names
    )))
    .expect("static regex")
});

/// `a/b/yyyy`: day first where most of the world writes it, month first in
/// the US; only a number over 12 tells which, so an ambiguous one is no date.
fn slash_date(c: &regex::Captures<'_>) -> Option<(u32, u32, u32)> {
    let number = |name: &str| c.name(name)?.as_str().parse::<u32>().ok();
    let (a, b, year) = (number("a7")?, number("b7")?, number("y7")?);
    match (a > 12, b > 12) {
        (true, false) => Some((year, b, a)),
        (false, true) => Some((year, a, b)),
        _ => None,
    }
}

/// The date a match names, as `YYYY-MM-DD`, if it is a real calendar date.
fn iso_date(c: &regex::Captures<'_>) -> Option<String> {
    let group = |names: &[&str]| names.iter().find_map(|n| c.name(n)).map(|m| m.as_str());
    let (year, month, day) = match c.name("y7") {
        Some(_) => slash_date(c)?,
        None => {
            let year: u32 = group(&["y1", "y2", "y3", "y4", "y5", "y6"])?.parse().ok()?;
            let day: u32 = group(&["d1", "d2", "d3", "d4", "d5", "d6"])?.parse().ok()?;
            let month = match group(&["m1", "m2", "m3", "m6"]) {
                Some(number) => number.parse().ok()?,
                None => month_number(group(&["mn4", "mn5"])?)?,
            };
            (year, month, day)
        }
    };
    ((1990..=2100).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day))
    .then(|| format!("{year:04}-{month:02}-{day:02}"))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The facts of a subject and text.
/// Every fact's pattern in one set: one pass says which facts a text holds
/// at all, and only those are searched for (most mail holds few).
static ANY_FACT: LazyLock<regex::RegexSet> = LazyLock::new(|| {
    regex::RegexSet::new([
        ACCESS_KEY.as_str(),
        RESOURCE.as_str(),
        ARN.as_str(),
        IPV4.as_str(),
        AMOUNT.as_str(),
        DATE.as_str(),
        TIME_LIMIT.as_str(),
        CASE_IN_TEXT.as_str(),
    ])
    .expect("static regexes")
});

/// The facts of a subject and text. `account_ids` are the ids the mail
/// mentions (resolving its account found them already).
pub fn facts(subject: &str, text: &str, account_ids: &[AccountId]) -> Facts {
    let all = format!("{subject}\n{text}");
    let holds = ANY_FACT.matches(&all);
    let found = |i: usize, re: &Regex| {
        if !holds.matched(i) {
            return Vec::new();
        }
        distinct(
            re.find_iter(&all)
                .map(|m| m.as_str().trim().trim_end_matches(['.', ':']).to_string()),
        )
    };
    Facts {
        account_ids: distinct(account_ids.iter().map(|id| id.to_string())),
        access_key_ids: found(0, &ACCESS_KEY),
        resource_ids: found(1, &RESOURCE),
        arns: found(2, &ARN),
        ip_addresses: found(3, &IPV4),
        amounts: found(4, &AMOUNT),
        dates: if holds.matched(5) {
            distinct(DATE.captures_iter(&all).filter_map(|c| iso_date(&c)))
        } else {
            Vec::new()
        },
        time_limits: if holds.matched(6) {
            distinct(
                TIME_LIMIT
                    .captures_iter(&all)
                    .filter_map(|c| c.get(1).or_else(|| c.get(2)))
                    .map(|m| m.as_str().split_whitespace().collect::<Vec<_>>().join(" ")),
            )
        } else {
            Vec::new()
        },
        case_ids: if holds.matched(7) {
            case_ids(&all)
        } else {
            Vec::new()
        },
    }
}

/// A time limit: "within five (5) days", "in 24 hours", and the forms AWS's
/// other languages use (`5日以内`, `5일 이내`, `innerhalb von 5 Tagen`...).
static TIME_LIMIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(concat!(
        r"(?i)\b(?:within|in|next|after|innerhalb von|dans un délai de|dans les|en un plazo de|en los próximos|no prazo de|nos próximos|entro|dalam)\s+",
        r"((?:[a-z]+\s+)?\(?\d{1,3}\)?\s+(?:business\s+|calendar\s+)?(?:days?|hours?|weeks?|Tage[n]?|Stunden|jours|heures|días|horas|dias|giorni|ore|hari|jam))\b",
        r"|(\d{1,3}\s*(?:日|時間|일|시간|天|小时|小時)\s*(?:以内|이내|内))",
    )))
    .expect("static regex")
});

/// Support case ids in running text, in order.
pub fn case_ids(text: &str) -> Vec<String> {
    distinct(
        CASE_IN_TEXT
            .captures_iter(text)
            .filter_map(|c| c.get(1).or_else(|| c.get(2)))
            .map(|m| m.as_str().to_string()),
    )
}

/// The longest a fact is shown: an ARN may be 2,048 characters, and one a
/// sender writes may run on for a megabyte.
pub const MAX_FACT_CHARS: usize = 256;

fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for v in values {
        if found.len() == MAX_PER_FACT {
            break;
        }
        let v = match v.char_indices().nth(MAX_FACT_CHARS) {
            Some((cut, _)) => format!("{}…", &v[..cut]),
            None => v,
        };
        if !found.contains(&v) {
            found.push(v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_language_read_as_iso() {
        let text = "by 2026-10-02; October 2, 2026; 2 October 2026; 2026年10月2日; \
            2026년 10월 2일; 2026. 10. 2.; 2. Oktober 2026; 2 octobre 2026; \
            2 de octubre de 2026; 2 de outubro de 2026; 2 ottobre 2026; 2 Oktober 2026; 02.10.2026";
        assert_eq!(facts("", text, &[]).dates, ["2026-10-02"]);
        assert!(
            facts("", "Feb 31 2026 and 2026-13-01", &[])
                .dates
                .is_empty()
        );
    }

    #[test]
    fn amounts_case_ids_and_keys_are_found_whatever_the_language() {
        let f = facts(
            "[CASE 176655012300941] Zahlung",
            "Betrag: 1.234,56 € / $5,310.04 / ¥12,345 / R$ 1.234,56 / Rp 1.500.000 / 3 000 USD\n\
             ケース ID: 172994580100613, Fall-ID 1718205593, key AKIAM4XR7QW2ZLTB9CNE",
            &[],
        );
        assert_eq!(
            f.case_ids,
            ["176655012300941", "172994580100613", "1718205593"]
        );
        assert_eq!(f.access_key_ids, ["AKIAM4XR7QW2ZLTB9CNE"]);
        for amount in [
            "1.234,56 €",
            "$5,310.04",
            "¥12,345",
            "R$ 1.234,56",
            "Rp 1.500.000",
        ] {
            assert!(
                f.amounts.iter().any(|a| a == amount),
                "{amount}: {:?}",
                f.amounts
            );
        }
    }
}
