//! Classification on evidence. Each rule of `rules.toml` names a kind, its
//! conditions (sender, subject and body patterns, headers: all must hold, a
//! list holds when one entry does) and a weight. A mail's score for a kind is
//! the sum of the weights of that kind's rules that hold, each counted once
//! however often its words appear (so keyword spam cannot inflate it); a
//! negative weight is evidence against the kind. The
//! kind is the best score at or over the threshold; a runner-up within
//! `near_tie` of it is reported. All subject patterns are one `RegexSet`, all
//! body patterns another (`PatternSet`): one pass over each text for most
//! patterns, whatever the rule count.

use crate::pattern_set::{PatternHits, PatternSet};
use crate::types::{Kind, Priority};

/// What a rule sees of a message.
pub struct RuleInput<'a> {
    pub from: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub has_header: &'a dyn Fn(&str) -> bool,
}

/// One compiled rule. Subject and body patterns are indexes into the sets.
#[derive(Debug)]
pub struct Rule {
    /// Its position in the rules file, counting from 1.
    pub number: usize,
    pub kind: Kind,
    pub priority: Option<Priority>,
    /// Negative: evidence against the kind (a set-up notice is no alert).
    pub weight: i32,
    pub(crate) from: Vec<String>,
    pub(crate) subject: Vec<usize>,
    pub(crate) body: Vec<usize>,
    pub(crate) header: Vec<String>,
}

/// Every rule, the pattern sets they refer to, and how scores decide.
#[derive(Debug)]
pub struct Evidence {
    pub(crate) rules: Vec<Rule>,
    pub(crate) subject_set: PatternSet,
    pub(crate) body_set: PatternSet,
    /// The patterns' texts, by the same indexes, for saying which one fired.
    pub(crate) subject_patterns: Vec<String>,
    pub(crate) body_patterns: Vec<String>,
    /// Verified AWS mail no rule recognises is raised to high priority when
    /// its text matches one of these.
    pub(crate) raise_set: PatternSet,
    pub threshold: i32,
    pub near_tie: i32,
}

/// Why a rule counted: the condition of each source that held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signal {
    pub rule: usize,
    pub weight: i32,
    pub fired: Vec<String>,
}

/// One kind's score and the signals behind it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KindScore {
    pub kind: Kind,
    pub score: i32,
    /// The most urgent priority a rule that held asks for.
    #[serde(skip)]
    pub priority: Option<Priority>,
    pub signals: Vec<Signal>,
}

/// The outcome: every kind that scored, best first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Classification {
    pub scores: Vec<KindScore>,
    pub threshold: i32,
    /// The winner, when its score reaches the threshold.
    #[serde(skip)]
    pub kind: Option<Kind>,
    /// A runner-up close to the winner (a mail that mixes two kinds).
    #[serde(skip)]
    pub near_tie: Option<(Kind, i32)>,
}

impl Classification {
    pub fn winner(&self) -> Option<&KindScore> {
        self.kind
            .and_then(|kind| self.scores.iter().find(|s| s.kind == kind))
    }

    pub fn runner_up(&self) -> Option<&KindScore> {
        self.scores.get(usize::from(self.kind.is_some()))
    }
}

impl Evidence {
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Scores every kind for this message.
    pub fn classify(&self, input: &RuleInput<'_>) -> Classification {
        let from = input.from.to_ascii_lowercase();
        let subject_hits = self.subject_set.matches(input.subject);
        let body_hits = self.body_set.matches(input.body);
        let mut scores: Vec<KindScore> = Vec::new();
        for rule in &self.rules {
            let hits = Hits {
                from: &from,
                subject: &subject_hits,
                body: &body_hits,
            };
            let Some(fired) = rule.fired(&hits, input, self) else {
                continue;
            };
            let signal = Signal {
                rule: rule.number,
                weight: rule.weight,
                fired,
            };
            match scores.iter_mut().find(|s| s.kind == rule.kind) {
                Some(score) => {
                    score.score += rule.weight;
                    score.priority = score.priority.max(rule.priority);
                    score.signals.push(signal);
                }
                None => scores.push(KindScore {
                    kind: rule.kind,
                    score: rule.weight,
                    priority: rule.priority,
                    signals: vec![signal],
                }),
            }
        }
        // Best first; on equal scores the kind whose rules come first in the
        // file (its first signal's rule number) wins, as rules were ordered.
        scores.sort_by_key(|s| (std::cmp::Reverse(s.score), s.signals[0].rule));
        let kind = scores
            .first()
            .filter(|s| s.score >= self.threshold)
            .map(|s| s.kind);
        let near_tie = kind.and_then(|_| {
            let (best, second) = (scores.first()?, scores.get(1)?);
            (second.score + self.near_tie >= best.score && second.score >= self.threshold)
                .then_some((second.kind, second.score))
        });
        Classification {
            scores,
            threshold: self.threshold,
            kind,
            near_tie,
        }
    }

    /// Whether the text of an unrecognised AWS mail calls for high priority.
    pub fn raises_priority(&self, subject: &str, body: &str) -> bool {
        self.raise_set.is_match(subject) || self.raise_set.is_match(body)
    }
}

/// What the one pass over each text found.
struct Hits<'a> {
    from: &'a str,
    subject: &'a PatternHits,
    body: &'a PatternHits,
}

impl Rule {
    /// What held, if every condition did.
    fn fired(
        &self,
        hits: &Hits<'_>,
        input: &RuleInput<'_>,
        evidence: &Evidence,
    ) -> Option<Vec<String>> {
        let mut fired = Vec::new();
        if !self.from.is_empty() {
            let sender = self.from.iter().find(|f| sender_matches(f, hits.from))?;
            fired.push(format!("from {sender}"));
        }
        if !self.subject.is_empty() {
            let i = self.subject.iter().find(|i| hits.subject.matched(**i))?;
            fired.push(format!("subject /{}/", evidence.subject_patterns[*i]));
        }
        if !self.body.is_empty() {
            let i = self.body.iter().find(|i| hits.body.matched(**i))?;
            fired.push(format!("body /{}/", evidence.body_patterns[*i]));
        }
        for header in &self.header {
            if !(input.has_header)(header) {
                return None;
            }
            fired.push(format!("header {header}"));
        }
        Some(fired)
    }
}

/// `pattern` with its word boundaries (`\b`, `\B`) made ASCII ones. A
/// Unicode word boundary keeps the fast automaton from scanning text that is
/// not ASCII (Japanese, accented words), and a set of rules then runs the
/// slow one: 60 times slower on a mail that mixes both. Rules are written
/// for words AWS spells in ASCII or for scripts without spaces, so ASCII
/// boundaries are what they mean.
pub fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some('b' | 'B')) => {
                let b = chars.next().unwrap_or('b');
                out.push_str("(?-u:\\");
                out.push(b);
                out.push(')');
            }
            ('\\', Some(_)) => {
                out.push(c);
                out.extend(chars.next());
            }
            _ => out.push(c),
        }
    }
    out
}

/// An exact address, or `@domain` for the domain and its subdomains.
pub(crate) fn sender_matches(wanted: &str, from: &str) -> bool {
    match wanted.strip_prefix('@') {
        Some(domain) => from.rsplit_once('@').is_some_and(|(_, d)| {
            d == domain
                || d.strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.'))
        }),
        None => from == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_boundaries_become_ascii_ones_and_escapes_stay() {
        assert_eq!(
            ascii_word_boundaries(r"\bcase\B\d\\b"),
            r"(?-u:\b)case(?-u:\B)\d\\b"
        );
        let re = regex::Regex::new(&ascii_word_boundaries(r"(?i)\bsuspend")).unwrap();
        assert!(re.is_match("Your account: suspended"));
        assert!(!re.is_match("unsuspended"));
    }
}
