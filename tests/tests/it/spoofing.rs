//! Mail that claims an AWS sender without being one (issue 7): every combination
//! of SPF, DKIM and DMARC results and SES verdicts, display-name tricks, look-alike
//! domains and Unicode confusables. None feeds a waiting rotation; each is
//! flagged as design.md says.
//!
//! The expected outcome of each authentication combination is derived here from
//! design.md's rule, independently of the domain code:
//! - a spam or virus verdict FAIL is `mail.rejected` (quarantine);
//! - a mail that claims an AWS sender domain "fails authentication" when DMARC
//!   fails, or when neither SPF nor DKIM passes *for that domain* (an SPF pass
//!   for SES's bounce domain, or the `d=amazonses.com` signature every SES mail
//!   carries, proves nothing about the From domain): `phishing.suspected`
//!   (quarantine);
//! - of the rest, only mail whose SES verdicts both PASS, whose SPF passes for
//!   its envelope sender (SES's bounce domain or AWS's own), whose DKIM
//!   signature aligned with From passes, and whose DMARC does not fail, hands
//!   its secret to the rotation that waits for it ("Mail that may carry a
//!   secret"); the others are tickets that say a rotation waits.
//!
//! Beyond the results: a sender that claims an AWS domain in any written form
//! (fullwidth letters, ideographic full stops or a trailing dot, which DNS
//! reads as the AWS domain; a homograph: Cyrillic or Greek letters, punycode,
//! `0` for `o`, `rn` for `m`; an AWS address in the display name, in the local
//! part, in a second `From` mailbox or in `Sender:`) is `phishing.suspected`.
//! So is an authenticated AWS mail holding a secret whose `Reply-To`, `Sender`
//! or `Return-Path` leads outside AWS (a replayed or extended genuine mail). A
//! look-alike that claims no AWS domain (`amazon-aws.com`) is `unknown`, with a
//! warning in the ticket.

use rootmail_domain::{
    AccountDirectory, AccountId, Context, Disposition, EmailAddress, Kind, MailInput,
    NoKnownThreads, Priority, Rules, Triage, WaitingRotations,
};
use rootmail_tests::{corpus_dir, directory, known_secrets};
use std::fmt::Write as _;
use std::sync::LazyLock;

/// A rotation waits for exactly this account and kind.
struct WaitingFor {
    account: AccountId,
    kind: Kind,
}

impl WaitingRotations for WaitingFor {
    fn waiting_at(&self, account: &AccountId, kind: Kind) -> Option<EmailAddress> {
        (*account == self.account && kind == self.kind)
            .then(|| DIRECTORY.by_id(account))
            .flatten()
            .map(|a| a.root_email)
    }
}

/// A real AWS mail that carries a secret a rotation waits for.
struct Base {
    fixture: &'static str,
    account: &'static str,
    kind: Kind,
}

const BASES: [Base; 2] = [
    Base {
        fixture: "security.root_email_otp/01-onboarding-plain.eml",
        account: "555566667777",
        kind: Kind::RootEmailOtp,
    },
    Base {
        fixture: "security.password_reset/01-plain.eml",
        account: "111122223333",
        kind: Kind::PasswordReset,
    },
];

impl Base {
    fn raw(&self) -> String {
        std::fs::read_to_string(corpus_dir().join(self.fixture)).expect("fixture is readable")
    }

    fn secret(&self) -> String {
        known_secrets()
            .into_iter()
            .find(|(path, _)| path == self.fixture)
            .map(|(_, value)| value)
            .expect("the fixture's secret is listed in SECRETS.tsv")
    }
}

static RULES: LazyLock<Rules> = LazyLock::new(Rules::built_in);
static DIRECTORY: LazyLock<rootmail_domain::InMemoryDirectory> = LazyLock::new(directory);

fn triage_waiting(raw: &str, base: &Base) -> Triage {
    let waiting = WaitingFor {
        account: AccountId::parse(base.account).expect("account id"),
        kind: base.kind,
    };
    let ctx = Context {
        directory: &*DIRECTORY,
        rules: &RULES,
        known_threads: &NoKnownThreads,
        rotations: &waiting,
    };
    rootmail_domain::triage(
        &MailInput {
            raw: raw.as_bytes(),
            origin: "spoof.eml",
            object_name: Some("spoof.eml"),
        },
        &ctx,
    )
}

/// With `SPOOFING_KEEP=<dir>`, every generated mail is written there (to look
/// at, or to run through another build of the domain).
fn keep(name: &str, raw: &str) {
    if let Some(dir) = std::env::var_os("SPOOFING_KEEP") {
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        std::fs::write(std::path::Path::new(&dir).join(format!("{file}.eml")), raw)
            .expect("generated mail kept");
    }
}

// ------------------------------------------------------------------ headers

/// A message's header fields (lower-case name, the whole field without its
/// final CRLF, continuation lines included) and its body.
struct Message {
    fields: Vec<(String, String)>,
    body: String,
}

/// The headers SES prepends with its verdicts and authentication results.
const SES_RESULT_HEADERS: [&str; 4] = [
    "x-ses-spam-verdict",
    "x-ses-virus-verdict",
    "received-spf",
    "authentication-results",
];

impl Message {
    fn parse(raw: &str) -> Self {
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .expect("headers, blank line, body");
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            match fields.last_mut() {
                Some((_, text)) if line.starts_with([' ', '\t']) => {
                    text.push_str("\r\n");
                    text.push_str(line);
                }
                _ => {
                    let name = line.split(':').next().unwrap_or_default();
                    fields.push((name.trim().to_ascii_lowercase(), line.to_string()));
                }
            }
        }
        Self {
            fields,
            body: body.to_string(),
        }
    }

    /// Replaces SES's verdict and authentication headers with `ses` (at the
    /// same place: right below SES's `Received`).
    fn with_ses_results(mut self, ses: &str) -> Self {
        let at = self
            .fields
            .iter()
            .position(|(n, _)| SES_RESULT_HEADERS.contains(&n.as_str()))
            .expect("the fixture has SES's results");
        self.fields
            .retain(|(n, _)| !SES_RESULT_HEADERS.contains(&n.as_str()));
        for (i, field) in ses.trim_end().split("\r\n").enumerate() {
            assert!(!field.is_empty());
            let name = field.split(':').next().unwrap_or_default();
            self.fields
                .insert(at + i, (name.to_ascii_lowercase(), field.to_string()));
        }
        self
    }

    /// Sets the first field of that name (or adds it below `From`).
    fn set(mut self, name: &str, value: &str) -> Self {
        let field = format!("{name}: {value}");
        let lower = name.to_ascii_lowercase();
        match self.fields.iter_mut().find(|(n, _)| *n == lower) {
            Some(existing) => existing.1 = field,
            None => {
                let from = self
                    .fields
                    .iter()
                    .position(|(n, _)| n == "from")
                    .map_or(self.fields.len(), |i| i + 1);
                self.fields.insert(from, (lower, field));
            }
        }
        self
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for (_, field) in &self.fields {
            out.push_str(field);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&self.body);
        out
    }
}

// ------------------------------------------------------------------ the matrix

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spf {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
}

impl Spf {
    const ALL: [Spf; 5] = [Spf::Pass, Spf::Fail, Spf::SoftFail, Spf::Neutral, Spf::None];
    fn word(self) -> &'static str {
        match self {
            Spf::Pass => "pass",
            Spf::Fail => "fail",
            Spf::SoftFail => "softfail",
            Spf::Neutral => "neutral",
            Spf::None => "none",
        }
    }
}

/// Whose envelope sender SPF checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpfDomain {
    /// SES's bounce domain, as in all mail AWS sends through SES.
    SesBounce,
    /// A bounce address in the From domain's organization.
    FromDomain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dkim {
    /// A passing signature of the From domain (and SES's own).
    AlignedPass,
    /// The From domain's signature fails; SES's own passes.
    AlignedFail,
    /// Only `d=amazonses.com` passes.
    SesOnly,
    /// The sender's own, unrelated domain signs (and SES's).
    OtherDomainPass,
    /// No signature at all.
    None,
}

impl Dkim {
    const ALL: [Dkim; 5] = [
        Dkim::AlignedPass,
        Dkim::AlignedFail,
        Dkim::SesOnly,
        Dkim::OtherDomainPass,
        Dkim::None,
    ];
    fn clauses(self) -> &'static str {
        match self {
            Dkim::AlignedPass => {
                " dkim=pass header.i=@verify.signin.aws;\r\n dkim=pass header.i=@amazonses.com;\r\n"
            }
            Dkim::AlignedFail => {
                " dkim=fail header.i=@verify.signin.aws;\r\n dkim=pass header.i=@amazonses.com;\r\n"
            }
            Dkim::SesOnly => " dkim=pass header.i=@amazonses.com;\r\n",
            Dkim::OtherDomainPass => {
                " dkim=pass header.i=@mailer.example;\r\n dkim=pass header.i=@amazonses.com;\r\n"
            }
            Dkim::None => " dkim=none;\r\n",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dmarc {
    Pass,
    Fail,
    None,
}

impl Dmarc {
    const ALL: [Dmarc; 3] = [Dmarc::Pass, Dmarc::Fail, Dmarc::None];
    fn word(self) -> &'static str {
        match self {
            Dmarc::Pass => "pass",
            Dmarc::Fail => "fail",
            Dmarc::None => "none",
        }
    }
}

/// SES's spam and virus verdicts (`None`: the headers are missing).
const VERDICTS: [Option<(&str, &str)>; 5] = [
    Some(("PASS", "PASS")),
    Some(("FAIL", "PASS")),
    Some(("PASS", "FAIL")),
    Some(("GRAY", "PASS")),
    None,
];

#[derive(Debug, Clone, Copy)]
struct Combination {
    spf: Spf,
    spf_domain: SpfDomain,
    dkim: Dkim,
    dmarc: Dmarc,
    verdicts: Option<(&'static str, &'static str)>,
}

impl Combination {
    fn all() -> Vec<Combination> {
        let mut out = Vec::new();
        for spf in Spf::ALL {
            for spf_domain in [SpfDomain::SesBounce, SpfDomain::FromDomain] {
                for dkim in Dkim::ALL {
                    for dmarc in Dmarc::ALL {
                        for verdicts in VERDICTS {
                            out.push(Combination {
                                spf,
                                spf_domain,
                                dkim,
                                dmarc,
                                verdicts,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// The headers SES would prepend for this combination (From is
    /// `verify.signin.aws` in both base fixtures).
    fn ses_headers(&self) -> String {
        let envelope = match self.spf_domain {
            SpfDomain::SesBounce => "0100018e5b2f1c3d-spoof-000000@amazonses.com",
            SpfDomain::FromDomain => "bounces@verify.signin.aws",
        };
        let spf = self.spf.word();
        let mut out = String::new();
        if let Some((spam, virus)) = self.verdicts {
            let _ = write!(
                out,
                "X-SES-Spam-Verdict: {spam}\r\nX-SES-Virus-Verdict: {virus}\r\n"
            );
        }
        let _ = write!(
            out,
            "Received-SPF: {spf} (spf={spf}) client-ip=54.240.8.31; envelope-from={envelope}; helo=a8-31.smtp-out.amazonses.com;\r\n\
             Authentication-Results: amazonses.com;\r\n \
             spf={spf} (spf={spf}) client-ip=54.240.8.31; envelope-from={envelope}; helo=a8-31.smtp-out.amazonses.com;\r\n\
             {}\
             \x20dmarc={} header.from=verify.signin.aws;\r\n",
            self.dkim.clauses(),
            self.dmarc.word()
        );
        out
    }

    /// design.md's rule, written out (see the top of this file).
    fn expected(&self, base: &Base) -> (Kind, Disposition) {
        let rejected = self
            .verdicts
            .is_some_and(|(spam, virus)| spam == "FAIL" || virus == "FAIL");
        if rejected {
            return (Kind::MailRejected, Disposition::Quarantine);
        }
        let spf_passes_for_domain =
            self.spf == Spf::Pass && self.spf_domain == SpfDomain::FromDomain;
        let dkim_passes_for_domain = self.dkim == Dkim::AlignedPass;
        let fails_authentication =
            self.dmarc == Dmarc::Fail || !(spf_passes_for_domain || dkim_passes_for_domain);
        // Both envelope senders of the matrix are SES's or AWS's.
        let may_feed_rotation = self.verdicts == Some(("PASS", "PASS"))
            && self.spf == Spf::Pass
            && dkim_passes_for_domain
            && self.dmarc != Dmarc::Fail;
        if fails_authentication {
            (Kind::PhishingSuspected, Disposition::Quarantine)
        } else if may_feed_rotation {
            (base.kind, Disposition::Handoff)
        } else {
            (base.kind, Disposition::Ticket)
        }
    }
}

/// What a person could read of a triage result: the ticket and everything
/// serialized (secrets serialize without their values).
fn visible(t: &Triage) -> String {
    serde_json::to_string(t).expect("triage serializes")
}

#[test]
fn every_authentication_combination_gets_the_outcome_design_md_gives_it() {
    let combinations = Combination::all();
    let mut mismatches = Vec::new();
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    let mut rows = 0;
    for base in &BASES {
        let raw = base.raw();
        let secret = base.secret();
        for c in &combinations {
            let mail = Message::parse(&raw)
                .with_ses_results(&c.ses_headers())
                .text();
            keep(&format!("matrix {} {c:?}", base.kind), &mail);
            let t = triage_waiting(&mail, base);
            let (kind, disposition) = c.expected(base);
            let got = (t.kind, t.disposition);
            *outcomes
                .entry(format!("{} {}", got.0, got.1.as_str()))
                .or_default() += 1;
            rows += 1;
            if got != (kind, disposition) {
                mismatches.push(format!(
                    "{} {c:?}: expected {kind} {}, got {} {} (auth {:?}, warnings {:?})",
                    base.kind,
                    disposition.as_str(),
                    got.0,
                    got.1.as_str(),
                    t.authentication,
                    t.warnings
                ));
            }
            // Whatever happens, the secret is never shown.
            if visible(&t).contains(&secret) {
                mismatches.push(format!("{} {c:?}: the secret is visible", base.kind));
            }
            let handoff_ok = t.ticket.is_none() && !t.secrets.is_empty();
            if t.disposition == Disposition::Handoff && !handoff_ok {
                mismatches.push(format!(
                    "{} {c:?}: a handoff without its secret, or with a ticket",
                    base.kind
                ));
            }
            if t.kind == Kind::PhishingSuspected {
                let ticket = t.ticket.as_ref().expect("a phishing ticket");
                if !ticket.body.contains("Quarantined: suspected phishing") {
                    mismatches.push(format!(
                        "{} {c:?}: the quarantine ticket does not say why:\n{}",
                        base.kind, ticket.body
                    ));
                }
            }
        }
    }
    eprintln!(
        "{rows} combinations ({} per fixture): {outcomes:?}",
        combinations.len()
    );
    assert_eq!(rows, 2 * 5 * 2 * 5 * 3 * 5);
    assert!(
        mismatches.is_empty(),
        "{} of {rows} combinations differ from design.md:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ------------------------------------------------------------------ spoofs

/// What the sender can make SES report.
#[derive(Debug, Clone, Copy)]
enum Auth {
    /// SPF, DKIM and DMARC pass for a domain the sender owns.
    Own(&'static str),
    /// SPF and DKIM pass for the sender's own domain, DMARC has no verdict
    /// (the From domain is not one a DNS lookup finds).
    OwnUnaligned(&'static str),
    /// AWS's own mail, every check passes for `verify.signin.aws`.
    Aws,
    /// A genuine AWS mail sent again from the sender's server: AWS's DKIM
    /// signature still passes (and with it DMARC), SPF passes for the sender.
    Replayed(&'static str),
}

impl Auth {
    fn headers(self) -> String {
        let (spf_domain, dkim_domain, dmarc) = match self {
            Auth::Own(d) => (d, d, format!("pass header.from={d}")),
            Auth::OwnUnaligned(d) => (d, d, "none".to_string()),
            Auth::Aws => (
                "amazonses.com",
                "verify.signin.aws",
                "pass header.from=verify.signin.aws".to_string(),
            ),
            Auth::Replayed(d) => (
                d,
                "verify.signin.aws",
                "pass header.from=verify.signin.aws".to_string(),
            ),
        };
        format!(
            "X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n\
             Received-SPF: pass (spf=pass) client-ip=198.51.100.7; envelope-from=bounce@{spf_domain};\r\n\
             Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) client-ip=198.51.100.7; envelope-from=bounce@{spf_domain};\r\n \
             dkim=pass header.i=@{dkim_domain};\r\n dkim=pass header.i=@amazonses.com;\r\n dmarc={dmarc};\r\n"
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    /// `phishing.suspected`, quarantined, with this in its reason.
    Phishing(&'static str),
    /// `unknown`, a ticket, with a warning that contains this.
    Warned(&'static str),
}

struct Spoof {
    name: &'static str,
    /// `From:`, unless the fixture's (AWS's) own is kept.
    from: Option<&'static str>,
    auth: Auth,
    /// More header fields (name, value), set or added below `From:`.
    extra: &'static [(&'static str, &'static str)],
    flag: Flag,
}

const EVIL: &str = "evil@example.com";

const SPOOFS: &[Spoof] = &[
    // Display-name tricks: the sender authenticates its own domain.
    Spoof {
        name: "display name is an AWS address (quoted)",
        from: Some("\"no-reply@amazon.com\" <evil@example.com>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("display name claims no-reply@amazon.com"),
    },
    Spoof {
        name: "display name is the OTP sender's address (unquoted)",
        from: Some("no-reply@verify.signin.aws <evil@example.com>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("display name claims no-reply@verify.signin.aws"),
    },
    Spoof {
        name: "display name holds a name and an AWS address",
        from: Some("\"Amazon Web Services <no-reply@verify.signin.aws>\" <evil@example.com>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("display name claims no-reply@verify.signin.aws"),
    },
    Spoof {
        name: "RFC 2047 (B) display name holding an AWS address",
        from: Some("=?UTF-8?B?bm8tcmVwbHlAdmVyaWZ5LnNpZ25pbi5hd3M=?= <evil@example.com>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("display name claims no-reply@verify.signin.aws"),
    },
    Spoof {
        name: "RFC 2047 (Q) display name holding a name and an AWS address",
        from: Some(
            "=?UTF-8?Q?Amazon_Web_Services_=3Cno-reply=40verify.signin.aws=3E?= <evil@example.com>",
        ),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("display name claims no-reply@verify.signin.aws"),
    },
    Spoof {
        name: "display name with a Cyrillic a in the AWS address",
        from: Some("\"no-reply@verify.signin.\u{430}ws\" <evil@example.com>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("display name claims"),
    },
    Spoof {
        name: "display name with a fullwidth @ in the AWS address",
        from: Some("\"no-reply\u{ff20}verify.signin.aws\" <evil@example.com>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("display name claims"),
    },
    Spoof {
        name: "an AWS address as the local part of the sender's address",
        from: Some("<no-reply@verify.signin.aws@example.com>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("claims no-reply@verify.signin.aws"),
    },
    Spoof {
        name: "display name only says Amazon Web Services",
        from: Some("\"Amazon Web Services\" <evil@example.com>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Warned("display name"),
    },
    // The AWS domain itself, written differently, sent from elsewhere.
    Spoof {
        name: "AWS address in upper case from the sender's server",
        from: Some("Amazon Web Services <NO-REPLY@VERIFY.SIGNIN.AWS>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("claims AWS sender domain verify.signin.aws"),
    },
    Spoof {
        name: "Cyrillic o in the local part of the AWS address",
        from: Some("Amazon Web Services <n\u{43e}-reply@verify.signin.aws>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("claims AWS sender domain verify.signin.aws"),
    },
    Spoof {
        name: "fullwidth amazon.com (IDNA maps it to amazon.com)",
        from: Some("Amazon <no-reply@\u{ff41}\u{ff4d}\u{ff41}\u{ff5a}\u{ff4f}\u{ff4e}.com>"),
        auth: Auth::OwnUnaligned("example.com"),
        extra: &[],
        flag: Flag::Phishing("claims AWS sender domain"),
    },
    Spoof {
        name: "fullwidth letters in the top-level domain",
        from: Some("AWS <no-reply@verify.signin.\u{ff41}\u{ff57}\u{ff53}>"),
        auth: Auth::OwnUnaligned("example.com"),
        extra: &[],
        flag: Flag::Phishing("claims AWS sender domain"),
    },
    Spoof {
        name: "ideographic full stops between the labels",
        from: Some("AWS <no-reply@verify\u{3002}signin\u{3002}aws>"),
        auth: Auth::OwnUnaligned("example.com"),
        extra: &[],
        flag: Flag::Phishing("claims AWS sender domain"),
    },
    Spoof {
        name: "the AWS domain with a trailing dot",
        from: Some("AWS <no-reply@verify.signin.aws.>"),
        auth: Auth::OwnUnaligned("example.com"),
        extra: &[],
        flag: Flag::Phishing("claims AWS sender domain"),
    },
    // Homographs: another domain that reads as AWS's.
    Spoof {
        name: "Cyrillic a in amazon.com",
        from: Some("Amazon Web Services <no-reply@am\u{430}zon.com>"),
        auth: Auth::Own("xn--amzon-5ve.com"),
        extra: &[],
        flag: Flag::Phishing("imitates AWS sender domain amazon.com"),
    },
    Spoof {
        name: "the same homograph in punycode",
        from: Some("Amazon Web Services <no-reply@xn--amzon-5ve.com>"),
        auth: Auth::Own("xn--amzon-5ve.com"),
        extra: &[],
        flag: Flag::Phishing("imitates AWS sender domain amazon.com"),
    },
    Spoof {
        name: "Cyrillic a in the .aws of verify.signin.aws",
        from: Some("Amazon Web Services <no-reply@verify.signin.\u{430}ws>"),
        auth: Auth::OwnUnaligned("example.com"),
        extra: &[],
        flag: Flag::Phishing("imitates AWS sender domain verify.signin.aws"),
    },
    Spoof {
        name: "Greek omicron in amazon.com",
        from: Some("Amazon Web Services <no-reply@amaz\u{3bf}n.com>"),
        auth: Auth::OwnUnaligned("example.com"),
        extra: &[],
        flag: Flag::Phishing("imitates AWS sender domain amazon.com"),
    },
    Spoof {
        name: "digit zero for the o: amaz0n.com",
        from: Some("Amazon Web Services <no-reply@amaz0n.com>"),
        auth: Auth::Own("amaz0n.com"),
        extra: &[],
        flag: Flag::Phishing("imitates AWS sender domain amazon.com"),
    },
    Spoof {
        name: "rn for m: arnazon.com",
        from: Some("Amazon Web Services <no-reply@arnazon.com>"),
        auth: Auth::Own("arnazon.com"),
        extra: &[],
        flag: Flag::Phishing("imitates AWS sender domain amazon.com"),
    },
    // Look-alike domains that claim no AWS domain: a warning, and `unknown`.
    Spoof {
        name: "amazon-aws.com",
        from: Some("Amazon Web Services <no-reply@amazon-aws.com>"),
        auth: Auth::Own("amazon-aws.com"),
        extra: &[],
        flag: Flag::Warned("looks like AWS's"),
    },
    Spoof {
        name: "signin-aws.com",
        from: Some("Amazon Web Services <no-reply@signin-aws.com>"),
        auth: Auth::Own("signin-aws.com"),
        extra: &[],
        flag: Flag::Warned("looks like AWS's"),
    },
    Spoof {
        name: "verify.signin.aws.evil.com",
        from: Some("Amazon Web Services <no-reply@verify.signin.aws.evil.com>"),
        auth: Auth::Own("verify.signin.aws.evil.com"),
        extra: &[],
        flag: Flag::Warned("looks like AWS's"),
    },
    Spoof {
        name: "aws.com.evil.io",
        from: Some("Amazon Web Services <no-reply@aws.com.evil.io>"),
        auth: Auth::Own("aws.com.evil.io"),
        extra: &[],
        flag: Flag::Warned("looks like AWS's"),
    },
    Spoof {
        name: "amazonaws-security.com",
        from: Some("AWS Security <no-reply@amazonaws-security.com>"),
        auth: Auth::Own("amazonaws-security.com"),
        extra: &[],
        flag: Flag::Warned("looks like AWS's"),
    },
    // Other sender headers that disagree with From.
    Spoof {
        name: "Sender: claims AWS, From is the sender's",
        from: Some("Account Team <evil@example.com>"),
        auth: Auth::Own("example.com"),
        extra: &[("Sender", "no-reply@verify.signin.aws")],
        flag: Flag::Phishing("Sender"),
    },
    Spoof {
        name: "a second From mailbox claims AWS",
        from: Some("evil@example.com, Amazon Web Services <no-reply@verify.signin.aws>"),
        auth: Auth::Own("example.com"),
        extra: &[],
        flag: Flag::Phishing("claims AWS sender domain verify.signin.aws"),
    },
    Spoof {
        name: "authenticated AWS mail with a Reply-To outside AWS",
        from: None,
        auth: Auth::Aws,
        extra: &[("Reply-To", EVIL)],
        flag: Flag::Phishing("Reply-To"),
    },
    Spoof {
        name: "authenticated AWS mail with a Sender outside AWS",
        from: None,
        auth: Auth::Aws,
        extra: &[("Sender", EVIL)],
        flag: Flag::Phishing("Sender"),
    },
    Spoof {
        name: "a genuine AWS mail replayed: Return-Path and SPF of the sender",
        from: None,
        auth: Auth::Replayed("example.com"),
        extra: &[("Return-Path", "<bounce@example.com>")],
        flag: Flag::Phishing("Return-Path"),
    },
];

fn spoofed(base: &Base, spoof: &Spoof) -> String {
    let mut message = Message::parse(&base.raw()).with_ses_results(&spoof.auth.headers());
    if let Some(from) = spoof.from {
        message = message.set("From", from);
    }
    for (name, value) in spoof.extra {
        message = message.set(name, value);
    }
    message.text()
}

#[test]
fn display_names_look_alikes_and_confusables_never_feed_a_rotation() {
    let mut failures = Vec::new();
    let mut report = String::new();
    for spoof in SPOOFS {
        for base in &BASES {
            let mail = spoofed(base, spoof);
            keep(&format!("spoof {} {}", base.kind, spoof.name), &mail);
            let t = triage_waiting(&mail, base);
            let secret = base.secret();
            let reason = t.warnings.join(" | ");
            let _ = writeln!(
                report,
                "{:<62} {:<24} -> {} {} [{reason}]",
                spoof.name,
                base.kind.as_str(),
                t.kind,
                t.disposition.as_str()
            );
            let mut fail =
                |what: String| failures.push(format!("{} ({}): {what}", spoof.name, base.kind));
            if t.disposition == Disposition::Handoff {
                fail("handed to the waiting rotation".into());
            }
            if visible(&t).contains(&secret) {
                fail("the secret is visible".into());
            }
            let ticket = t.ticket.as_ref();
            match spoof.flag {
                Flag::Phishing(why) => {
                    if (t.kind, t.disposition) != (Kind::PhishingSuspected, Disposition::Quarantine)
                    {
                        fail(format!(
                            "expected phishing.suspected quarantine, got {} {}",
                            t.kind,
                            t.disposition.as_str()
                        ));
                    } else if !t
                        .warnings
                        .iter()
                        .any(|w| w.starts_with("suspected phishing") && w.contains(why))
                    {
                        fail(format!(
                            "the phishing reason does not mention {why:?}: {reason}"
                        ));
                    }
                    if ticket.is_none_or(|tk| {
                        !tk.subject.contains("Suspected phishing")
                            || tk.body.contains("--- Message ---")
                    }) {
                        fail(format!(
                            "the ticket must flag it and show no content: {ticket:?}"
                        ));
                    }
                }
                Flag::Warned(why) => {
                    if (t.kind, t.disposition) != (Kind::Unknown, Disposition::Ticket) {
                        fail(format!(
                            "expected unknown ticket, got {} {}",
                            t.kind,
                            t.disposition.as_str()
                        ));
                    }
                    let shown = ticket.is_some_and(|tk| {
                        tk.body
                            .lines()
                            .any(|l| l.starts_with("Warning: ") && l.contains(why))
                    });
                    if !shown {
                        fail(format!(
                            "no visible warning with {why:?} in the ticket: {ticket:?}"
                        ));
                    }
                }
            }
        }
    }
    eprintln!("{report}");
    assert!(
        failures.is_empty(),
        "{} spoof outcomes are wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Genuine-looking AWS mail that was delivered elsewhere, replayed, names
/// another account, or lacks SPF for an AWS envelope sender: a rotation waits,
/// and each is a ticket saying why it was not handed over (issue 13, points 1
/// and 2), never a handoff.
#[test]
fn misdirected_or_replayed_mail_never_feeds_a_rotation() {
    let mut failures = Vec::new();
    for base in &BASES {
        let raw = base.raw();
        let target = DIRECTORY
            .by_id(&AccountId::parse(base.account).unwrap())
            .unwrap()
            .root_email;
        let ses_for = format!(" for {target};");
        assert!(
            raw.contains(&ses_for),
            "{}: SES's Received names {target}",
            base.fixture
        );
        let variants: Vec<(&str, String, &str)> = vec![
            (
                "SES delivered it to another address; To still names ours",
                raw.replace(&ses_for, " for someone@root.example-msp.com;"),
                "SES delivered it to someone@root.example-msp.com",
            ),
            (
                "replayed to us: To is the replayer's, our address only in Cc",
                Message::parse(&raw)
                    .set("To", "victim@example.com")
                    .set("Cc", target.as_str())
                    .text(),
                "To header does not name",
            ),
            (
                "a Cc the AWS signature does not cover",
                Message::parse(&raw)
                    .set("Cc", "attacker@example.com")
                    .text(),
                "also addressed to attacker@example.com",
            ),
            (
                "the text names another account",
                raw.replacen(
                    "\r\n\r\n",
                    "\r\n\r\nRegarding AWS account 999988887777:\r\n",
                    1,
                ),
                "also names account 999988887777",
            ),
            (
                "DKIM passes, SPF fails (a genuine mail sent again)",
                Message::parse(&raw)
                    .with_ses_results(
                        &Combination {
                            spf: Spf::Fail,
                            spf_domain: SpfDomain::SesBounce,
                            dkim: Dkim::AlignedPass,
                            dmarc: Dmarc::Pass,
                            verdicts: Some(("PASS", "PASS")),
                        }
                        .ses_headers(),
                    )
                    .text(),
                "SPF is fail",
            ),
            (
                "SPF passes for an envelope sender outside AWS and SES",
                Message::parse(&raw)
                    .with_ses_results(&Auth::Replayed("example.com").headers())
                    .text(),
                "neither AWS's nor SES's",
            ),
        ];
        for (name, mail, why) in variants {
            keep(&format!("misdirected {} {name}", base.kind), &mail);
            let t = triage_waiting(&mail, base);
            let refused = t
                .warnings
                .iter()
                .any(|w| w.contains("is not handed to it") && w.contains(why));
            if t.disposition != Disposition::Ticket || t.handoff.is_some() || !refused {
                failures.push(format!(
                    "{} / {name}: {} {} {:?}",
                    base.kind,
                    t.kind,
                    t.disposition.as_str(),
                    t.warnings
                ));
            }
            if visible(&t).contains(&base.secret()) {
                failures.push(format!("{} / {name}: the secret is visible", base.kind));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The unmodified fixtures are what the spoofs start from: with the rotation
/// waiting, each is handed over (so a spoof's different outcome is the spoof's).
#[test]
fn the_genuine_fixtures_are_handed_to_the_waiting_rotation() {
    for base in &BASES {
        let t = triage_waiting(&base.raw(), base);
        assert_eq!(
            (t.kind, t.disposition),
            (base.kind, Disposition::Handoff),
            "{}: {:?}",
            base.fixture,
            t.warnings
        );
        let regenerated = Message::parse(&base.raw())
            .with_ses_results(&Auth::Aws.headers())
            .text();
        let t = triage_waiting(&regenerated, base);
        assert_eq!((t.kind, t.disposition), (base.kind, Disposition::Handoff));
    }
}

/// A code in a box under a paragraph of instructions, about 190 characters
/// below its words, reaches the member take-over that waits for it: before,
/// no code was found, the text was withheld and the take-over waited in vain.
#[test]
fn a_code_alone_on_its_line_below_its_instructions_is_handed_over() {
    let base = Base {
        fixture: "security.root_email_otp/26-code-far-below-its-words-2026.eml",
        account: "333344445555",
        kind: Kind::RootEmailOtp,
    };
    let t = triage_waiting(&base.raw(), &base);
    assert_eq!(
        (t.kind, t.disposition),
        (base.kind, Disposition::Handoff),
        "{:?}",
        t.warnings
    );
    let handed = t.handoff.as_ref().expect("the code is handed over");
    assert_eq!(handed.secret.expose(), base.secret());
}

/// Support case correspondence is genuine AWS mail with anyone's words in
/// it: whoever opens a case in their own account may copy a root address
/// and write "your account will be suspended" there. Its ticket says so
/// first, and names where to check the case. Before, such a ticket read as
/// AWS's own suspension notice from a verified AWS sender, urgent.
#[test]
fn a_support_case_ticket_says_whose_words_it_carries() {
    let raw =
        std::fs::read_to_string(corpus_dir().join("support.case/02-correspondence-urgent.eml"))
            .expect("fixture is readable");
    let lure = raw.replace(
        "Correspondence: Hello, thank you for raising the severity.",
        "Correspondence: Your account will be suspended today. Confirm your payment details with our billing team.",
    );
    assert_ne!(
        lure, raw,
        "the fixture changed: the lure was not written in"
    );
    let t = rootmail_tests::Triager::default().triage(lure.as_bytes(), "s3://test/case", None);
    // The case's words do not decide the kind nor page anyone (only a case
    // AWS says it opened is read by its words); the ticket says whose words
    // they are before anything else, and what they read like.
    assert_eq!(
        (t.kind, t.disposition, t.priority),
        (Kind::SupportCase, Disposition::Ticket, Some(Priority::High))
    );
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("read like account.suspended")),
        "{:?}",
        t.warnings
    );
    let body = &t.ticket.as_ref().expect("a ticket").body;
    assert!(
        body.starts_with("This mail relays support case 177821827800850: AWS mails what anyone")
            && body.contains("found in the Support Center of account 111122223333"),
        "{body}"
    );
    // Mail that only claims a case in its subject is no case's relay.
    let stranger = lure.replace(
        "From: Amazon Web Services <no-reply-aws@amazon.com>",
        "From: Billing <billing@example.net>",
    );
    let t = rootmail_tests::Triager::default().triage(stranger.as_bytes(), "s3://test/case", None);
    let body = &t.ticket.as_ref().expect("a ticket").body;
    assert!(!body.contains("relays support case"), "{body}");
}

// ------------------------------------------------------------------ the local pipeline

mod local_pipeline {
    use super::{Auth, Combination, Dkim, Dmarc, Message, Spf, SpfDomain};
    use rootmail_domain::{AccountId, Kind, Rules};
    use rootmail_lifecycle::steps::{self, TakeOver};
    use rootmail_lifecycle::{Mode, Phase, Rotations, Stage, Vault, VaultItem};
    use rootmail_local::LocalStore;
    use rootmail_local::lifecycle_store::{LocalLifecycle, VaultKey, root_email_code_mail};
    use rootmail_local::workflow::deliver_simulated_mail;
    use std::path::Path;

    const KEY: &str = "0b7e4d2a9c1f3e5d7b9a1c3e5f7d9b1a3c5e7f9d1b3a5c7e9f1d3b5a7c9e1f3d";
    const NOW: u64 = 1_790_000_000;

    fn account() -> AccountId {
        AccountId::parse("444455556666").unwrap()
    }

    /// Every file under `dir` whose bytes contain `needle`.
    fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).unwrap();
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        found.push(path.strip_prefix(dir).unwrap().display().to_string());
                    }
                }
            }
        }
        found
    }

    /// A rotation waits for the root-email code of account 444455556666; six
    /// forged code mails arrive through the real pipeline: the vault and the
    /// rotation receive nothing, no ticket shows a code. Then AWS's genuine mail
    /// arrives and is handed over (so the forgeries were refused for what they
    /// are, not because nothing could be handed over).
    #[tokio::test]
    async fn forged_code_mails_reach_neither_the_vault_nor_a_ticket() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let rules = Rules::built_in();
        let lifecycle = LocalLifecycle::new(&store, VaultKey::from_hex(KEY).unwrap());
        let request = TakeOver {
            account_id: account(),
            customer: "Umbrella".into(),
            mode: Mode::Rootless,
            root_domain: "root.example-msp.com".into(),
            execution: None,
        };
        steps::register(&lifecycle, &request, NOW).await.unwrap();
        steps::start_email_update(&lifecycle, &account(), "local:token", NOW)
            .await
            .unwrap();
        // The wait starts without AWS's own mail: it arrives last.
        let mail_dir = lifecycle.simulated_mail_dir();
        for entry in std::fs::read_dir(&mail_dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let rotation = Rotations::get(&lifecycle, &account())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rotation.phase, Phase::AwaitingOtp);
        let to = rotation.target_email.clone();
        let code_mail =
            |code: &str| Message::parse(&root_email_code_mail(&to, &account(), code, NOW));

        let ses_only_but_dmarc_pass = Combination {
            spf: Spf::Pass,
            spf_domain: SpfDomain::SesBounce,
            dkim: Dkim::SesOnly,
            dmarc: Dmarc::Pass,
            verdicts: Some(("PASS", "PASS")),
        };
        let forgeries: Vec<(&str, Kind, Message)> = vec![
            (
                "EVIL41",
                Kind::PhishingSuspected,
                code_mail("EVIL41").with_ses_results(&ses_only_but_dmarc_pass.ses_headers()),
            ),
            (
                "EVIL42",
                Kind::PhishingSuspected,
                code_mail("EVIL42")
                    .with_ses_results(&Auth::Own("example.com").headers())
                    .set("From", "\"no-reply@verify.signin.aws\" <evil@example.com>"),
            ),
            (
                "EVIL43",
                Kind::PhishingSuspected,
                code_mail("EVIL43")
                    .with_ses_results(&Auth::OwnUnaligned("example.com").headers())
                    .set(
                        "From",
                        "Amazon Web Services <no-reply@verify.signin.\u{430}ws>",
                    ),
            ),
            (
                "EVIL44",
                Kind::PhishingSuspected,
                code_mail("EVIL44")
                    .with_ses_results(&Auth::OwnUnaligned("example.com").headers())
                    .set(
                        "From",
                        "Amazon Web Services <no-reply@verify.signin.\u{ff41}\u{ff57}\u{ff53}>",
                    ),
            ),
            (
                "EVIL45",
                Kind::Unknown,
                code_mail("EVIL45")
                    .with_ses_results(&Auth::Own("verify.signin.aws.evil.com").headers())
                    .set(
                        "From",
                        "Amazon Web Services <no-reply@verify.signin.aws.evil.com>",
                    ),
            ),
            (
                "EVIL46",
                Kind::PhishingSuspected,
                code_mail("EVIL46")
                    .with_ses_results(&Auth::Aws.headers())
                    .set("Reply-To", "evil@example.com"),
            ),
        ];
        for (i, (_, _, mail)) in forgeries.iter().enumerate() {
            std::fs::write(mail_dir.join(format!("forged-{i}.eml")), mail.text()).unwrap();
        }
        let delivered = deliver_simulated_mail(&lifecycle, &store, &[], &rules, NOW)
            .await
            .unwrap();
        assert_eq!(delivered, forgeries.len());

        let rotation = Rotations::get(&lifecycle, &account())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rotation.phase, Phase::AwaitingOtp, "still waiting");
        assert_eq!(rotation.handed_over, None);
        for stage in [Stage::Pending, Stage::Current] {
            let handed = Vault::get(&lifecycle, &account(), VaultItem::Handover, stage)
                .await
                .unwrap();
            assert!(handed.is_none(), "the vault holds no handed-over code");
        }

        // Mail tickets (the lifecycle keeps its own ticket per account).
        let mail_tickets = || {
            store
                .tickets()
                .unwrap()
                .into_iter()
                .filter(|t| !t.thread_key.as_str().starts_with("lifecycle:"))
                .collect::<Vec<_>>()
        };
        let mut kinds: Vec<Kind> = mail_tickets().iter().map(|t| t.kind).collect();
        let mut expected: Vec<Kind> = forgeries.iter().map(|(_, k, _)| *k).collect();
        kinds.sort();
        expected.sort();
        assert_eq!(kinds, expected, "one ticket per forgery, flagged");
        for (code, _, _) in &forgeries {
            // The original is kept unchanged (archive/); nothing else holds the code.
            let holders: Vec<String> = files_containing(dir.path(), code)
                .into_iter()
                .filter(|p| !p.starts_with("archive/"))
                .collect();
            assert!(holders.is_empty(), "{code} appears in {holders:?}");
            let records = store.every_text().unwrap();
            assert!(!records.is_empty());
            assert!(
                !records.iter().any(|r| r.contains(*code)),
                "{code} is in the state database"
            );
        }

        // AWS's own mail, last: handed over.
        std::fs::write(
            mail_dir.join("genuine.eml"),
            root_email_code_mail(&to, &account(), "GOOD42", NOW),
        )
        .unwrap();
        deliver_simulated_mail(&lifecycle, &store, &[], &rules, NOW)
            .await
            .unwrap();
        let rotation = Rotations::get(&lifecycle, &account())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rotation.phase, Phase::OtpReceived);
        let handed = Vault::get(&lifecycle, &account(), VaultItem::Handover, Stage::Current)
            .await
            .unwrap()
            .expect("the genuine code is in the vault");
        assert_eq!(handed.expose(), "GOOD42");
        assert_eq!(
            mail_tickets().len(),
            forgeries.len(),
            "no ticket for the handoff"
        );
    }
}
