//! Which conversation a message belongs to (design.md, "Threading").

use crate::mail::ParsedMail;
use crate::types::{AccountId, CaseId, ContentHash, Kind, ThreadKey};
use regex::Regex;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Threads already known to a store, by Message-ID. The `triage` command knows none.
pub trait KnownThreads {
    fn thread_of(&self, message_id: &str) -> Option<ThreadKey>;
}

/// For triage without a store.
pub struct NoKnownThreads;

impl KnownThreads for NoKnownThreads {
    fn thread_of(&self, _message_id: &str) -> Option<ThreadKey> {
        None
    }
}

/// Threads looked up before triage (a store that is not synchronous fetches first).
impl KnownThreads for std::collections::HashMap<String, ThreadKey> {
    fn thread_of(&self, message_id: &str) -> Option<ThreadKey> {
        self.get(message_id).cloned()
    }
}

/// A support case's subject as AWS Support writes it: `[CASE 123...]` at the
/// start, after any reply prefixes (`RE:`, `AW:`, `RE[2]:`, `回复：`), or "Amazon Web Services:
/// ... Support case: 123..." whole. Only there: other AWS mail carries text
/// its sender chose (a budget's name, an alarm's, an invitation's note),
/// and a case number written in it would join that case's thread.
static CASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:[^\W\d_]{1,8}(?:\[\d{1,3}\])?\s*[:：]\s*)*\[case\s+(\d{10,16})\]|^\s*amazon web services:[^:]*\bsupport case:\s*(\d{10,16})\s*$",
    )
    .expect("static regex")
});

/// The support case a subject names, in AWS Support's own forms.
pub fn case_id(subject: &str) -> Option<CaseId> {
    CASE.captures(subject)
        .and_then(|c| c.get(1).or_else(|| c.get(2)))
        .and_then(|m| CaseId::parse(m.as_str()).ok())
}

pub struct ThreadFacts<'a> {
    pub kind: Kind,
    pub account: Option<&'a AccountId>,
    pub subject: &'a str,
    pub case: Option<&'a CaseId>,
    /// The mail authenticated as AWS: only such mail joins a support case.
    pub from_aws: bool,
    pub message_id: Option<&'a str>,
    pub references: &'a [String],
    pub in_reply_to: &'a [String],
    pub content_hash: &'a ContentHash,
}

impl<'a> ThreadFacts<'a> {
    /// The facts of `mail` once triage has its kind, account and case.
    pub fn of(
        mail: &'a ParsedMail,
        kind: Kind,
        account: Option<&'a AccountId>,
        case: Option<&'a CaseId>,
        from_aws: bool,
        content_hash: &'a ContentHash,
    ) -> Self {
        Self {
            kind,
            account,
            subject: mail.subject.as_deref().unwrap_or_default(),
            case,
            from_aws,
            message_id: mail.message_id.as_deref(),
            references: &mail.references,
            in_reply_to: &mail.in_reply_to,
            content_hash,
        }
    }
}

/// In order: the support case (authenticated AWS mail only, one thread per
/// account and case); the thread of a message it replies to (known to the
/// store, else the first referenced id so a reply and its original always
/// meet; a case's thread only for AWS mail of that account); the
/// repeating-alert key; its own Message-ID; its content hash.
///
/// Mail that is not authenticated AWS mail threads only among its own kind
/// and account (`msg:unverified:<account>:<Message-ID>`, its own or the
/// first it references): whoever knows a Message-ID of mail to one customer
/// could otherwise write into that customer's ticket from any address. A
/// conversation of people about one account still makes one thread; AWS's
/// mail never joins theirs.
pub fn thread_key(facts: &ThreadFacts<'_>, known: &dyn KnownThreads) -> ThreadKey {
    if let Some(case) = facts.case.filter(|_| facts.from_aws) {
        return ThreadKey::case(facts.account, case);
    }
    let referenced: Vec<&String> = facts
        .references
        .iter()
        .chain(facts.in_reply_to.iter())
        .collect();
    let joinable = |key: &ThreadKey| match facts.from_aws {
        true => !key.is_unverified() && (!key.is_case() || key.is_case_of(facts.account)),
        false => key.is_unverified_of(facts.account),
    };
    if let Some(key) = referenced
        .iter()
        .filter_map(|id| known.thread_of(id))
        .find(joinable)
    {
        return key;
    }
    // The thread named after a message: in its own namespace for mail that
    // is not authenticated AWS mail.
    let named = |id: &str| match facts.from_aws {
        true => ThreadKey::message(id),
        false => ThreadKey::unverified(facts.account, id),
    };
    if let Some(first) = referenced.first() {
        return named(first);
    }
    if facts.kind.policy().repeating_alert {
        return ThreadKey::alert(facts.account, facts.kind, &subject_hash(facts.subject));
    }
    match facts.message_id {
        Some(id) => named(id),
        None => ThreadKey::content(facts.content_hash),
    }
}

static REPLY_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*((re|fw|fwd|aw|sv|wg|tr)\s*(\[\d+\])?\s*:\s*)+").expect("static regex")
});
static ALARM_STATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(ALARM|OK|INSUFFICIENT_DATA):\s*").expect("static regex"));
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\b\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:z|[+-]\d{2}:?\d{2})?)?\b",
        r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b",
        r"|\b(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+",
        r"|\b\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+\d{2,4}\b",
        r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}\b",
        r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{4}\b",
        r"|\b\d{1,2}:\d{2}(?::\d{2})?\s*(?:am|pm)?(?:\s*(?:utc|gmt|[a-z]{3}))?\b",
    ))
    .expect("static regex")
});
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:[$€£¥]\s*\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s*(?:usd|eur|gbp|jpy|%))")
        .expect("static regex")
});
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d[\d,]*(?:\.\d+)?\b").expect("static regex"));

/// The subject with everything that changes between repeats of one alert removed.
pub fn normalize_subject(subject: &str) -> String {
    let s = REPLY_PREFIX.replace(subject, "");
    let s = ALARM_STATE.replace(&s, "");
    let s = DATE.replace_all(&s, " ");
    let s = AMOUNT.replace_all(&s, " ");
    let s = NUMBER.replace_all(&s, " ");
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn subject_hash(subject: &str) -> String {
    hex::encode(&Sha256::digest(normalize_subject(subject).as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_of_an_alert_normalize_to_one_subject() {
        let a = normalize_subject(
            "AWS Budgets: Monthly-Cost has exceeded your alert threshold ($1,234.56) on 2026-03-01",
        );
        let b = normalize_subject(
            "RE: AWS Budgets: Monthly-Cost has exceeded your alert threshold ($2,034.10) on 2026-03-09",
        );
        assert_eq!(a, b);
        assert_eq!(
            normalize_subject("ALARM: \"cpu-high\" in US East (N. Virginia)"),
            normalize_subject("OK: \"cpu-high\" in US East (N. Virginia)")
        );
        assert_ne!(
            normalize_subject("AWS Budgets: Dev"),
            normalize_subject("AWS Budgets: Prod")
        );
        assert_eq!(
            normalize_subject("Free Tier: you have exceeded 85% of the usage limit on Mar 3, 2026"),
            normalize_subject(
                "Free Tier: you have exceeded 100% of the usage limit on Apr 3, 2026"
            )
        );
    }

    #[test]
    fn key_precedence_follows_the_design() {
        let hash = ContentHash::of(b"x");
        let account = AccountId::parse("111122223333").unwrap();
        let case = CaseId::parse("11735180201").unwrap();
        let refs = vec!["orig@x".to_string()];
        let base = ThreadFacts {
            kind: Kind::BudgetAlert,
            account: Some(&account),
            subject: "AWS Budgets: x",
            case: None,
            from_aws: true,
            message_id: Some("own@x"),
            references: &[],
            in_reply_to: &[],
            content_hash: &hash,
        };
        let known = NoKnownThreads;
        assert!(
            thread_key(&base, &known)
                .as_str()
                .starts_with("alert:111122223333:billing.budget_alert:")
        );
        assert_eq!(
            thread_key(
                &ThreadFacts {
                    case: Some(&case),
                    ..base
                },
                &known
            )
            .as_str(),
            "case:111122223333:11735180201"
        );
        let reply = ThreadFacts {
            references: &refs,
            ..base
        };
        assert_eq!(thread_key(&reply, &known).as_str(), "msg:orig@x");
        let own = ThreadFacts {
            kind: Kind::Unknown,
            ..base
        };
        assert_eq!(thread_key(&own, &known).as_str(), "msg:own@x");
        let anonymous = ThreadFacts {
            kind: Kind::Unknown,
            message_id: None,
            ..base
        };
        assert!(
            thread_key(&anonymous, &known)
                .as_str()
                .starts_with("msg:sha256:")
        );

        struct Store;
        impl KnownThreads for Store {
            fn thread_of(&self, id: &str) -> Option<ThreadKey> {
                let account = AccountId::parse("111122223333").unwrap();
                (id == "orig@x").then(|| {
                    ThreadKey::case(Some(&account), &CaseId::parse("11735180201").unwrap())
                })
            }
        }
        assert_eq!(
            thread_key(&reply, &Store).as_str(),
            "case:111122223333:11735180201"
        );
    }

    /// Knowing the Message-ID of mail to a customer, anyone could reply to
    /// it and land in that customer's ticket. Unauthenticated mail threads
    /// only among its own kind and account, and AWS's mail never joins it.
    #[test]
    fn unauthenticated_mail_never_joins_anothers_thread() {
        let hash = ContentHash::of(b"x");
        let account = AccountId::parse("111122223333").unwrap();
        let other = AccountId::parse("222233334444").unwrap();
        let refs = vec!["aws-notice@amazonses.com".to_string()];
        struct Store;
        impl KnownThreads for Store {
            fn thread_of(&self, id: &str) -> Option<ThreadKey> {
                let account = AccountId::parse("111122223333").unwrap();
                match id {
                    "aws-notice@amazonses.com" => Some(ThreadKey::message(id)),
                    "colleague@x" => Some(ThreadKey::unverified(Some(&account), id)),
                    _ => None,
                }
            }
        }
        let forged = ThreadFacts {
            kind: Kind::Unknown,
            account: Some(&account),
            subject: "Re: your bill",
            case: None,
            from_aws: false,
            message_id: Some("own@evil.example"),
            references: &refs,
            in_reply_to: &[],
            content_hash: &hash,
        };
        assert_eq!(
            thread_key(&forged, &Store).as_str(),
            "msg:unverified:111122223333:aws-notice@amazonses.com"
        );
        let genuine = ThreadFacts {
            from_aws: true,
            ..forged
        };
        assert_eq!(
            thread_key(&genuine, &Store).as_str(),
            "msg:aws-notice@amazonses.com"
        );
        // People's conversation about one account is one thread; the same
        // reply to another account's root address is not in it.
        let to_colleague = vec!["colleague@x".to_string()];
        let reply = ThreadFacts {
            references: &to_colleague,
            ..forged
        };
        assert_eq!(
            thread_key(&reply, &Store).as_str(),
            "msg:unverified:111122223333:colleague@x"
        );
        let elsewhere = ThreadFacts {
            account: Some(&other),
            ..reply
        };
        assert_eq!(
            thread_key(&elsewhere, &Store).as_str(),
            "msg:unverified:222233334444:colleague@x"
        );
        // Nor does AWS's mail join a thread a stranger's mail named first.
        let aws_reply = ThreadFacts {
            from_aws: true,
            ..reply
        };
        assert_eq!(thread_key(&aws_reply, &Store).as_str(), "msg:colleague@x");
    }

    #[test]
    fn a_case_is_read_from_aws_support_s_subject_forms_only() {
        let case = |subject: &str| case_id(subject).map(|c| c.as_str().to_string());
        for (subject, id) in [
            ("[CASE 1718205593] Production system down", "1718205593"),
            (
                "RE:[CASE 5301924866] Your AWS account is compromised",
                "5301924866",
            ),
            (
                "RE: [Case 177821827800850] New correspondence added",
                "177821827800850",
            ),
            ("AW: Re: [Case 172994580100613] S3", "172994580100613"),
            ("RE[2]: [CASE 5301924866] compromised", "5301924866"),
            ("回复：[CASE 5301924866] 账户", "5301924866"),
            (
                "Amazon Web Services: New Support case: 4838201957",
                "4838201957",
            ),
            (
                "Amazon Web Services: You have opened a new Support case: 177666106600814",
                "177666106600814",
            ),
        ] {
            assert_eq!(case(subject).as_deref(), Some(id), "{subject}");
        }
        // A case number in text another sender chose: a budget's name, an
        // alarm's, a subject that only mentions one.
        for subject in [
            "AWS Budgets: Case 177821827800850 for account 111122223333 has exceeded your alert threshold",
            "ALARM: \"[CASE 177821827800850]\" in US East (N. Virginia)",
            "Your AWS Support case 177821827800850 is waiting for your reply",
            "Amazon Web Services: Support case: 177821827800850 and more",
            "ALARM: \"x：[CASE 177821827800850]\" in US East",
            "ALARM: \"RE:[CASE 177821827800850]\" in US East",
        ] {
            assert_eq!(case(subject), None, "{subject}");
        }
    }

    #[test]
    fn a_case_thread_takes_only_aws_mail_of_its_account() {
        let hash = ContentHash::of(b"x");
        let account = AccountId::parse("111122223333").unwrap();
        let other = AccountId::parse("222233334444").unwrap();
        let case = CaseId::parse("11735180201").unwrap();
        let refs = vec!["orig@x".to_string()];
        let facts = ThreadFacts {
            kind: Kind::Unknown,
            account: Some(&account),
            subject: "[CASE 11735180201] hello",
            case: Some(&case),
            from_aws: false,
            message_id: Some("own@x"),
            references: &refs,
            in_reply_to: &[],
            content_hash: &hash,
        };
        // Unauthenticated: neither the subject's case id nor a reply to a case
        // message puts it on the case's ticket.
        struct Store;
        impl KnownThreads for Store {
            fn thread_of(&self, _: &str) -> Option<ThreadKey> {
                let account = AccountId::parse("111122223333").unwrap();
                Some(ThreadKey::case(
                    Some(&account),
                    &CaseId::parse("11735180201").unwrap(),
                ))
            }
        }
        assert_eq!(
            thread_key(&facts, &Store).as_str(),
            "msg:unverified:111122223333:orig@x"
        );
        // AWS mail for another account: the same case id is another thread.
        let elsewhere = ThreadFacts {
            account: Some(&other),
            from_aws: true,
            references: &[],
            ..facts
        };
        assert_eq!(
            thread_key(&elsewhere, &Store).as_str(),
            "case:222233334444:11735180201"
        );
        let reply_elsewhere = ThreadFacts {
            case: None,
            references: &refs,
            ..elsewhere
        };
        assert_eq!(thread_key(&reply_elsewhere, &Store).as_str(), "msg:orig@x");
    }
}
