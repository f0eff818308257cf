//! SES's verdicts and the authentication of the sender.
//!
//! SES prepends `Received`, `X-SES-Spam-Verdict`, `X-SES-Virus-Verdict`,
//! `Received-SPF` and `Authentication-Results: amazonses.com; ...` to what it stores.
//! Only the topmost instance of each is trusted: a sender can forge any header
//! below the ones SES adds.

use crate::mail::ParsedMail;
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
    "support.aws.com",
    "certificates.amazon.com",
];

/// The domain SES signs all mail with; its signature says nothing about `From`.
const SES_SIGNING_DOMAIN: &str = "amazonses.com";

pub fn is_aws_domain(domain: &str) -> bool {
    let domain = domain.to_ascii_lowercase();
    AWS_SENDER_DOMAINS
        .iter()
        .any(|aws| domain == *aws || domain.ends_with(&format!(".{aws}")))
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
        .and_then(|s| s.address.as_ref())
        .map(|a| a.domain().to_string());
    let results = mail
        .headers_named("Authentication-Results")
        .find(|v| {
            v.split(';')
                .next()
                .is_some_and(|id| id.trim().eq_ignore_ascii_case("amazonses.com"))
        })
        .map(parse_results)
        .unwrap_or_default();
    let spf = results.spf.clone().or_else(|| {
        mail.header("Received-SPF")
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_ascii_lowercase)
    });
    let aligned = |domain: &str| {
        from_domain
            .as_deref()
            .is_some_and(|from| aligned(domain, from))
    };
    let aligned_dkim: Vec<&(String, Option<String>)> = results
        .dkim
        .iter()
        .filter(|(_, d)| d.as_deref().is_some_and(aligned))
        .collect();
    let dkim = if let Some(pass) = aligned_dkim.iter().find(|(r, _)| r == "pass") {
        Some(pass.0.clone())
    } else if let Some(first) = aligned_dkim.first() {
        Some(first.0.clone())
    } else if results.dkim.is_empty() {
        None
    } else {
        Some("unaligned".to_string())
    };
    let dkim_domains = results
        .dkim
        .iter()
        .filter(|(r, _)| r == "pass")
        .filter_map(|(_, d)| d.clone())
        .collect();
    let spf_aligned_pass =
        spf.as_deref() == Some("pass") && results.spf_domain.as_deref().is_some_and(aligned);
    let dmarc = results.dmarc;
    let verified = match dmarc.as_deref() {
        Some("pass") => true,
        Some("fail") => false,
        _ => spf_aligned_pass || dkim.as_deref() == Some("pass"),
    };
    Authentication {
        spf,
        dkim,
        dmarc,
        spam: verdict(mail, "X-SES-Spam-Verdict"),
        virus: verdict(mail, "X-SES-Virus-Verdict"),
        dkim_domains,
        aws_sender: from_domain.as_deref().is_some_and(is_aws_domain),
        from_domain,
        verified,
    }
}

fn verdict(mail: &ParsedMail, header: &str) -> Option<String> {
    mail.header(header)
        .map(|v| v.trim().to_ascii_uppercase())
        .filter(|v| !v.is_empty())
}

static METHOD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?i)(spf|dkim|dmarc)\s*=\s*([a-z]+)").expect("static regex"));
static PROPERTY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(header\.i|header\.d|header\.from|envelope-from|smtp\.mailfrom)\s*=\s*([^\s;]+)",
    )
    .expect("static regex")
});

fn parse_results(value: &str) -> Results {
    let mut results = Results::default();
    for clause in value.split(';').skip(1).map(str::trim) {
        let Some(m) = METHOD.captures(clause) else {
            continue;
        };
        let result = m[2].to_ascii_lowercase();
        let domain = PROPERTY.captures_iter(clause).find_map(|p| {
            let value = p[2].trim_matches(|c| c == '"' || c == '<' || c == '>');
            let domain = value.rsplit_once('@').map_or(value, |(_, d)| d);
            (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
        });
        match m[1].to_ascii_lowercase().as_str() {
            "spf" if results.spf.is_none() => {
                results.spf = Some(result);
                results.spf_domain = domain;
            }
            "dkim" => results.dkim.push((result, domain)),
            "dmarc" if results.dmarc.is_none() => results.dmarc = Some(result),
            _ => {}
        }
    }
    results
}

/// Relaxed alignment: same organizational domain. AWS's sender domains are their
/// own organizational domains, so `signin.aws` aligns with `verify.signin.aws`,
/// while `amazonses.com` aligns with nothing but itself.
fn aligned(auth_domain: &str, from_domain: &str) -> bool {
    let org = |d: &str| -> String {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = d.rsplit('.').take(2).collect();
        labels.into_iter().rev().collect::<Vec<_>>().join(".")
    };
    let same_org = !auth_domain.is_empty()
        && org(auth_domain) == org(from_domain)
        && org(auth_domain) != SES_SIGNING_DOMAIN;
    same_org || auth_domain.eq_ignore_ascii_case(from_domain)
}

/// A sender domain that imitates AWS's without being one: not phishing by the
/// taxonomy's definition (it claims no AWS domain), but worth a warning.
pub fn lookalike_warning(auth: &Authentication) -> Option<String> {
    let domain = auth.from_domain.as_deref()?;
    if auth.aws_sender || domain == SES_SIGNING_DOMAIN || domain.ends_with(".amazonses.com") {
        return None;
    }
    let imitates = domain
        .split(['.', '-'])
        .any(|part| part.contains("amazon") || part.starts_with("aws"));
    imitates
        .then(|| format!("sender domain {domain} looks like AWS's but is not an AWS sender domain"))
}

/// Why a message that claims an AWS sender is not believed, if it is not.
pub fn spoofing_reason(mail: &ParsedMail, auth: &Authentication) -> Option<String> {
    if auth.aws_sender && !auth.verified {
        let domain = auth.from_domain.as_deref().unwrap_or_default();
        return Some(match auth.dmarc.as_deref() {
            Some("fail") => format!("claims AWS sender domain {domain} but DMARC failed"),
            _ => {
                format!("claims AWS sender domain {domain} but neither SPF nor DKIM passed for it")
            }
        });
    }
    // `"no-reply@amazon.com" <evil@example.com>`: the name claims what the address is not.
    let sender = mail.from.as_ref()?;
    let name = sender.name.as_deref()?;
    let claimed = name
        .split(|c: char| {
            c.is_whitespace() || c == '"' || c == '<' || c == '>' || c == '(' || c == ')'
        })
        .filter_map(|w| EmailAddress::parse(w).ok())
        .find(|a| is_aws_domain(a.domain()))?;
    let real = sender.address.as_ref()?;
    (claimed != *real && !auth.aws_sender)
        .then(|| format!("display name claims {claimed} but the address is {real}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse;

    fn mail(headers: &str) -> ParsedMail {
        parse(format!("{headers}\r\n\r\nbody").as_bytes()).unwrap()
    }

    const PASS: &str = "Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) client-ip=1.2.3.4; envelope-from=x@us-east-1.amazonses.com;\r\n dkim=pass header.i=@signin.aws;\r\n dkim=pass header.i=@amazonses.com;\r\n dmarc=pass header.from=signin.aws;";

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
        let auth = |domain: &str| Authentication {
            from_domain: Some(domain.to_string()),
            aws_sender: is_aws_domain(domain),
            ..Authentication::default()
        };
        for fake in [
            "aws-billing-support.example",
            "amazon-security.example",
            "mail.awsalerts.example",
        ] {
            assert!(lookalike_warning(&auth(fake)).is_some(), "{fake}");
        }
        for fine in [
            "signin.aws",
            "email.amazon.com",
            "laws.example",
            "vendor.example",
            "amazonses.com",
        ] {
            assert_eq!(lookalike_warning(&auth(fine)), None, "{fine}");
        }
    }

    #[test]
    fn lookalike_domains_are_not_aws() {
        assert!(is_aws_domain("email.amazon.com"));
        assert!(!is_aws_domain("amazon.com.evil.example"));
        assert!(!is_aws_domain("notamazon.com"));
        assert!(!is_aws_domain("amazonses.com"));
    }
}
