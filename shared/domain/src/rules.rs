//! Classification and secret-finding rules, kept as data (`rules.toml`).
//!
//! The built-in file is compiled in; an operator can pass another file with the
//! same format to test or change rules without a build.

use crate::secret::SecretKind;
use crate::types::{Kind, Priority};
use regex::Regex;
use serde::Deserialize;

const BUILT_IN: &str = include_str!("../rules.toml");

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("rules file is not valid TOML: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("rule {index} ({kind}): unknown kind; expected one of the taxonomy's kinds")]
    UnknownKind { index: usize, kind: String },
    #[error("rule {index} ({kind}): bad regular expression {pattern:?}")]
    Regex {
        index: usize,
        kind: String,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("rule {index} ({kind}): a rule needs at least one condition")]
    NoCondition { index: usize, kind: String },
    #[error(
        "secret rule {index} ({kind}): needs either `hosts` (with an optional `path`) or both `after` and `token`"
    )]
    SecretShape { index: usize, kind: String },
    #[error(
        "secret rule {index} ({kind}): bad host pattern {pattern:?}: write a domain (`signin.aws`, which also covers its subdomains), a domain with one `*` label (`email-verification.*.amazonaws.com`), or `*` for every host"
    )]
    HostPattern {
        index: usize,
        kind: String,
        pattern: String,
    },
    #[error(
        "rule {index} ({kind}): mail of this kind carries a secret for the root user, so the rule must name the exact sender addresses AWS uses (`from = [\"no-reply@signin.aws\"]`), not a domain or none"
    )]
    LooseSecretSender { index: usize, kind: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    secret: Vec<SecretSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    kind: String,
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    subject: Vec<String>,
    #[serde(default)]
    body: Vec<String>,
    #[serde(default)]
    header: Vec<String>,
    priority: Option<Priority>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSpec {
    kind: SecretKind,
    #[serde(default)]
    hosts: Vec<String>,
    path: Option<String>,
    after: Option<String>,
    token: Option<String>,
    #[serde(default = "default_within")]
    within: usize,
    #[serde(default)]
    min_digits: usize,
}

fn default_within() -> usize {
    120
}

/// One compiled classification rule.
#[derive(Debug)]
pub struct Rule {
    pub kind: Kind,
    pub priority: Option<Priority>,
    from: Vec<String>,
    subject: Vec<Regex>,
    body: Vec<Regex>,
    header: Vec<String>,
}

#[derive(Debug)]
pub enum SecretRule {
    /// A link whose parsed host is one of `hosts` and whose path (with its
    /// query) matches `path`.
    Link {
        kind: SecretKind,
        hosts: Vec<HostPattern>,
        path: Option<Regex>,
    },
    After {
        kind: SecretKind,
        context: Regex,
        token: Regex,
        within: usize,
        min_digits: usize,
    },
}

/// A host a secret link rule applies to: a domain and its subdomains, a
/// domain with one label left open (`email-verification.*.amazonaws.com`), or
/// every host. Compared with a link's parsed host, never as a substring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    /// The domain itself or any subdomain (`signin.aws` covers `verify.signin.aws`).
    Domain(String),
    /// Labels, `None` standing for exactly one label of any name.
    Labels(Vec<Option<String>>),
}

impl HostPattern {
    pub fn parse(pattern: &str) -> Option<Self> {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern == "*" {
            return Some(Self::Any);
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let labels: Vec<&str> = pattern.split('.').collect();
        let wildcards = labels.iter().filter(|l| **l == "*").count();
        if labels.len() < 2 || !labels.iter().all(|l| *l == "*" || label_ok(l)) {
            return None;
        }
        match wildcards {
            0 => Some(Self::Domain(pattern)),
            1 if labels.last() != Some(&"*") => Some(Self::Labels(
                labels
                    .iter()
                    .map(|l| (*l != "*").then(|| l.to_string()))
                    .collect(),
            )),
            _ => None,
        }
    }

    /// Whether a parsed, lower-case host is covered.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Domain(domain) => {
                host == domain
                    || host
                        .strip_suffix(domain.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }
            Self::Labels(labels) => {
                let mut parts = host.split('.');
                let all_match = labels.iter().all(|want| {
                    parts
                        .next()
                        .is_some_and(|got| want.as_deref().is_none_or(|w| w == got))
                });
                all_match && parts.next().is_none()
            }
        }
    }
}

/// What a rule sees of a message.
pub struct RuleInput<'a> {
    pub from: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub has_header: &'a dyn Fn(&str) -> bool,
}

#[derive(Debug)]
pub struct Rules {
    rules: Vec<Rule>,
    secrets: Vec<SecretRule>,
}

impl Rules {
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN).expect("the built-in rules.toml is valid (tested)")
    }

    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text)?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for (index, spec) in file.rule.into_iter().enumerate() {
            let index = index + 1;
            let kind = Kind::parse(&spec.kind).ok_or_else(|| RulesError::UnknownKind {
                index,
                kind: spec.kind.clone(),
            })?;
            let compile = |patterns: &[String]| -> Result<Vec<Regex>, RulesError> {
                patterns
                    .iter()
                    .map(|p| {
                        Regex::new(p).map_err(|source| RulesError::Regex {
                            index,
                            kind: spec.kind.clone(),
                            pattern: p.clone(),
                            source,
                        })
                    })
                    .collect()
            };
            let rule = Rule {
                kind,
                priority: spec.priority,
                from: spec.from.iter().map(|f| f.to_ascii_lowercase()).collect(),
                subject: compile(&spec.subject)?,
                body: compile(&spec.body)?,
                header: spec.header.clone(),
            };
            if rule.from.is_empty()
                && rule.subject.is_empty()
                && rule.body.is_empty()
                && rule.header.is_empty()
            {
                return Err(RulesError::NoCondition {
                    index,
                    kind: spec.kind,
                });
            }
            if kind.policy().strict_sender
                && (rule.from.is_empty() || rule.from.iter().any(|f| f.starts_with('@')))
            {
                return Err(RulesError::LooseSecretSender {
                    index,
                    kind: spec.kind,
                });
            }
            rules.push(rule);
        }
        let mut secrets = Vec::with_capacity(file.secret.len());
        for (index, spec) in file.secret.into_iter().enumerate() {
            let index = index + 1;
            let name = spec.kind.as_str().to_string();
            let compile = |p: &str| {
                Regex::new(p).map_err(|source| RulesError::Regex {
                    index,
                    kind: name.clone(),
                    pattern: p.to_string(),
                    source,
                })
            };
            let hosts = spec
                .hosts
                .iter()
                .map(|h| {
                    HostPattern::parse(h).ok_or_else(|| RulesError::HostPattern {
                        index,
                        kind: name.clone(),
                        pattern: h.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let link = !hosts.is_empty();
            secrets.push(match (link, &spec.after, &spec.token) {
                (true, None, None) => SecretRule::Link {
                    kind: spec.kind,
                    hosts,
                    path: spec.path.as_deref().map(compile).transpose()?,
                },
                (false, Some(after), Some(token)) if spec.path.is_none() => SecretRule::After {
                    kind: spec.kind,
                    context: compile(after)?,
                    token: compile(token)?,
                    within: spec.within,
                    min_digits: spec.min_digits,
                },
                _ => return Err(RulesError::SecretShape { index, kind: name }),
            });
        }
        Ok(Self { rules, secrets })
    }

    /// The first rule that matches, if any.
    pub fn classify(&self, input: &RuleInput<'_>) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.matches(input))
    }

    pub fn secret_rules(&self) -> &[SecretRule] {
        &self.secrets
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

impl Rule {
    fn matches(&self, input: &RuleInput<'_>) -> bool {
        let from = input.from.to_ascii_lowercase();
        let from_ok = self.from.is_empty()
            || self.from.iter().any(|f| match f.strip_prefix('@') {
                Some(domain) => from
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| d == domain || d.ends_with(&format!(".{domain}"))),
                None => from == *f,
            });
        from_ok
            && (self.subject.is_empty() || self.subject.iter().any(|r| r.is_match(input.subject)))
            && (self.body.is_empty() || self.body.iter().any(|r| r.is_match(input.body)))
            && self.header.iter().all(|h| (input.has_header)(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_parsed_hosts_never_substrings() {
        let domain = HostPattern::parse("signin.aws.amazon.com").unwrap();
        assert!(domain.matches("signin.aws.amazon.com"));
        assert!(domain.matches("eu-west-1.signin.aws.amazon.com"));
        for other in [
            "login-signin.aws.amazon.com.evil.example",
            "xsignin.aws.amazon.com",
            "signin.aws.amazon.com.evil.example",
            "aws.amazon.com",
        ] {
            assert!(!domain.matches(other), "{other}");
        }
        let one_label = HostPattern::parse("email-verification.*.amazonaws.com").unwrap();
        assert!(one_label.matches("email-verification.us-east-1.amazonaws.com"));
        assert!(!one_label.matches("email-verification.a.b.amazonaws.com"));
        assert!(!one_label.matches("email-verification.us-east-1.amazonaws.com.evil.example"));
        assert!(HostPattern::parse("*").unwrap().matches("anything.example"));
        for bad in ["", "com", "*.*.example", "amazon.*", "a..b", "a b.com"] {
            assert_eq!(HostPattern::parse(bad), None, "{bad:?}");
        }
    }

    fn input<'a>(from: &'a str, subject: &'a str, body: &'a str) -> RuleInput<'a> {
        RuleInput {
            from,
            subject,
            body,
            has_header: &|_| false,
        }
    }

    #[test]
    fn built_in_rules_compile_and_name_real_kinds() {
        let rules = Rules::built_in();
        assert!(rules.rules().len() > 30);
        assert!(!rules.secret_rules().is_empty());
    }

    #[test]
    fn first_match_wins_and_priority_overrides_apply() {
        let rules = Rules::built_in();
        let urgent = rules
            .classify(&input(
                "no-reply-aws@amazon.com",
                "[CASE 11735180201] Outage",
                "Severity: Urgent",
            ))
            .unwrap();
        assert_eq!(
            (urgent.kind, urgent.priority),
            (Kind::SupportCase, Some(Priority::High))
        );
        let plain = rules
            .classify(&input(
                "no-reply-aws@amazon.com",
                "[CASE 11735180201] Q",
                "Severity: Low",
            ))
            .unwrap();
        assert_eq!((plain.kind, plain.priority), (Kind::SupportCase, None));
        assert!(
            rules
                .classify(&input("someone@amazon.com", "lunch?", "hi"))
                .is_none()
        );
    }

    #[test]
    fn marketing_senders_win_over_subject_words_of_other_kinds() {
        let rules = Rules::built_in();
        let webinar = input(
            "aws-marketing-email-replies@amazon.com",
            "Webinar: planning maintenance windows and billing alerts",
            "Join us",
        );
        assert_eq!(rules.classify(&webinar).unwrap().kind, Kind::Marketing);
    }

    #[test]
    fn bad_rules_files_give_errors_that_name_the_rule() {
        let err = Rules::parse("[[rule]]\nkind = \"nope\"\nsubject = ['x']").unwrap_err();
        assert!(err.to_string().contains("rule 1 (nope)"), "{err}");
        let err = Rules::parse("[[rule]]\nkind = \"unknown\"\nsubject = ['(']").unwrap_err();
        assert!(err.to_string().contains("bad regular expression"), "{err}");
        let err = Rules::parse("[[rule]]\nkind = \"unknown\"").unwrap_err();
        assert!(err.to_string().contains("at least one condition"), "{err}");
        let err = Rules::parse("[[secret]]\nkind = \"reset_link\"").unwrap_err();
        assert!(err.to_string().contains("needs either"), "{err}");
        let err =
            Rules::parse("[[secret]]\nkind = \"reset_link\"\nhosts = [\"amazon.*\"]").unwrap_err();
        assert!(err.to_string().contains("bad host pattern"), "{err}");
        let err = Rules::parse(
            "[[rule]]\nkind = \"security.password_reset\"\nfrom = [\"@signin.aws\"]\nsubject = ['reset']",
        )
        .unwrap_err();
        assert!(err.to_string().contains("exact sender addresses"), "{err}");
        assert!(Rules::parse("[[rule]]\nkind = \"unknown\"\nsubjects = ['x']").is_err());
    }
}
