//! Classification and secret-finding rules, kept as data (`rules.toml`).
//!
//! The built-in file is compiled in; an operator can pass another file with the
//! same format to test or change rules without a build. How rules score a
//! message is in [`crate::evidence`].

use crate::evidence::{Classification, Evidence, Rule, RuleInput, ascii_word_boundaries};
use crate::pattern_set::PatternSet;
use crate::secret_value::SecretKind;
use crate::types::{Kind, Priority};
use regex::Regex;
use regex_syntax::hir::Hir;
use serde::Deserialize;
use std::collections::HashMap;

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
        "secret rule {index} ({kind}): needs either `hosts` (with an optional `path`) or both `after` and `token` (`from` and `skip_words` only with these)"
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
    #[error("rule {index} ({kind}): weight must be -100 to 100 and not 0, not {weight}")]
    Weight {
        index: usize,
        kind: String,
        weight: i32,
    },
    #[error("rule {index} ({kind}): {kind} is decided by triage itself, not by rules")]
    ReservedKind { index: usize, kind: String },
    #[error("the rules' patterns do not fit in one matcher: {0}")]
    PatternSet(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    /// The score a kind needs (see `rules.toml`'s header).
    #[serde(default = "default_threshold")]
    threshold: i32,
    /// A runner-up this close to the winner is reported.
    #[serde(default = "default_near_tie")]
    near_tie: i32,
    #[serde(default)]
    unclassified: UnclassifiedSpec,
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    secret: Vec<SecretSpec>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnclassifiedSpec {
    #[serde(default)]
    raise: Vec<String>,
}

fn default_threshold() -> i32 {
    5
}

fn default_near_tie() -> i32 {
    2
}

/// A rule's weight when the file gives none: enough to decide alone.
const DEFAULT_WEIGHT: i32 = 5;

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
    weight: Option<i32>,
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
    before: usize,
    #[serde(default)]
    min_digits: usize,
    #[serde(default)]
    alone_on_line: bool,
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    skip_words: bool,
}

fn default_within() -> usize {
    120
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
        /// A token that ends this many characters or fewer before the
        /// context ("615274 is your code") is redacted too, never handed
        /// over (see `FoundSecrets::nearby`). 0: none is looked for.
        before: usize,
        min_digits: usize,
        /// Only a token alone on its line counts (with quote marks, spaces
        /// and a full stop around it): the line as [`alone_on_line`] writes
        /// it, searched first, the token then read in it.
        line: Option<Regex>,
        /// The senders whose mail alone the rule reads (none: all mail),
        /// as a classification rule's `from` names them, and only for a
        /// kind of secret the rules for all mail found none of.
        from: Vec<String>,
        /// A token of letters written as a word ("verify", "Thanks") is
        /// not taken.
        skip_words: bool,
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

impl SecretRule {
    pub fn kind(&self) -> SecretKind {
        match self {
            Self::Link { kind, .. } | Self::After { kind, .. } => *kind,
        }
    }

    /// The senders whose mail alone the rule reads (none: all mail).
    pub fn senders(&self) -> &[String] {
        match self {
            Self::Link { .. } => &[],
            Self::After { from, .. } => from,
        }
    }
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

#[derive(Debug)]
pub struct Rules {
    evidence: Evidence,
    secrets: Vec<SecretRule>,
}

impl Rules {
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN).expect("the built-in rules.toml is valid (tested)")
    }

    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text)?;
        let secrets = compile_secrets(file.secret)?;
        let evidence =
            compile_evidence(file.rule, file.threshold, file.near_tie, &file.unclassified)?;
        Ok(Self { evidence, secrets })
    }

    /// Every kind's score for this message, best first.
    pub fn classify(&self, input: &RuleInput<'_>) -> Classification {
        self.evidence.classify(input)
    }

    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    pub fn secret_rules(&self) -> &[SecretRule] {
        &self.secrets
    }

    pub fn rules(&self) -> &[Rule] {
        self.evidence.rules()
    }
}

/// Patterns of one source, each text once, in the order first seen, parsed.
#[derive(Default)]
struct PatternTable {
    texts: Vec<String>,
    parsed: Vec<Hir>,
    index: HashMap<String, usize>,
}

impl PatternTable {
    /// Its index in the table; a pattern seen before is not parsed again.
    fn add(&mut self, pattern: &str) -> Result<usize, regex::Error> {
        if let Some(i) = self.index.get(pattern) {
            return Ok(*i);
        }
        self.parsed.push(parse(pattern)?);
        self.texts.push(pattern.to_string());
        self.index.insert(pattern.to_string(), self.texts.len() - 1);
        Ok(self.texts.len() - 1)
    }

    /// One matcher for all of them.
    fn set(&self) -> Result<PatternSet, RulesError> {
        PatternSet::new(&self.parsed).map_err(RulesError::PatternSet)
    }
}

fn compile_evidence(
    specs: Vec<RuleSpec>,
    threshold: i32,
    near_tie: i32,
    unclassified: &UnclassifiedSpec,
) -> Result<Evidence, RulesError> {
    let (mut subjects, mut bodies) = (PatternTable::default(), PatternTable::default());
    let mut rules = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        rules.push(compile_rule(i + 1, spec, &mut subjects, &mut bodies)?);
    }
    let mut raise = PatternTable::default();
    for (i, pattern) in unclassified.raise.iter().enumerate() {
        raise.add(pattern).map_err(|source| RulesError::Regex {
            index: i + 1,
            kind: "unclassified.raise".into(),
            pattern: pattern.clone(),
            source,
        })?;
    }
    Ok(Evidence {
        rules,
        subject_set: subjects.set()?,
        body_set: bodies.set()?,
        subject_patterns: subjects.texts,
        body_patterns: bodies.texts,
        raise_set: raise.set()?,
        threshold,
        near_tie,
    })
}

fn compile_rule(
    index: usize,
    spec: RuleSpec,
    subjects: &mut PatternTable,
    bodies: &mut PatternTable,
) -> Result<Rule, RulesError> {
    let name = spec.kind.clone();
    let kind = rule_kind(index, &name)?;
    let subject = add_patterns(index, &name, subjects, &spec.subject)?;
    let body = add_patterns(index, &name, bodies, &spec.body)?;
    let weight = spec.weight.unwrap_or(DEFAULT_WEIGHT);
    if weight == 0 || !(-100..=100).contains(&weight) {
        return Err(RulesError::Weight {
            index,
            kind: name,
            weight,
        });
    }
    let from: Vec<String> = spec.from.iter().map(|f| f.to_ascii_lowercase()).collect();
    if from.is_empty() && subject.is_empty() && body.is_empty() && spec.header.is_empty() {
        return Err(RulesError::NoCondition { index, kind: name });
    }
    if kind.policy().strict_sender && (from.is_empty() || from.iter().any(|f| f.starts_with('@'))) {
        return Err(RulesError::LooseSecretSender { index, kind: name });
    }
    Ok(Rule {
        number: index,
        kind,
        priority: spec.priority,
        weight,
        from,
        subject,
        body,
        header: spec.header,
    })
}

/// The kind a rule names. Kinds that triage itself decides (a stranger's
/// mail, phishing, a rejected or unparseable mail, AWS mail no rule knows)
/// may not be claimed by a rule.
fn rule_kind(index: usize, name: &str) -> Result<Kind, RulesError> {
    let kind = Kind::parse(name).ok_or_else(|| RulesError::UnknownKind {
        index,
        kind: name.to_string(),
    })?;
    if matches!(
        kind,
        Kind::AwsUnclassified
            | Kind::Unknown
            | Kind::PhishingSuspected
            | Kind::MailRejected
            | Kind::MailUnparseable
    ) {
        return Err(RulesError::ReservedKind {
            index,
            kind: name.to_string(),
        });
    }
    Ok(kind)
}

/// Each pattern parsed on its own (so an error names the rule and the
/// pattern) into the shared table; their indexes in it.
fn add_patterns(
    index: usize,
    name: &str,
    table: &mut PatternTable,
    patterns: &[String],
) -> Result<Vec<usize>, RulesError> {
    patterns
        .iter()
        .map(|p| {
            table.add(p).map_err(|source| RulesError::Regex {
                index,
                kind: name.to_string(),
                pattern: p.clone(),
                source,
            })
        })
        .collect()
}

/// `pattern` parsed as its set runs it (`ascii_word_boundaries`), once:
/// each set compiles the parsed patterns, and parsing or compiling each one
/// again had doubled every cold start's rule loading. An error points into
/// the pattern as written. A pattern too large to compile is refused when its
/// set is built.
fn parse(pattern: &str) -> Result<Hir, regex::Error> {
    let syntax_error = |e: regex_syntax::Error| regex::Error::Syntax(e.to_string());
    regex_syntax::Parser::new()
        .parse(&ascii_word_boundaries(pattern))
        .map_err(
            |converted| match regex_syntax::Parser::new().parse(pattern) {
                Err(as_written) => syntax_error(as_written),
                Ok(_) => syntax_error(converted),
            },
        )
}

/// Spaces of any kind but a line break.
const LINE_SPACE: &str = r"[ \t\x0b\x0c\x{a0}\x{1680}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}\r]";

/// What may stand before a code on its own line: a list's mark, opening
/// quotes, brackets and stars (`**615274**`, `「615274」`, `| 615274 |`).
const LINE_OPENING: &str = r#"[-*•#|'"‘’“”«»(\[<「『【（]"#;

/// What may close it: the closing marks, then a sentence's punctuation.
const LINE_CLOSING: &str = r#"[*|'"‘’“”«»)\]>」』】）]"#;
const LINE_PUNCTUATION: &str = r"[.,;:!?。！？…]";

/// `token` alone on its line: after the line break and any quote marks
/// (`> `) and spaces, with up to two opening and closing marks around it and
/// up to two punctuation marks after, then the next line break or the end
/// of the searched text. The break before it comes first, a literal the
/// search skips ahead to. A line that ends where the searched text does is
/// taken only when that is the end of the whole text (`matches_from`): a
/// window cut in the middle of a line is no line's end.
fn alone_on_line(token: &str) -> String {
    let (space, open, close) = (LINE_SPACE, LINE_OPENING, LINE_CLOSING);
    format!(
        r"\n(?:{space}|>)*(?:{open}{space}*){{0,2}}(?:{token})(?:{space}*{close}){{0,2}}{LINE_PUNCTUATION}{{0,2}}{space}*(?:\n|\z)"
    )
}

fn compile_secrets(specs: Vec<SecretSpec>) -> Result<Vec<SecretRule>, RulesError> {
    let mut secrets = Vec::with_capacity(specs.len());
    for (index, spec) in specs.into_iter().enumerate() {
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
            (true, None, None) if spec.from.is_empty() && !spec.skip_words => SecretRule::Link {
                kind: spec.kind,
                hosts,
                path: spec.path.as_deref().map(compile).transpose()?,
            },
            (false, Some(after), Some(token)) if spec.path.is_none() => {
                // A token is ASCII: its boundaries are ASCII ones, so a code
                // written against Japanese or Chinese text ("コードは615274です")
                // is one (no Unicode word boundary lies between は and 6).
                let token = crate::evidence::ascii_word_boundaries(token);
                SecretRule::After {
                    kind: spec.kind,
                    context: compile(after)?,
                    line: match spec.alone_on_line {
                        true => Some(compile(&alone_on_line(&token))?),
                        false => None,
                    },
                    token: compile(&token)?,
                    within: spec.within,
                    before: spec.before,
                    min_digits: spec.min_digits,
                    from: spec.from.iter().map(|f| f.to_ascii_lowercase()).collect(),
                    skip_words: spec.skip_words,
                }
            }
            _ => return Err(RulesError::SecretShape { index, kind: name }),
        });
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's own sender and subject decide an invitation, a budget alert and
    /// a cost anomaly alert (rules.toml): those rules alone, without any body
    /// rule, outweigh every rule of any other kind that could hold for mail
    /// from that sender, together, whatever words the sender chose for the rest.
    #[test]
    fn aws_s_own_sender_and_subject_outweigh_any_other_kind() {
        let rules = Rules::built_in();
        let all = rules.evidence().rules();
        let could_hold = |r: &&Rule, sender: &str| {
            r.weight > 0
                && (r.from.is_empty()
                    || r.from
                        .iter()
                        .any(|f| crate::evidence::sender_matches(f, sender)))
        };
        for (kind, sender) in [
            (Kind::OrganizationsInvitation, "no-reply-aws@amazon.com"),
            (Kind::BudgetAlert, "budgets@costalerts.amazonaws.com"),
            (
                Kind::CostAnomaly,
                "anomalydetection@costalerts.amazonaws.com",
            ),
        ] {
            let own = all.iter().filter(|r| r.kind == kind);
            let without_body: i32 = own
                .clone()
                .filter(|r| could_hold(r, sender))
                .filter(|r| r.body.is_empty() && r.header.is_empty())
                .map(|r| r.weight)
                .sum::<i32>()
                // Less every rule against the kind that could hold too.
                + own.filter(|r| r.weight < 0).map(|r| r.weight).sum::<i32>();
            let strongest_other = Kind::ALL
                .iter()
                .filter(|k| **k != kind)
                .map(|k| {
                    all.iter()
                        .filter(|r| r.kind == *k && could_hold(r, sender))
                        .map(|r| r.weight)
                        .sum::<i32>()
                })
                .max()
                .unwrap_or(0);
            assert!(
                without_body > strongest_other,
                "{kind}: {without_body} against {strongest_other}"
            );
        }
    }

    use std::path::Path;

    /// AWS's unclassified mail is raised for an account's closure, in each
    /// language and form (an id with dashes, the verb first), and for an SES
    /// probation or sending pause; not for a footer's "turn off in account
    /// settings", "abgeschlossen", a webinar's registration or an instance's
    /// pause. (An account word near "closed" in other sentences raises them:
    /// the price of not missing a closure.)
    #[test]
    fn the_raise_list_reads_a_closure_not_words_near_an_account() {
        let rules = Rules::built_in();
        let raised = |text: &str| rules.evidence().raises_priority("", text);
        for closure in [
            "This email confirms that you closed your AWS account 111122223333.",
            "Amazon Web Services アカウントの閉鎖",
            "AWS 账户 444455556666 已关闭",
            "Sie haben Ihr AWS-Konto 444455556666 geschlossen.",
            "Clôture du compte Amazon Web Services",
            "Su cuenta AWS 444455556666 ha sido cerrada.",
            "A conta da AWS 444455556666 foi encerrada.",
            "L'account AWS 444455556666 è stato chiuso.",
            "Akun AWS 444455556666 Anda telah ditutup.",
            "您已关闭 AWS 账户 444455556666。",
            "閉鎖された AWS アカウント",
            "계정이 영구적으로 해지되었습니다",
            "Sua conta da AWS foi fechada.",
            "Votre compte AWS a été clôturé.",
            "Ihr Amazon Web Services-Konto wurde geschlossen.",
            "Your AWS account 4444-5555-6666 has been closed.",
            "AWS 계정 111122223333이(가) 해지되었습니다.",
            "Ihr AWS-Konto 111122223333 wurde geschlossen.",
            "Su cuenta de AWS 111122223333 ha sido cerrada.",
            "您的 AWS 账户已关闭。",
            "The Amazon SES sending for AWS account 111122223333 has been paused in US East.",
            "Your sending has been put on probation.",
        ] {
            assert!(raised(closure), "{closure}");
        }
        for benign in [
            "Die Registrierung für Ihr Konto ist abgeschlossen.",
            "您可以在账户设置中关闭电子邮件通知。",
            "La registrazione al webinar per il tuo account è chiusa.",
            "Read our account closure policy before you build.",
            "Your Lightsail instance has been paused for maintenance.",
        ] {
            assert!(!raised(benign), "{benign}");
        }
    }

    /// A localized subject with the suspension's word is urgent, in every
    /// language and form AWS may write it (an id with dashes, the verb
    /// first): a missed suspension costs more than a page. Korean's word
    /// for a pause (일시 중지) counts only with the account's.
    #[test]
    fn a_localized_suspension_subject_is_urgent_and_a_korean_pause_only_with_the_account() {
        let rules = Rules::built_in();
        let kind = |subject: &str| {
            let scored = rules.classify(&input("no-reply-aws@amazon.com", subject, "Hello."));
            scored.winner().map(|w| w.kind)
        };
        for suspended in [
            "AWS 계정이 일시 중지되었습니다",
            "[중요] AWS 계정 일시 중지 안내",
            "일시 중지된 AWS 계정",
            "お客様の AWS アカウントは一時停止されました",
            "AWS アカウント 4444-5555-6666 の停止について",
            "AWS アカウントを一時停止しました",
            "您的 AWS 账号已被暂停",
            "关于已暂停的 AWS 账户",
            "您的 AWS 帳號已暫停",
            "Su cuenta de AWS está a punto de ser suspendida",
            "Suspensión de su cuenta",
            "Ihr Amazon Web Services-Konto wurde gesperrt",
            "Kontosperrung",
            "Suspension de votre compte AWS",
            "Sospensione dell'account",
            "Akun AWS Anda ditangguhkan",
            "계정이 중지되었습니다",
            "Hemos suspendido su cuenta de AWS",
            "Kontosperre für Ihr AWS-Konto",
            "Nous allons suspendre votre compte AWS",
            "Suspension of your AWS account",
        ] {
            assert_eq!(kind(suspended), Some(Kind::AccountSuspended), "{suspended}");
        }
        for paused in [
            "AWS 계정의 EC2 인스턴스 사용 중지 예정",
            "Ihr AWS-Konto wurde entsperrt",
            "Amazon SES 이메일 전송 일시 중지 알림",
            "[조치 필요] Amazon Redshift 클러스터 일시 중지 예정",
        ] {
            assert_ne!(kind(paused), Some(Kind::AccountSuspended), "{paused}");
        }
    }

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

    fn rules_with_body(pattern: &str) -> Result<Rules, RulesError> {
        Rules::parse(&format!(
            "threshold = 5\nnear_tie = 2\n[unclassified]\nraise = []\n\
             [[rule]]\nkind = \"billing.budget_alert\"\nbody = [{pattern:?}]\n"
        ))
    }

    #[test]
    fn a_pattern_that_does_not_parse_is_named_with_its_rule() {
        let good = rules_with_body(r"(?i)invoice (is )?available");
        assert!(good.is_ok(), "{good:?}");
        let bad = rules_with_body(r"(?i)invoice (is available");
        assert!(
            matches!(&bad, Err(RulesError::Regex { index: 1, kind, .. }) if kind == "billing.budget_alert"),
            "{bad:?}"
        );
        let bad_raise = Rules::parse(
            "threshold = 5\nnear_tie = 2\n[unclassified]\nraise = ['fine', 'broken[']\n",
        );
        assert!(
            matches!(&bad_raise, Err(RulesError::Regex { index: 2, kind, .. }) if kind == "unclassified.raise"),
            "{bad_raise:?}"
        );
    }

    fn input<'a>(from: &'a str, subject: &'a str, body: &'a str) -> RuleInput<'a> {
        RuleInput {
            from,
            subject,
            body,
            has_header: &|_| false,
        }
    }

    /// The sets (windowed patterns gated by a cut of themselves) say exactly
    /// what each built-in pattern says alone, on every corpus mail's text.
    #[test]
    fn built_in_sets_match_as_each_pattern_does_alone() {
        let evidence = Rules::built_in().evidence;
        let alone = |patterns: &[String]| -> Vec<Regex> {
            patterns
                .iter()
                .map(|p| Regex::new(&ascii_word_boundaries(p)).unwrap())
                .collect()
        };
        let (subjects, bodies) = (
            alone(&evidence.subject_patterns),
            alone(&evidence.body_patterns),
        );
        let mut checked = 0;
        // Where cargo runs this test, not where it was compiled (a shared
        // target directory may hold another checkout's build).
        let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
            || env!("CARGO_MANIFEST_DIR").into(),
            std::path::PathBuf::from,
        );
        for raw in corpus_mail(&crate_dir.join("../../tests/corpus")) {
            let Ok(mail) = crate::mail::parse(&raw) else {
                continue;
            };
            let subject = mail.subject.clone().unwrap_or_default();
            let body = format!("{}\n{}", mail.text, mail.alternative_text);
            for (set, regexes, text) in [
                (&evidence.subject_set, &subjects, &subject),
                (&evidence.body_set, &bodies, &body),
            ] {
                let hits = set.matches(text);
                for (i, regex) in regexes.iter().enumerate() {
                    assert_eq!(hits.matched(i), regex.is_match(text), "{}", regex.as_str());
                }
            }
            checked += 1;
        }
        assert!(checked > 200, "{checked} corpus mails");
        // Every windowed built-in pattern has a gate: none costs a pass of its own.
        let (gated, always) = evidence.body_set.searched_alone();
        assert!(gated >= 7 && always == 0, "{gated} gated, {always} always");
        assert_eq!(evidence.subject_set.searched_alone().1, 0);
    }

    fn corpus_mail(dir: &Path) -> Vec<Vec<u8>> {
        let mut mail = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                mail.extend(corpus_mail(&path));
            } else if path.extension().is_some_and(|e| e == "eml") {
                mail.push(std::fs::read(&path).unwrap());
            }
        }
        mail
    }

    #[test]
    fn built_in_rules_compile_and_name_real_kinds() {
        let rules = Rules::built_in();
        assert!(rules.rules().len() > 30);
        let err =
            Rules::parse("[[rule]]\nkind = \"aws.unclassified\"\nsubject = ['x']").unwrap_err();
        assert!(
            err.to_string().contains("decided by triage itself"),
            "{err}"
        );
        let err = Rules::parse("[[rule]]\nkind = \"marketing\"\nsubject = ['x']\nweight = 0")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("weight must be -100 to 100 and not 0"),
            "{err}"
        );
        assert!(!rules.secret_rules().is_empty());
    }

    /// Every string in `value`, at any depth.
    fn strings(value: &toml::Value, out: &mut Vec<String>) {
        match value {
            toml::Value::String(text) => out.push(text.clone()),
            toml::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            toml::Value::Table(table) => table.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }

    /// A Unicode property class (`\p{Greek}`, `\PL`) anywhere in `pattern`.
    fn has_unicode_property(pattern: &str) -> bool {
        use regex_syntax::ast::{Ast, ClassSetItem, Visitor, parse::Parser, visit};
        struct Finder(bool);
        impl Visitor for Finder {
            type Output = bool;
            type Err = ();
            fn finish(self) -> Result<bool, ()> {
                Ok(self.0)
            }
            fn visit_pre(&mut self, ast: &Ast) -> Result<(), ()> {
                self.0 |= matches!(ast, Ast::ClassUnicode(_));
                Ok(())
            }
            fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), ()> {
                self.0 |= matches!(item, ClassSetItem::Unicode(_));
                Ok(())
            }
        }
        Parser::new()
            .parse(pattern)
            .is_ok_and(|ast| visit(&ast, Finder(false)) == Ok(true))
    }

    /// The Lambdas link regex without Unicode property tables (Cargo.toml):
    /// a built-in pattern that used one would fail there at cold start while
    /// every workspace build, which has them, passes.
    #[test]
    fn no_built_in_pattern_needs_a_unicode_property_table() {
        assert!(has_unicode_property(r"(?i)\p{Greek}+ x"));
        assert!(has_unicode_property(r"[\PLx]"));
        assert!(!has_unicode_property(r"(?i)\w+ \d{12} [a-zäöü] \\p"));
        let mut patterns = Vec::new();
        strings(&toml::from_str(BUILT_IN).unwrap(), &mut patterns);
        assert!(patterns.len() > 100, "{} strings", patterns.len());
        let using: Vec<_> = patterns
            .iter()
            .filter(|p| has_unicode_property(p))
            .collect();
        assert!(using.is_empty(), "{using:?}");
    }

    /// The kind and the priority override a mail scores.
    fn decided(rules: &Rules, input: &RuleInput<'_>) -> Option<(Kind, Option<Priority>)> {
        rules.classify(input).winner().map(|w| (w.kind, w.priority))
    }

    #[test]
    fn the_best_score_wins_and_priority_overrides_apply() {
        let rules = Rules::built_in();
        let urgent = decided(
            &rules,
            &input(
                "no-reply-aws@amazon.com",
                "[CASE 11735180201] Outage",
                "Severity: Urgent",
            ),
        );
        assert_eq!(urgent, Some((Kind::SupportCase, Some(Priority::High))));
        let plain = decided(
            &rules,
            &input(
                "no-reply-aws@amazon.com",
                "[CASE 11735180201] Q",
                "Severity: Low",
            ),
        );
        assert_eq!(plain, Some((Kind::SupportCase, None)));
        assert_eq!(
            decided(&rules, &input("someone@amazon.com", "lunch?", "hi")),
            None
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
        assert_eq!(
            decided(&rules, &webinar).map(|d| d.0),
            Some(Kind::Marketing)
        );
    }

    #[test]
    fn scores_add_up_per_rule_once_and_a_close_runner_up_is_reported() {
        let rules = Rules::parse(
            "threshold = 4\nnear_tie = 1\n\
             [[rule]]\nkind = \"billing.payment_issue\"\nbody = ['(?i)payment failed']\nweight = 3\n\
             [[rule]]\nkind = \"billing.payment_issue\"\nbody = ['(?i)past due']\nweight = 2\n\
             [[rule]]\nkind = \"account.suspended\"\nbody = ['(?i)suspend']\nweight = 4\n",
        )
        .unwrap();
        let spam = "payment failed ".repeat(1000);
        let once = rules.classify(&input("x@aws.com", "", &spam));
        assert_eq!(once.kind, None, "one rule counts once: 3 < 4");
        let both = rules.classify(&input("x@aws.com", "", "payment failed, past due, suspend"));
        assert_eq!(both.kind, Some(Kind::PaymentIssue));
        assert_eq!(both.scores[0].score, 5);
        assert_eq!(both.near_tie, Some((Kind::AccountSuspended, 4)));
    }

    #[test]
    fn bad_rules_files_give_errors_that_name_the_rule() {
        let err = Rules::parse("[[rule]]\nkind = \"nope\"\nsubject = ['x']").unwrap_err();
        assert!(err.to_string().contains("rule 1 (nope)"), "{err}");
        let err = Rules::parse("[[rule]]\nkind = \"marketing\"\nsubject = ['(']").unwrap_err();
        assert!(err.to_string().contains("bad regular expression"), "{err}");
        let err = Rules::parse("[[rule]]\nkind = \"marketing\"").unwrap_err();
        assert!(err.to_string().contains("at least one condition"), "{err}");
        let err = Rules::parse("[[secret]]\nkind = \"reset_link\"").unwrap_err();
        assert!(err.to_string().contains("needs either"), "{err}");
        // A link rule reads every sender's mail: `from` is a token rule's.
        let sender_link =
            "[[secret]]\nkind = \"reset_link\"\nhosts = [\"signin.aws\"]\nfrom = [\"a@b.example\"]";
        let err = Rules::parse(sender_link).unwrap_err();
        assert!(
            err.to_string()
                .contains("`from` and `skip_words` only with"),
            "{err}"
        );
        let err =
            Rules::parse("[[secret]]\nkind = \"reset_link\"\nhosts = [\"amazon.*\"]").unwrap_err();
        assert!(err.to_string().contains("bad host pattern"), "{err}");
        let err = Rules::parse(
            "[[rule]]\nkind = \"security.password_reset\"\nfrom = [\"@signin.aws\"]\nsubject = ['reset']",
        )
        .unwrap_err();
        assert!(err.to_string().contains("exact sender addresses"), "{err}");
        assert!(Rules::parse("[[rule]]\nkind = \"marketing\"\nsubjects = ['x']").is_err());
    }
}
