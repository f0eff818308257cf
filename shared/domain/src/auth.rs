//! SES's verdicts and the authentication of the sender.
//!
//! SES prepends `Received`, `X-SES-Spam-Verdict`, `X-SES-Virus-Verdict`,
//! `Received-SPF` and `Authentication-Results: amazonses.com; ...` to what it stores.
//! Only headers of SES's own block at the top are read ([`crate::ses::ses_block`]),
//! and of those the topmost of each name: a sender can forge any header below.

use crate::confusables::reads_as;
use crate::mail::ParsedMail;
use crate::ses::{ses_header, ses_headers_named};
use crate::types::EmailAddress;
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

/// Domains AWS sends from (subdomains included), from design.md.
pub const AWS_SENDER_DOMAINS: &[&str] = &[
    "amazon.com",
    "aws.com",
    "amazonaws.com",
    "costalerts.amazonaws.com",
    "sns.amazonaws.com",
    "signin.aws",
    "verify.signin.aws",
    "signup.aws",
    // AWS Marketplace's own sender (no-reply@marketplace.aws); `.aws` is
    // Amazon's top-level domain.
    "marketplace.aws",
    "support.aws.com",
    "certificates.amazon.com",
];

/// The domain SES signs all mail with; its signature says nothing about `From`.
const SES_SIGNING_DOMAIN: &str = "amazonses.com";

/// Whether a sender domain is (or is under) one of AWS's, read as DNS and mail
/// clients read it: `ＡＭＡＺＯＮ.com`, `amazon。com` and `signin.aws.` all name
/// an AWS domain (see [`canonical_domain`]).
pub fn is_aws_domain(domain: &str) -> bool {
    canonical_domain(domain).is_some_and(|d| aws_domain_of(&d).is_some())
}

/// The AWS sender domain an ASCII, lower-case domain is or sits under (the
/// longest that matches).
fn aws_domain_of(domain: &str) -> Option<&'static str> {
    AWS_SENDER_DOMAINS
        .iter()
        .filter(|aws| is_within(domain, aws))
        .max_by_key(|aws| aws.len())
        .copied()
}

/// Whether `domain` is `parent` or one of its subdomains.
pub(crate) fn is_within(domain: &str, parent: &str) -> bool {
    domain == parent
        || domain
            .strip_suffix(parent)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// How each AWS sender domain reads ([`reads_as`]), beside the domain.
static AWS_DOMAIN_READINGS: LazyLock<Vec<(String, &'static str)>> = LazyLock::new(|| {
    AWS_SENDER_DOMAINS
        .iter()
        .map(|aws| (reads_as(aws), *aws))
        .collect()
});

/// How "amazon" and "aws" read, for names and domains that mention them.
static AMAZON_READS: LazyLock<String> = LazyLock::new(|| reads_as("amazon"));
static AWS_READS: LazyLock<String> = LazyLock::new(|| reads_as("aws"));

/// The AWS sender domain that a domain's reading is, or sits under, read the
/// same way (the longest that matches).
fn aws_domain_read_in(reading: &str) -> Option<&'static str> {
    AWS_DOMAIN_READINGS
        .iter()
        .filter(|(aws_reading, _)| is_within(reading, aws_reading))
        .max_by_key(|(_, aws)| aws.len())
        .map(|(_, aws)| *aws)
}

/// A domain as DNS resolves it: the IDNA (UTS #46) mapping lower-cases it,
/// turns fullwidth letters and ideographic full stops into their ASCII
/// equivalents and other labels into punycode; a trailing dot is dropped.
/// `None` when it is no domain name at all.
pub fn canonical_domain(domain: &str) -> Option<String> {
    let ascii = idna::domain_to_ascii(domain.trim()).ok()?;
    let ascii = ascii.trim_end_matches('.');
    (!ascii.is_empty() && ascii.contains('.') && !ascii.contains(char::is_whitespace))
        .then(|| ascii.to_string())
}

/// The AWS sender domain that `domain` imitates with look-alike characters
/// (`amаzon.com` with a Cyrillic а, its punycode `xn--amzon-5ve.com`,
/// `amaz0n.com`, `arnazon.com`) without being it: a homograph.
pub fn imitated_aws_domain(domain: &str) -> Option<&'static str> {
    let canonical = canonical_domain(domain)?;
    if aws_domain_of(&canonical).is_some() {
        return None;
    }
    aws_domain_read_in(&domain_reading(&canonical))
}

/// How a canonical domain reads ([`reads_as`]), its punycode shown as Unicode.
fn domain_reading(canonical: &str) -> String {
    let (unicode, _) = idna::domain_to_unicode(canonical);
    reads_as(&unicode)
}

/// The authentication facts as found, plus what they mean for this sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Authentication {
    pub spf: Option<String>,
    /// The result of the DKIM signature aligned with the From domain; `unaligned`
    /// when signatures exist but none is for that domain; `none` when there is none.
    pub dkim: Option<String>,
    pub dmarc: Option<String>,
    pub spam: Option<String>,
    pub virus: Option<String>,
    /// Domains whose DKIM signature passed.
    pub dkim_domains: Vec<String>,
    /// The envelope sender's domain SPF was checked for (`envelope-from`).
    pub envelope_domain: Option<String>,
    pub from_domain: Option<String>,
    /// The From domain is one of AWS's.
    pub aws_sender: bool,
    /// DMARC passed, or SPF or DKIM passed for a domain aligned with From.
    pub verified: bool,
}

impl Authentication {
    pub fn spam_or_virus_failed(&self) -> bool {
        [&self.spam, &self.virus]
            .iter()
            .any(|v| v.as_deref() == Some("FAIL"))
    }

    /// Why this mail's authentication is not strong enough for its secret to
    /// feed a rotation, if it is not (design.md, "Mail that may carry a secret"):
    /// SES's scans passed, SPF passed for an envelope sender of AWS or of SES
    /// itself, DKIM passed for a domain aligned with From, DMARC did not fail.
    pub fn handoff_refusal(&self) -> Option<String> {
        if !self.aws_sender {
            return Some("the sender is not on an AWS sender domain".into());
        }
        for (name, verdict) in [("spam", &self.spam), ("virus", &self.virus)] {
            if verdict.as_deref() != Some("PASS") {
                return Some(format!(
                    "SES's {name} verdict is {}, not PASS",
                    verdict.as_deref().unwrap_or("missing")
                ));
            }
        }
        if self.spf.as_deref() != Some("pass") {
            return Some(format!(
                "SPF is {}, not pass",
                self.spf.as_deref().unwrap_or("missing")
            ));
        }
        let envelope = self.envelope_domain.as_deref().unwrap_or_default();
        if !is_aws_domain(envelope) && !is_ses_domain(envelope) {
            return Some(format!(
                "the envelope sender's domain {} is neither AWS's nor SES's",
                if envelope.is_empty() {
                    "(none)"
                } else {
                    envelope
                }
            ));
        }
        if self.dkim.as_deref() != Some("pass") {
            return Some("no DKIM signature aligned with the From domain passed".into());
        }
        if self.dmarc.as_deref() == Some("fail") {
            return Some("DMARC failed".into());
        }
        None
    }
}

/// `amazonses.com` or one of its subdomains: the envelope sender of mail AWS
/// sends through SES.
fn is_ses_domain(domain: &str) -> bool {
    canonical_domain(domain)
        .is_some_and(|d| d == SES_SIGNING_DOMAIN || d.ends_with(".amazonses.com"))
}

/// What the topmost `Authentication-Results: amazonses.com` says.
#[derive(Debug, Default)]
struct Results {
    spf: Option<String>,
    spf_domain: Option<String>,
    dkim: Vec<(String, Option<String>)>,
    dmarc: Option<String>,
}

pub fn authenticate(mail: &ParsedMail) -> Authentication {
    let from_domain = mail
        .from
        .as_ref()
        .and_then(|s| s.domain())
        .map(str::to_string);
    // What DNS and DMARC compare: the canonical form of what is written.
    let from_canonical = from_domain
        .as_deref()
        .map(|d| canonical_domain(d).unwrap_or_else(|| d.to_lowercase()));
    let results = ses_results(mail);
    let received_spf = ses_header(mail, "Received-SPF");
    let spf = results.spf.clone().or_else(|| {
        received_spf
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_ascii_lowercase)
    });
    let envelope_domain = results
        .spf_domain
        .clone()
        .or_else(|| received_spf.and_then(|v| property_domain(&outside_quotes_and_comments(v))));
    let aligned = |domain: &str| {
        from_canonical
            .as_deref()
            .is_some_and(|from| aligned(domain, from))
    };
    let dkim = aligned_dkim_result(&results.dkim, &aligned);
    let spf_aligned_pass =
        spf.as_deref() == Some("pass") && results.spf_domain.as_deref().is_some_and(aligned);
    let dmarc = results.dmarc;
    // design.md: authentication fails on a DMARC fail, or when neither SPF nor
    // DKIM passes for the From domain. A DMARC pass with no aligned pass to
    // show for it is not enough (only mail that passes can feed a rotation).
    let verified =
        dmarc.as_deref() != Some("fail") && (spf_aligned_pass || dkim.as_deref() == Some("pass"));
    Authentication {
        spf,
        dkim,
        dmarc,
        spam: verdict(mail, "X-SES-Spam-Verdict"),
        virus: verdict(mail, "X-SES-Virus-Verdict"),
        dkim_domains: passing_dkim_domains(&results.dkim),
        envelope_domain,
        aws_sender: from_canonical
            .as_deref()
            .is_some_and(|d| aws_domain_of(d).is_some()),
        from_domain,
        verified,
    }
}

/// SES's own `Authentication-Results` (the topmost from `amazonses.com`):
/// any other one a sender could have written. A quote or comment left open
/// there is a sender's text (SES quotes its HELO as it came) hiding SES's
/// own clauses behind it: no result is read at all.
fn ses_results(mail: &ParsedMail) -> Results {
    ses_headers_named(mail, "Authentication-Results")
        .find(|v| {
            v.split(';')
                .next()
                .is_some_and(|id| id.trim().eq_ignore_ascii_case("amazonses.com"))
        })
        .and_then(|v| {
            let (blanked, closed) = blank_quotes_and_comments(v);
            closed.then(|| parse_results(&blanked))
        })
        .unwrap_or_default()
}

/// The header with what stands inside quoted strings and comments blanked
/// out (each character one `_`), so that only SES's own `;` end clauses and
/// only its own `name=value` are read. The sender chooses the envelope
/// sender SES writes here, and SMTP lets its local part be a quoted string
/// holding `;` and `=` (RFC 5321 4.1.2; RFC 8601 reads them as text). A
/// quote or comment left open blanks the rest. One pass.
pub(crate) fn outside_quotes_and_comments(value: &str) -> String {
    blank_quotes_and_comments(value).0
}

/// [`outside_quotes_and_comments`], and whether every quote and comment
/// was closed. Text outside is copied up to the next `"` or `(`, and the
/// inside is read up to its next special character (memchr), not character
/// by character (profiled: 2.6% of triage's instructions went here).
fn blank_quotes_and_comments(value: &str) -> (String, bool) {
    let mut out = String::with_capacity(value.len());
    let mut at = 0;
    while let Some(open) = memchr::memchr2(b'"', b'(', &value.as_bytes()[at..]).map(|i| at + i) {
        out.push_str(&value[at..=open]);
        let Some(close) = closing(value, open) else {
            blank(&mut out, &value[open + 1..]);
            return (out, false);
        };
        blank(&mut out, &value[open + 1..close]);
        out.push_str(&value[close..=close]);
        at = close + 1;
    }
    out.push_str(&value[at..]);
    (out, true)
}

/// Where the quoted string or comment opened at `open` closes (its `"` or
/// `)`, both ASCII), past escaped characters and nested comments.
fn closing(value: &str, open: usize) -> Option<usize> {
    let bytes = value.as_bytes();
    let quote = bytes[open] == b'"';
    let (mut at, mut depth) = (open + 1, 1);
    loop {
        let found = match quote {
            true => memchr::memchr2(b'"', b'\\', &bytes[at..]),
            false => memchr::memchr3(b'(', b')', b'\\', &bytes[at..]),
        };
        let i = at + found?;
        match bytes[i] {
            // The escaped character, however wide, is skipped.
            b'\\' => at = i + 1 + value[i + 1..].chars().next().map_or(0, char::len_utf8),
            b'(' => (depth, at) = (depth + 1, i + 1),
            b')' if depth > 1 => (depth, at) = (depth - 1, i + 1),
            _ => return Some(i),
        }
    }
}

/// Each character of `inside` as one `_`.
fn blank(out: &mut String, inside: &str) {
    out.extend(std::iter::repeat_n('_', inside.chars().count()));
}

/// The clauses of a results header: split at each `;` that SES follows
/// with an ASCII space, tab or line break (or that ends the value). SES
/// writes the sender's HELO as it came (`helo=...;`), and a HELO is one
/// word: the `;dkim=pass;header.i=@signin.aws` it may hold, or a `;` and a
/// no-break space, stays inside its clause.
fn clauses(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut from = 0;
        while let Some(at) = text[from..].find(';').map(|i| from + i) {
            let after = &text[at + 1..];
            if after
                .bytes()
                .next()
                .is_none_or(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            {
                rest = Some(after);
                return Some(&text[..at]);
            }
            from = at + 1;
        }
        rest = None;
        Some(text)
    })
}

/// The DKIM result that speaks for the From domain: an aligned pass, else the
/// first aligned result; `unaligned` when only other domains signed, `None`
/// when nothing was signed.
fn aligned_dkim_result(
    dkim: &[(String, Option<String>)],
    aligned: &dyn Fn(&str) -> bool,
) -> Option<String> {
    let aligned_dkim: Vec<&(String, Option<String>)> = dkim
        .iter()
        .filter(|(_, d)| d.as_deref().is_some_and(aligned))
        .collect();
    if let Some(pass) = aligned_dkim.iter().find(|(r, _)| r == "pass") {
        Some(pass.0.clone())
    } else if let Some(first) = aligned_dkim.first() {
        Some(first.0.clone())
    } else if dkim.is_empty() {
        None
    } else {
        Some("unaligned".to_string())
    }
}

/// Domains whose DKIM signature passed, aligned or not (shown to a person).
fn passing_dkim_domains(dkim: &[(String, Option<String>)]) -> Vec<String> {
    dkim.iter()
        .filter(|(r, _)| r == "pass")
        .filter_map(|(_, d)| d.clone())
        .collect()
}

fn verdict(mail: &ParsedMail, header: &str) -> Option<String> {
    ses_header(mail, header)
        .map(|v| v.trim().to_ascii_uppercase())
        .filter(|v| !v.is_empty())
}

/// The `name=value` pairs of a clause (`spf=pass`, `header.i=@amazonses.com`),
/// spaces around `=` allowed, names as written. One pass over the clause:
/// this runs for every clause of every authentication header.
fn pairs(clause: &str) -> impl Iterator<Item = (&str, &str)> {
    let separator = |c: char| c.is_whitespace() || matches!(c, ';' | '(' | ')');
    // The `=` come in order, and so do the ends of their names and the
    // starts of their values: the last separator before a name and the
    // first after a value are found by cursors that only move forward, so a
    // clause of many `=` is read once, not once for each.
    let (mut scanned, mut name_start) = (0, 0);
    let mut value_end = 0;
    clause.match_indices('=').filter_map(move |(i, _)| {
        let name_end = clause[..i].trim_end().len();
        for (j, c) in clause[scanned.min(name_end)..name_end].char_indices() {
            if separator(c) {
                name_start = scanned + j + c.len_utf8();
            }
        }
        scanned = scanned.max(name_end);
        let name = &clause[name_start.min(name_end)..name_end];
        let value_start = clause.len() - clause[i + 1..].trim_start().len();
        if value_end < value_start {
            value_end = clause[value_start..]
                .find(separator)
                .map_or(clause.len(), |j| value_start + j);
        }
        let value = &clause[value_start..value_end];
        (!name.is_empty() && !value.is_empty()).then_some((name, value))
    })
}

const DOMAIN_PROPERTIES: [&str; 5] = [
    "header.i",
    "header.d",
    "header.from",
    "envelope-from",
    "smtp.mailfrom",
];

/// The domain of the first property (`envelope-from=`, `header.i=`, ...) in a clause.
fn property_domain(clause: &str) -> Option<String> {
    pairs(clause).find_map(|(name, value)| {
        if !DOMAIN_PROPERTIES
            .iter()
            .any(|p| name.eq_ignore_ascii_case(p))
        {
            return None;
        }
        let value = value.trim_matches(|c| c == '"' || c == '<' || c == '>');
        let domain = value.rsplit_once('@').map_or(value, |(_, d)| d);
        (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
    })
}

/// The method and its result when a clause starts with one (`dkim=pass ...`).
fn method_result(clause: &str) -> Option<(&'static str, String)> {
    let (name, value) = pairs(clause).next()?;
    let method = ["spf", "dkim", "dmarc"]
        .into_iter()
        .find(|m| name.eq_ignore_ascii_case(m))?;
    // Compared as bytes: the clause may start with a character wider than
    // one, where a first pair further on would cut it.
    let starts_with_it = clause
        .as_bytes()
        .get(..name.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(name.as_bytes()));
    let letters = value
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    let result = &value[..letters];
    (starts_with_it && !result.is_empty()).then(|| (method, result.to_ascii_lowercase()))
}

fn parse_results(value: &str) -> Results {
    /// Which result the last method clause filled in (the one that later
    /// property clauses describe).
    enum Last {
        Spf,
        Dkim(usize),
        Other,
    }
    let mut results = Results::default();
    let mut last = Last::Other;
    for clause in clauses(value).skip(1).map(str::trim) {
        let domain = property_domain(clause);
        let Some((method, result)) = method_result(clause) else {
            // SES writes `spf=pass (...) client-ip=...; envelope-from=...;`: a
            // property in its own clause belongs to the method before it.
            match last {
                Last::Spf if results.spf_domain.is_none() => results.spf_domain = domain,
                Last::Dkim(i) if results.dkim[i].1.is_none() => results.dkim[i].1 = domain,
                _ => {}
            }
            continue;
        };
        last = Last::Other;
        match method {
            "spf" if results.spf.is_none() => {
                results.spf = Some(result);
                results.spf_domain = domain;
                last = Last::Spf;
            }
            "spf" => results.spf = less_trusting(results.spf.take(), result),
            "dkim" => {
                results.dkim.push((result, domain));
                last = Last::Dkim(results.dkim.len() - 1);
            }
            "dmarc" => results.dmarc = less_trusting(results.dmarc.take(), result),
            _ => {}
        }
    }
    results
}

/// Of two results for one method (SES writes one), the one that trusts
/// less: the first that is not `pass`, else `pass`.
fn less_trusting(first: Option<String>, second: String) -> Option<String> {
    match first {
        Some(first) if first != "pass" => Some(first),
        _ => Some(second),
    }
}

/// Relaxed alignment: same organizational domain. AWS's sender domains are their
/// own organizational domains, so `signin.aws` aligns with `verify.signin.aws`,
/// while `amazonses.com` aligns with nothing but itself.
fn aligned(auth_domain: &str, from_domain: &str) -> bool {
    let auth_domain = &canonical_domain(auth_domain).unwrap_or_else(|| auth_domain.to_lowercase());
    let auth_org = organizational_domain(auth_domain);
    let same_org = !auth_domain.is_empty()
        && auth_org.eq_ignore_ascii_case(organizational_domain(from_domain))
        && !auth_org.eq_ignore_ascii_case(SES_SIGNING_DOMAIN);
    same_org || auth_domain.eq_ignore_ascii_case(from_domain)
}

/// A domain's last two labels, a trailing dot dropped (AWS's sender domains
/// are their own organizational domains).
fn organizational_domain(domain: &str) -> &str {
    let domain = domain.trim_end_matches('.');
    match domain.rmatch_indices('.').nth(1) {
        Some((dot, _)) => &domain[dot + 1..],
        None => domain,
    }
}

/// A sender that imitates AWS without claiming one of its domains: not
/// phishing by the taxonomy's definition, but worth a warning a person sees. A
/// domain that reads like AWS's (`amazon-aws.com`, `aws.com.evil.io`), else a
/// display name that names AWS (`"Amazon Web Services" <x@example.com>`).
pub fn lookalike_warning(mail: &ParsedMail, auth: &Authentication) -> Option<String> {
    if auth.aws_sender {
        return None;
    }
    let domain = auth.from_domain.as_deref()?;
    let canonical = canonical_domain(domain).unwrap_or_else(|| domain.to_lowercase());
    if canonical == SES_SIGNING_DOMAIN || canonical.ends_with(".amazonses.com") {
        return None;
    }
    let imitates = domain_reading(&canonical)
        .split(['.', '-'])
        .any(|part| part.contains(AMAZON_READS.as_str()) || part.starts_with(AWS_READS.as_str()));
    let shown = short(domain);
    if imitates {
        return Some(format!(
            "sender domain {shown} looks like AWS's but is not an AWS sender domain"
        ));
    }
    let name = mail.from.as_ref()?.name.as_deref()?;
    // A name that holds an address is judged by what it claims (`spoofing_reason`).
    let holds_address = reads_as(name).contains('@');
    (!holds_address && names_aws(name)).then(|| {
        format!(
            "display name \"{}\" names AWS but the sender domain {shown} is not an AWS sender domain",
            short(name)
        )
    })
}

/// Whether a display name names Amazon or AWS, however written ([`reads_as`]).
fn names_aws(text: &str) -> bool {
    reads_as(text)
        .split(|c: char| !c.is_alphanumeric())
        .any(|word| word == AWS_READS.as_str() || word.starts_with(AMAZON_READS.as_str()))
}

/// The AWS sender domain a written domain claims: the domain itself when it
/// is one (however written), or the one it imitates with look-alike characters.
fn aws_claim(domain: &str) -> Option<String> {
    match canonical_domain(domain) {
        Some(canonical) if aws_domain_of(&canonical).is_some() => Some(canonical),
        _ => imitated_aws_domain(domain).map(str::to_string),
    }
}

static ADDRESS_IN_TEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"[^\s<>,;:"()\[\]]+@[^\s<>,;:"()\[\]]+"#).expect("static regex"));

/// The envelope sender in SES's `Return-Path`, whose local part may be a
/// quoted string (blanked first: see [`outside_quotes_and_comments`]).
static RETURN_PATH_ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:"[^"]*"|[^\s<>,;:"()\[\]]+)@[^\s<>,;:"()\[\]]+"#).expect("static regex")
});

/// Every `local@domain` written in a header value (names included: a name
/// holding an address is part of what the header claims).
fn addresses_in(value: &str) -> impl Iterator<Item = &str> {
    ADDRESS_IN_TEXT.find_iter(value).map(|m| m.as_str())
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Header text in a message about it: one line, at most 100 characters,
/// cut between words. The message is redacted as a whole later, so a secret
/// the text holds must stand in it whole or not at all: a cut inside it
/// showed its start ("The code: 615..."). The words with digits before the
/// cut go too: a code may be written in groups ("615 274", "6 1 5 2 7 4").
fn short(text: &str) -> String {
    const MAX: usize = 100;
    let line = crate::mail::clean_line(text);
    let Some((cut, _)) = line.char_indices().nth(MAX) else {
        return line;
    };
    let mut kept = line[..cut].rsplit_once(' ').map_or("", |(kept, _)| kept);
    while let Some((rest, last)) = kept.rsplit_once(' ')
        && last.contains(char::is_numeric)
    {
        kept = rest;
    }
    format!("{kept}...")
}

/// Why a message that claims an AWS sender is not believed, if it is not.
pub fn spoofing_reason(mail: &ParsedMail, auth: &Authentication) -> Option<String> {
    let written = auth.from_domain.as_deref().unwrap_or_default();
    if auth.aws_sender && !auth.verified {
        return Some(unverified_aws_claim(written, auth));
    }
    // `amаzon.com` (Cyrillic а), `xn--amzon-5ve.com`, `amaz0n.com`.
    if let Some(aws) = imitated_aws_domain(written) {
        return homograph_claim(written, aws);
    }
    if let Some(reason) = listed_aws_claim(mail).or_else(|| repeated_from(mail)) {
        return Some(reason);
    }
    if auth.aws_sender {
        return None;
    }
    let real = mail
        .from
        .as_ref()
        .and_then(|s| s.written.clone())
        .unwrap_or_else(|| "(no address)".to_string());
    if let Some(reason) = sender_header_claim(mail, &real) {
        return Some(reason);
    }
    let sender = mail.from.as_ref()?;
    display_name_claim(sender.name.as_deref(), &real).or_else(|| local_part_claim(&real))
}

/// An AWS sender domain in From whose mail did not authenticate as it.
fn unverified_aws_claim(written: &str, auth: &Authentication) -> String {
    let domain = short(written);
    let domain = match canonical_domain(written) {
        Some(canonical) if canonical != written => format!("{domain} (read as {canonical})"),
        _ => domain,
    };
    match auth.dmarc.as_deref() {
        Some("fail") => format!("claims AWS sender domain {domain} but DMARC failed"),
        _ => format!("claims AWS sender domain {domain} but neither SPF nor DKIM passed for it"),
    }
}

/// A From domain that imitates `aws` with look-alike characters, shown as a
/// mail client would show it when that differs from what is written.
fn homograph_claim(written: &str, aws: &str) -> Option<String> {
    let (unicode, _) = idna::domain_to_unicode(&canonical_domain(written)?);
    let shown = if unicode == written {
        String::new()
    } else {
        format!(" (shown as {})", short(&unicode))
    };
    Some(format!(
        "sender domain {}{shown} imitates AWS sender domain {aws} with look-alike characters",
        short(written)
    ))
}

/// AWS sends from one mailbox; a From list that names AWS anywhere is a trick.
fn listed_aws_claim(mail: &ParsedMail) -> Option<String> {
    if mail.more_from.is_empty() {
        return None;
    }
    let count = mail.more_from.len() + 1;
    mail.from.iter().chain(&mail.more_from).find_map(|sender| {
        let claim = sender.domain().and_then(aws_claim)?;
        let who = short(sender.written.as_deref().unwrap_or_default());
        Some(format!(
            "From lists {count} mailboxes and {who} claims AWS sender domain {claim}"
        ))
    })
}

/// A message has one From field (RFC 5322 3.6). With two, rootmail and DKIM
/// read the last, and some mail programs show the first: a forged
/// `From: no-reply@signin.aws` above the real one.
fn repeated_from(mail: &ParsedMail) -> Option<String> {
    let mut fields = mail.headers_named("From").take(MAX_FROM_FIELDS);
    let first = fields.next()?;
    let count = 1 + fields.count();
    let more = if count == MAX_FROM_FIELDS {
        " or more"
    } else {
        ""
    };
    // Its address only: the field is quoted as written, and a name in an
    // encoded word ("=?utf-8?q?code:_615274?=") is never searched decoded.
    let address = addresses_in(first).next().unwrap_or("no address");
    (count > 1).then(|| {
        format!(
            "it has {count}{more} From fields; the first names {}",
            short(address)
        )
    })
}

/// How many From fields [`repeated_from`] counts before it stops.
const MAX_FROM_FIELDS: usize = 10;

/// `Sender: no-reply@signin.aws` on a mail from someone else (`real`).
fn sender_header_claim(mail: &ParsedMail, real: &str) -> Option<String> {
    mail.headers_named("Sender").find_map(|value| {
        let (address, claim) =
            addresses_in(value).find_map(|a| aws_claim(domain_of(a)).map(|claim| (a, claim)))?;
        Some(format!(
            "the Sender header names {} (AWS sender domain {claim}) but From is {}",
            short(address),
            short(real)
        ))
    })
}

/// `"no-reply@amazon.com" <evil@example.com>`: the name claims what the
/// address is not, however written (`no-reply＠signin.aws`).
fn display_name_claim(name: Option<&str>, real: &str) -> Option<String> {
    let claimed = name?
        .split(|c: char| {
            c.is_whitespace() || c == '"' || c == '<' || c == '>' || c == '(' || c == ')'
        })
        .find(|word| reads_as_aws_address(word))?;
    Some(format!(
        "display name claims {} but the address is {}",
        short(claimed),
        short(real)
    ))
}

/// `<no-reply@signin.aws@example.com>`: an AWS address as the local part.
fn local_part_claim(real: &str) -> Option<String> {
    let (local, _) = real.rsplit_once('@')?;
    reads_as_aws_address(local).then(|| {
        format!(
            "the address {} claims {} in its local part",
            short(real),
            short(&local.to_lowercase())
        )
    })
}

/// Whether `text` reads as an address on an AWS sender domain, however
/// written (`no-reply＠signin.aws`, `no-reply@amaz0n.com`): it is an address
/// once read, and its domain reads as an AWS sender domain's.
fn reads_as_aws_address(text: &str) -> bool {
    EmailAddress::parse(&reads_as(text))
        .is_ok_and(|address| aws_domain_read_in(address.domain().trim_end_matches('.')).is_some())
}

/// For mail that authenticates as AWS: a `Sender` or `Reply-To` outside AWS's
/// sender domains, or a `Return-Path` (SES's, the envelope sender) outside
/// AWS's and SES's. AWS's own mail has none of these; a genuine AWS mail that
/// someone else sends again (its DKIM signature still passes) or extends with
/// headers the signature does not cover can.
pub fn foreign_reply_path(mail: &ParsedMail) -> Option<String> {
    for header in ["Sender", "Reply-To"] {
        for value in mail.headers_named(header) {
            if let Some(address) = addresses_in(value).find(|a| !is_aws_domain(domain_of(a))) {
                return Some(format!(
                    "its {header} header names {}, outside AWS's sender domains",
                    short(address)
                ));
            }
        }
    }
    let return_path = outside_quotes_and_comments(ses_header(mail, "Return-Path")?);
    let address = RETURN_PATH_ADDRESS.find(&return_path)?.as_str();
    let domain = domain_of(address);
    (!is_ses_domain(domain) && !is_aws_domain(domain)).then(|| {
        format!(
            "its Return-Path {} is outside AWS's and SES's domains",
            short(address)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse;

    /// SES's own `Received` first, so the headers after it count as SES's
    /// block as far as they are headers SES writes.
    const RECEIVED: &str = "Received: from mx.example (mx.example [192.0.2.1])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id abc\r\n for root@msp.example;\r\n Tue, 03 Mar 2026 10:15:02 +0000\r\n";

    fn mail(headers: &str) -> ParsedMail {
        parse(format!("{RECEIVED}{headers}\r\n\r\nbody").as_bytes()).unwrap()
    }

    const PASS: &str = "Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) client-ip=1.2.3.4; envelope-from=x@us-east-1.amazonses.com;\r\n dkim=pass header.i=@signin.aws;\r\n dkim=pass header.i=@amazonses.com;\r\n dmarc=pass header.from=signin.aws;";

    #[test]
    fn alignment_compares_the_last_two_labels_in_any_case() {
        assert_eq!(organizational_domain("verify.signin.aws."), "signin.aws");
        assert_eq!(organizational_domain("aws"), "aws");
        assert_eq!(organizational_domain("b..c"), ".c");
        assert!(aligned("Verify.SIGNIN.aws", "signin.aws"));
        assert!(!aligned("signin.aws.evil.example", "signin.aws"));
        // SES's own signing domain aligns with nothing but itself.
        assert!(!aligned("bounce.amazonses.com", "mail.amazonses.com"));
        assert!(aligned("amazonses.com", "amazonses.com"));
    }

    #[test]
    fn aligned_dkim_and_dmarc_pass_verify_an_aws_sender() {
        let m = mail(&format!(
            "{PASS}\r\nX-SES-Spam-Verdict: PASS\r\nFrom: no-reply@verify.signin.aws"
        ));
        let a = authenticate(&m);
        assert!(a.aws_sender && a.verified);
        assert_eq!(a.dkim.as_deref(), Some("pass"));
        assert_eq!(a.dmarc.as_deref(), Some("pass"));
        assert_eq!(a.spam.as_deref(), Some("PASS"));
        assert_eq!(a.dkim_domains, vec!["signin.aws", "amazonses.com"]);
        assert_eq!(spoofing_reason(&m, &a), None);
    }

    #[test]
    fn only_the_ses_signature_passing_is_not_enough() {
        let m = mail(
            "Authentication-Results: amazonses.com; spf=fail; dkim=pass header.i=@amazonses.com; dmarc=none header.from=amazon.com;\r\nFrom: billing@amazon.com",
        );
        let a = authenticate(&m);
        assert_eq!(a.dkim.as_deref(), Some("unaligned"));
        assert!(!a.verified);
        assert!(
            spoofing_reason(&m, &a)
                .unwrap()
                .contains("neither SPF nor DKIM")
        );
    }

    #[test]
    fn dmarc_fail_wins_and_a_forged_lower_header_is_ignored() {
        let m = mail(
            "Authentication-Results: amazonses.com; spf=pass envelope-from=a@aws.com; dkim=pass header.i=@aws.com; dmarc=fail header.from=aws.com;\r\nFrom: x@aws.com\r\nAuthentication-Results: amazonses.com; dmarc=pass",
        );
        let a = authenticate(&m);
        assert!(!a.verified);
        assert!(spoofing_reason(&m, &a).unwrap().contains("DMARC failed"));
    }

    /// The envelope sender is the sender's to choose, and SMTP lets its
    /// local part be a quoted string holding `;` and `=`: were it read as
    /// clauses, SES's header would say DKIM passed for signin.aws, an SPF
    /// domain of SES and a DMARC pass ahead of SES's own fail, and a forged
    /// code would reach a waiting rotation.
    #[test]
    fn a_quoted_envelope_sender_cannot_write_clauses_of_its_own() {
        let m = mail(concat!(
            "Authentication-Results: amazonses.com;\r\n",
            " spf=pass (spf=pass) client-ip=203.0.113.9;",
            " envelope-from=\"x@amazonses.com;dkim=pass;header.i=@signin.aws;dmarc=pass\"@evil.example;",
            " helo=mail.evil.example;\r\n",
            " dkim=pass header.i=@evil.example;\r\n",
            " dmarc=fail header.from=signin.aws;\r\n",
            "X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n",
            "From: no-reply@verify.signin.aws",
        ));
        let a = authenticate(&m);
        assert_eq!(a.envelope_domain.as_deref(), Some("evil.example"));
        assert_eq!(a.dkim.as_deref(), Some("unaligned"));
        assert_eq!(a.dkim_domains, vec!["evil.example"]);
        assert_eq!(a.dmarc.as_deref(), Some("fail"));
        assert!(!a.verified);
        assert!(a.handoff_refusal().is_some());
        // A comment is no clause either, nor a pair.
        let commented = parse_results(&outside_quotes_and_comments(
            "amazonses.com; spf=pass (x; (dmarc=pass;) envelope-from=a@aws.com) envelope-from=b@evil.example; dmarc=fail",
        ));
        assert_eq!(commented.spf_domain.as_deref(), Some("evil.example"));
        assert_eq!(commented.dmarc.as_deref(), Some("fail"));
    }

    /// SES writes the sender's HELO into its own header as it came. An
    /// 8-bit byte there made the header not UTF-8, and it was left out: the
    /// sender's forged results right below took its place, and a forged
    /// code passed as AWS's (found by an attacker's review).
    #[test]
    fn an_8bit_helo_does_not_let_a_forged_header_stand_for_ses() {
        let mut raw = RECEIVED.as_bytes().to_vec();
        raw.extend_from_slice(b"Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) client-ip=203.0.113.9; envelope-from=x@evil.example; helo=\xffevil;\r\n dkim=fail header.i=@evil.example;\r\n dmarc=fail header.from=signin.aws;\r\n");
        raw.extend_from_slice(PASS.as_bytes());
        raw.extend_from_slice(b"\r\nReturn-Path: <x@us-east-1.amazonses.com>\r\nFrom: no-reply@verify.signin.aws\r\n\r\nbody");
        let m = parse(&raw).unwrap();
        let a = authenticate(&m);
        assert_eq!(a.dmarc.as_deref(), Some("fail"), "SES's own header is read");
        assert!(!a.verified);
        assert!(a.handoff_refusal().is_some());
    }

    /// A HELO is one word, and SES writes it as it came: `;`s in it are not
    /// SES's clause ends, and a comment it leaves open must not hide SES's
    /// own failing results behind it.
    #[test]
    fn a_helo_cannot_write_clauses_of_its_own() {
        let injected = |helo: &str| {
            mail(&format!(
                "Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) client-ip=203.0.113.9; envelope-from=x@evil.example; helo={helo};\r\n dkim=fail header.i=@evil.example;\r\n dmarc=fail header.from=signin.aws;\r\nFrom: no-reply@verify.signin.aws"
            ))
        };
        for helo in [
            "x;dkim=pass;header.i=@verify.signin.aws",
            "x;\u{a0}dkim=pass\u{a0}header.i=@verify.signin.aws",
            "x;\u{85}dkim=pass header.i=@verify.signin.aws",
        ] {
            let plain = authenticate(&injected(helo));
            assert_eq!(plain.dkim.as_deref(), Some("unaligned"), "{helo:?}");
            assert_eq!(plain.dmarc.as_deref(), Some("fail"));
            assert!(!plain.verified);
        }
        let hiding = authenticate(&injected(
            "x;dkim=pass;header.i=@verify.signin.aws;dmarc=pass;(",
        ));
        assert_eq!((hiding.dkim, hiding.dmarc), (None, None));
        assert!(!hiding.verified);
    }

    /// SES writes each of its headers once: a second of a name starts what
    /// the sender wrote, so a verdict SES did not write (its scan off)
    /// below a forged copy of one it did is not SES's either.
    #[test]
    fn a_repeated_header_ends_ses_block() {
        let m = mail(&format!(
            "{PASS}\r\n{PASS}\r\nX-SES-Virus-Verdict: PASS\r\nFrom: no-reply@verify.signin.aws"
        ));
        assert_eq!(m.ses_headers, 2);
        assert_eq!(authenticate(&m).virus, None);
    }

    /// Two From fields: DKIM and rootmail read the last, some mail programs
    /// show the first. Whoever sent it, it is a trick.
    #[test]
    fn a_second_from_field_is_phishing() {
        let m = mail(&format!(
            "{PASS}\r\nFrom: no-reply@verify.signin.aws\r\nFrom: attacker@evil.example"
        ));
        let reason = spoofing_reason(&m, &authenticate(&m)).expect("a trick");
        assert!(reason.contains("2 From fields"), "{reason}");
        assert!(reason.contains("no-reply@verify.signin.aws"), "{reason}");
        let one = mail(&format!("{PASS}\r\nFrom: no-reply@verify.signin.aws"));
        assert_eq!(spoofing_reason(&one, &authenticate(&one)), None);
    }

    /// The blanking read character by character: what the one that skips
    /// between special characters must give.
    fn blanked_char_by_char(value: &str) -> (String, bool) {
        enum In {
            Text,
            Quote,
            Comment(usize),
        }
        let (mut inside, mut escaped) = (In::Text, false);
        let mut out = String::with_capacity(value.len());
        for c in value.chars() {
            let kept = match inside {
                In::Text => {
                    match c {
                        '"' => inside = In::Quote,
                        '(' => inside = In::Comment(1),
                        _ => {}
                    }
                    true
                }
                _ if escaped => {
                    escaped = false;
                    false
                }
                _ if c == '\\' => {
                    escaped = true;
                    false
                }
                In::Quote => {
                    if c == '"' {
                        inside = In::Text;
                    }
                    c == '"'
                }
                In::Comment(depth) => {
                    match c {
                        '(' => inside = In::Comment(depth + 1),
                        ')' if depth == 1 => inside = In::Text,
                        ')' => inside = In::Comment(depth - 1),
                        _ => {}
                    }
                    matches!(inside, In::Text)
                }
            };
            out.push(if kept { c } else { '_' });
        }
        (out, matches!(inside, In::Text))
    }

    /// On generated headers of quotes, comments, escapes, wide characters
    /// and text: both ways blank the same, and agree on what was closed.
    #[test]
    fn blanking_between_special_characters_is_blanking_each_character() {
        let mut next = crate::generator(0x51_7cc1_b727_220a);
        let pieces = ["\"", "(", ")", "\\", "a", "é", ";", " ", "=", "\u{3000}"];
        for _ in 0..5000 {
            let value: String = (0..next(16)).map(|_| pieces[next(pieces.len())]).collect();
            assert_eq!(
                blank_quotes_and_comments(&value),
                blanked_char_by_char(&value),
                "{value:?}"
            );
        }
    }

    #[test]
    fn quotes_and_comments_are_blanked_to_their_ends_and_the_rest_kept() {
        let blank = outside_quotes_and_comments;
        assert_eq!(blank(r#"a="b;c"@d; e"#), r#"a="___"@d; e"#);
        assert_eq!(blank(r#"x (a (b) \) c) y"#), "x (__________) y");
        assert_eq!(blank(r#"a="b\"c;" d"#), r#"a="_____" d"#);
        // Left open: the rest is blanked. Wide characters are one `_` each.
        assert_eq!(
            blank("dkim=pass (é; dmarc=pass"),
            "dkim=pass (_____________"
        );
        assert_eq!(blank("\"é"), "\"_");
        assert_eq!(blank(r#"a\;b)c"#), r#"a\;b)c"#);
    }

    /// SES writes one SPF and one DMARC result. Should its header ever hold
    /// two (a sender's text it did not quote), the one that trusts less
    /// wins, whichever comes first.
    #[test]
    fn of_two_results_for_one_method_the_less_trusting_wins() {
        let r = parse_results(
            "amazonses.com; spf=pass envelope-from=x@amazonses.com; helo=a;dmarc=pass;spf=pass; dkim=pass header.i=@evil.example; spf=softfail; dmarc=fail header.from=signin.aws",
        );
        assert_eq!(r.dmarc.as_deref(), Some("fail"));
        assert_eq!(r.spf.as_deref(), Some("softfail"));
        assert_eq!(r.spf_domain.as_deref(), Some("amazonses.com"));
        let agreeing =
            parse_results("amazonses.com; dmarc=pass; dmarc=pass; spf=pass; spf=fail; spf=pass");
        assert_eq!(agreeing.dmarc.as_deref(), Some("pass"));
        assert_eq!(agreeing.spf.as_deref(), Some("fail"));
    }

    /// Found by `make fuzz`: a clause whose first pair stands after a
    /// character wider than a byte, and a property after Unicode whitespace,
    /// were cut inside a character (a panic).
    #[test]
    fn results_with_wide_characters_are_read_without_cutting_one() {
        let odd =
            parse_results("amazonses.com; a\u{fffd}rna bh=DHhm/90=; dkim=pass header.i=@x.example");
        assert_eq!(
            odd.dkim,
            vec![("pass".to_string(), Some("x.example".to_string()))]
        );
        let wide = parse_results(
            "amazonses.com; dkim=pass\u{3000}header.i=@signin.aws; spf=pass\u{a0}envelope-from=a@aws.com",
        );
        assert_eq!(
            wide.dkim,
            vec![("pass".to_string(), Some("signin.aws".to_string()))]
        );
        assert_eq!(wide.spf.as_deref(), Some("pass"));
        assert_eq!(wide.spf_domain.as_deref(), Some("aws.com"));
        // A method name after a wide character does not start its clause.
        assert_eq!(
            parse_results("amazonses.com; \u{e9} dkim=pass").dkim,
            vec![]
        );
        assert_eq!(
            parse_results("amazonses.com; ab\u{fffd} dkim=pass").dkim,
            vec![]
        );
    }

    /// The forward cursors read what the plain definition reads: for each
    /// `=`, the name back to the last separator and the value on to the next.
    #[test]
    fn pairs_are_what_the_plain_definition_reads() {
        fn plain(clause: &str) -> Vec<(&str, &str)> {
            let separator = |c: char| c.is_whitespace() || matches!(c, ';' | '(' | ')');
            let mut found = Vec::new();
            for (i, _) in clause.match_indices('=') {
                let before = clause[..i].trim_end();
                let name = before.rsplit(separator).next().unwrap_or(before);
                let after = clause[i + 1..].trim_start();
                let value = &after[..after.find(separator).unwrap_or(after.len())];
                if !name.is_empty() && !value.is_empty() {
                    found.push((name, value));
                }
            }
            found
        }
        let pieces = [
            "a",
            "=",
            " ",
            "  ",
            "(",
            ")",
            "\u{3000}",
            "\u{a0}",
            "dkim",
            "\u{e9}",
            "x=y",
            "@x.example",
        ];
        let mut next = crate::generator(0x9e37_79b9_7f4a_7c15_u64);
        for _ in 0..5_000 {
            let clause: String = (0..next(14)).map(|_| pieces[next(pieces.len())]).collect();
            assert_eq!(
                pairs(&clause).collect::<Vec<_>>(),
                plain(&clause),
                "{clause:?}"
            );
        }
    }

    #[test]
    fn missing_results_for_an_aws_sender_is_unverified() {
        let m = mail("From: no-reply@signin.aws");
        assert!(!authenticate(&m).verified);
    }

    #[test]
    fn display_name_trick_is_caught() {
        let m = mail("From: \"no-reply@amazon.com\" <evil@example.com>");
        let a = authenticate(&m);
        assert!(!a.aws_sender);
        assert!(
            spoofing_reason(&m, &a)
                .unwrap()
                .contains("display name claims no-reply@amazon.com")
        );
    }

    #[test]
    fn lookalike_domains_get_a_warning_real_ones_do_not() {
        let warning = |domain: &str| {
            let m = mail(&format!("From: Billing <billing@{domain}>"));
            lookalike_warning(&m, &authenticate(&m))
        };
        for fake in [
            "aws-billing-support.example",
            "amazon-security.example",
            "mail.awsalerts.example",
            "signin-aws.com",
            "aws.com.evil.io",
            "verify.signin.aws.evil.com",
            "am\u{430}zon-security.example",
        ] {
            assert!(warning(fake).is_some(), "{fake}");
        }
        for fine in [
            "signin.aws",
            "email.amazon.com",
            "laws.example",
            "vendor.example",
            "amazonses.com",
        ] {
            assert_eq!(warning(fine), None, "{fine}");
        }
    }

    #[test]
    fn a_display_name_that_names_aws_gets_a_warning() {
        for (from, warned) in [
            ("\"Amazon Web Services\" <billing@vendor.example>", true),
            ("AWS Notifications <alerts@vendor.example>", true),
            ("\"\u{410}W\u{405} Support\" <help@vendor.example>", true),
            ("Laws and Rules <office@vendor.example>", false),
            ("Amazon Web Services <no-reply@signin.aws>", false),
        ] {
            let m = mail(&format!("From: {from}"));
            let w = lookalike_warning(&m, &authenticate(&m));
            assert_eq!(w.is_some(), warned, "{from}: {w:?}");
        }
    }

    /// The warning is redacted as a whole, so the name it quotes must hold a
    /// secret whole or not at all: a cut at 100 characters showed a code's
    /// first digits, and `{:?}` escaped a quote inside a password.
    #[test]
    fn names_in_warnings_are_cut_between_words_and_quoted_as_written() {
        for code in ["615274", "615 274", "6 1 5 2 7 4"] {
            let long = format!("AWS {} code: {code} and more", "x".repeat(86));
            let m = mail(&format!("From: \"{long}\" <a@vendor.example>"));
            let w = lookalike_warning(&m, &authenticate(&m)).expect("names AWS");
            assert!(!w.contains('6') && w.contains("code:..."), "{w}");
        }
        let m = mail(r#"From: "AWS root password: Xy7\"pQ9#mL2z" <a@vendor.example>"#);
        let w = lookalike_warning(&m, &authenticate(&m)).expect("names AWS");
        assert!(w.contains(r#""AWS root password: Xy7"pQ9#mL2z""#), "{w}");
    }

    #[test]
    fn lookalike_domains_are_not_aws() {
        assert!(is_aws_domain("email.amazon.com"));
        assert!(!is_aws_domain("amazon.com.evil.example"));
        assert!(!is_aws_domain("notamazon.com"));
        assert!(!is_aws_domain("amazonses.com"));
        assert!(!is_aws_domain("am\u{430}zon.com"));
        assert!(!is_aws_domain("xn--amzon-5ve.com"));
    }

    #[test]
    fn an_aws_domain_however_written_is_aws() {
        for written in [
            "AMAZON.COM",
            "\u{ff41}\u{ff4d}\u{ff41}\u{ff5a}\u{ff4f}\u{ff4e}.com",
            "verify\u{3002}signin\u{3002}aws",
            "signin.aws.",
        ] {
            assert!(is_aws_domain(written), "{written}");
        }
    }

    #[test]
    fn homographs_name_the_aws_domain_they_imitate() {
        for (domain, imitated) in [
            ("am\u{430}zon.com", Some("amazon.com")),
            ("xn--amzon-5ve.com", Some("amazon.com")),
            ("amaz0n.com", Some("amazon.com")),
            ("arnazon.com", Some("amazon.com")),
            ("amaz\u{3bf}n.com", Some("amazon.com")),
            ("verify.signin.\u{430}ws", Some("verify.signin.aws")),
            ("mail.\u{430}ws.com", Some("aws.com")),
            ("amazon.com", None),
            ("amazon-aws.com", None),
            ("example.com", None),
        ] {
            assert_eq!(imitated_aws_domain(domain), imitated, "{domain}");
        }
    }

    /// Look-alikes the hand-written table before UTS #39 did not know: the
    /// Armenian օ, the Cherokee Ꭺ and Lisu ꓮ, mathematical bold letters in a
    /// display name (IDNA maps those only inside a domain), a dotted ạ.
    #[test]
    fn look_alikes_from_all_of_unicode_are_caught() {
        for (domain, imitated) in [
            ("amaz\u{585}n.com", Some("amazon.com")),
            ("mail.\u{a4ee}ws.com", Some("aws.com")),
            ("verify.signin.\u{13aa}ws", Some("verify.signin.aws")),
            ("am\u{1ea1}zon.com", Some("amazon.com")),
        ] {
            assert_eq!(imitated_aws_domain(domain), imitated, "{domain}");
        }
        let reason = |from: &str| {
            let m = mail(&format!("From: {from}"));
            spoofing_reason(&m, &authenticate(&m))
        };
        for from in [
            "\"no-reply@amaz\u{585}n.com\" <evil@example.com>",
            "\"no-reply@verify.signin.\u{a4ee}ws\" <evil@example.com>",
        ] {
            let why = reason(from).unwrap_or_default();
            assert!(why.contains("display name claims"), "{from}: {why}");
        }
        let local = reason("<no-reply@amaz\u{585}n.com@example.com>").unwrap_or_default();
        assert!(
            local.contains("claims no-reply@amaz\u{585}n.com in its local part"),
            "{local}"
        );
        for name in [
            "\u{1d400}\u{1d416}\u{1d412} Support",
            "\u{1d400}\u{1d426}\u{1d41a}\u{1d433}\u{1d428}\u{1d427} Web Services",
            "\u{a4ee}WS Billing",
        ] {
            let m = mail(&format!("From: \"{name}\" <help@vendor.example>"));
            let warning = lookalike_warning(&m, &authenticate(&m)).unwrap_or_default();
            assert!(warning.contains("names AWS"), "{name}: {warning}");
        }
    }

    #[test]
    fn dmarc_pass_without_an_aligned_pass_is_not_enough() {
        let m = mail(
            "Authentication-Results: amazonses.com; spf=pass envelope-from=x@amazonses.com; dkim=pass header.i=@amazonses.com; dmarc=pass header.from=signin.aws;\r\nFrom: no-reply@signin.aws",
        );
        let a = authenticate(&m);
        assert!(a.aws_sender && !a.verified);
        assert!(
            spoofing_reason(&m, &a)
                .unwrap()
                .contains("neither SPF nor DKIM")
        );
    }

    #[test]
    fn spf_for_the_from_domain_authenticates_it() {
        // SES writes the envelope sender in a clause of its own.
        let m = mail(
            "Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) client-ip=192.0.2.1; envelope-from=bounces@signin.aws; helo=mx;\r\n dkim=none;\r\n dmarc=none;\r\nFrom: no-reply@verify.signin.aws",
        );
        assert!(authenticate(&m).verified);
        let ses_bounce = mail(
            "Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) client-ip=192.0.2.1; envelope-from=0100@amazonses.com; helo=mx;\r\n dkim=none;\r\n dmarc=none;\r\nFrom: no-reply@verify.signin.aws",
        );
        assert!(!authenticate(&ses_bounce).verified);
    }

    #[test]
    fn other_sender_headers_that_claim_aws_are_caught() {
        let reason = |headers: &str| {
            let m = mail(headers);
            spoofing_reason(&m, &authenticate(&m))
        };
        assert!(
            reason("From: evil@example.com\r\nSender: no-reply@signin.aws")
                .unwrap()
                .contains("the Sender header names no-reply@signin.aws")
        );
        assert!(
            reason("From: evil@example.com, no-reply@signin.aws")
                .unwrap()
                .contains("From lists 2 mailboxes")
        );
        assert!(
            reason("From: <no-reply@signin.aws@example.com>")
                .unwrap()
                .contains("in its local part")
        );
        assert!(
            reason("From: \"no-reply\u{ff20}signin.aws\" <evil@example.com>")
                .unwrap()
                .contains("display name claims")
        );
        assert_eq!(reason("From: Someone <someone@example.com>"), None);
    }

    #[test]
    fn a_reply_path_outside_aws_is_reported() {
        let path = |headers: &str| foreign_reply_path(&mail(headers));
        assert_eq!(
            path(
                "Return-Path: <0100@us-west-2.amazonses.com>\r\nReply-To: ec2-abuse@amazon.com\r\nFrom: no-reply@signin.aws"
            ),
            None
        );
        assert!(
            path("Reply-To: Help <help@example.com>\r\nFrom: no-reply@signin.aws")
                .unwrap()
                .contains("Reply-To header names help@example.com")
        );
        assert!(
            path("Return-Path: <b@example.com>\r\nFrom: no-reply@signin.aws")
                .unwrap()
                .contains("Return-Path b@example.com")
        );
        // A quoted local part is the sender's text, not an address of SES.
        let quoted =
            path("Return-Path: <\"x@amazonses.com;a\"@evil.example>\r\nFrom: no-reply@signin.aws")
                .unwrap();
        assert!(quoted.contains("@evil.example is outside"), "{quoted}");
        assert!(!quoted.contains("amazonses"), "{quoted}");
    }
}
