//! Many regular expressions matched against one text, saying which matched.
//!
//! One `RegexSet` runs them all in one pass, as a lazy DFA whose states are
//! sets of positions in every pattern at once. A pattern with a wide window
//! (`access keys?.{0,200}exposed`) multiplies those states: each position
//! inside a window combines with every other pattern's, so the DFA builds new
//! states on nearly every byte of ordinary mail instead of reusing them
//! (profiled: 40% of triage went to the body set, half of it building states).
//! Such patterns are searched one by one instead, where a DFA stays small;
//! the rest stay in one set. Both are linear in the text.
//!
//! Searching each windowed pattern over every text still cost a pass apiece
//! (profiled: 14% of triage for seven patterns). So each one gets a gate: the
//! same pattern cut short before its first wide window (`access keys?`), which
//! matches wherever the whole pattern does. The gates run in the one set, and
//! a windowed pattern is searched only when its gate matched.
//!
//! Both are built for what they are asked, whether patterns matched, not
//! where: one forward lazy DFA each (`MatchSet`). `regex` also builds a
//! reverse automaton, a literal prefilter and capture slots, which only
//! searches for match positions use; they were over half of rule loading,
//! which every Lambda does at cold start (profiled).

use regex_automata::hybrid::dfa::{self as lazy, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures, pikevm::PikeVM};
use regex_automata::{Input, MatchKind, PatternID};
use regex_syntax::hir::{Hir, HirKind};
use std::sync::{Mutex, PoisonError};

/// A bounded repetition whose upper bound reaches this makes a pattern run
/// alone.
const WIDE_WINDOW: u32 = 20;

/// Lazy DFA cache limits, per search in progress: the set's, and each
/// windowed pattern's.
const TOGETHER_CACHE: usize = 64 << 20;
const WINDOWED_CACHE: usize = 16 << 20;

#[derive(Debug)]
pub struct PatternSet {
    together: MatchSet,
    /// The pattern index of each member of `together`, in order (none for a
    /// gate: a cut of a windowed pattern, not one of the caller's).
    together_ids: Vec<Option<usize>>,
    alone: Vec<Windowed>,
    len: usize,
}

/// A pattern with a wide window, searched on its own.
#[derive(Debug)]
struct Windowed {
    /// Its index in the list the set was made from.
    index: usize,
    pattern: MatchSet,
    /// The member of `together` that must match for this pattern to (none:
    /// the pattern starts with its window, so it is always searched).
    gate: Option<usize>,
}

/// Which patterns matched, by their index in the list the set was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternHits(Vec<bool>);

impl PatternHits {
    pub fn matched(&self, index: usize) -> bool {
        self.0.get(index).copied().unwrap_or(false)
    }

    pub fn any(&self) -> bool {
        self.0.contains(&true)
    }
}

impl PatternSet {
    /// Compiles `patterns`, parsed (in the syntax the set runs: see
    /// `ascii_word_boundaries`), with room for the Unicode classes that
    /// case-insensitive patterns in every language bring. An error says why
    /// they do not fit (too large).
    pub fn new(patterns: &[Hir]) -> Result<Self, String> {
        let (mut together, mut together_ids, mut windowed) = (Vec::new(), Vec::new(), Vec::new());
        for (i, pattern) in patterns.iter().enumerate() {
            let gate = match gate_of(pattern) {
                Gate::NotWindowed => {
                    together.push(pattern.clone());
                    together_ids.push(Some(i));
                    continue;
                }
                Gate::Always => None,
                Gate::Pattern(gate) => {
                    together.push(gate);
                    together_ids.push(None);
                    Some(together.len() - 1)
                }
            };
            windowed.push(Windowed {
                index: i,
                pattern: MatchSet::new(std::slice::from_ref(pattern), WINDOWED_CACHE)?,
                gate,
            });
        }
        let together = MatchSet::new(&together, TOGETHER_CACHE)?;
        Ok(Self {
            together,
            together_ids,
            alone: windowed,
            len: patterns.len(),
        })
    }

    pub fn matches(&self, text: &str) -> PatternHits {
        let mut hits = vec![false; self.len];
        let found = self.together.matches(text);
        for index in found
            .iter()
            .filter_map(|member| self.together_ids[member.as_usize()])
        {
            hits[index] = true;
        }
        for windowed in &self.alone {
            let open = windowed
                .gate
                .is_none_or(|gate| PatternID::new(gate).is_ok_and(|id| found.contains(id)));
            hits[windowed.index] = open && windowed.pattern.is_match(text);
        }
        PatternHits(hits)
    }

    /// Whether any pattern matches. Without windowed patterns every member
    /// of the set is the caller's, so the search stops at the first match; a
    /// gate's match alone proves nothing, so otherwise every hit is computed.
    pub fn is_match(&self, text: &str) -> bool {
        match self.alone.is_empty() {
            true => self.together.is_match(text),
            false => self.matches(text).any(),
        }
    }

    /// How many patterns are searched on their own: (gated, always).
    #[cfg(test)]
    pub(crate) fn searched_alone(&self) -> (usize, usize) {
        let gated = self.alone.iter().filter(|w| w.gate.is_some()).count();
        (gated, self.alone.len() - gated)
    }
}

/// Which of some patterns match anywhere in a text, in one pass of a lazy
/// DFA (linear in the text; its states are built as the text needs them,
/// within a bounded cache that is cleared and refilled when full). The
/// PikeVM answers instead if the lazy DFA cannot: it stops at a non-ASCII
/// byte when a pattern has a Unicode word boundary, which
/// `ascii_word_boundaries` keeps out of the rules but an operator's pattern
/// may still hold.
#[derive(Debug)]
struct MatchSet {
    dfa: DFA,
    pikevm: PikeVM,
    /// Each search's scratch space, kept for the next one (searches on many
    /// threads at once each take their own).
    caches: Mutex<Vec<Caches>>,
}

#[derive(Debug)]
struct Caches {
    dfa: lazy::Cache,
    pikevm: thompson::pikevm::Cache,
}

impl MatchSet {
    /// `cache`: the most memory one search's lazy DFA states may take
    /// before they are cleared and built again (hostile text can make a
    /// windowed pattern's states many; the search stays linear).
    fn new(patterns: &[Hir], cache: usize) -> Result<Self, String> {
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .which_captures(WhichCaptures::None)
                    .nfa_size_limit(Some(256 << 20)),
            )
            .build_many_from_hir(patterns)
            .map_err(|e| e.to_string())?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    // Gives up at the first non-ASCII byte instead: the
                    // PikeVM then answers.
                    .unicode_word_boundary(true)
                    .cache_capacity(cache),
            )
            .build_from_nfa(nfa.clone())
            .map_err(|e| e.to_string())?;
        let pikevm = PikeVM::builder()
            .configure(PikeVM::config().match_kind(MatchKind::All))
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            dfa,
            pikevm,
            caches: Mutex::new(Vec::new()),
        })
    }

    /// The patterns that matched.
    fn matches(&self, text: &str) -> regex_automata::PatternSet {
        let input = Input::new(text);
        let mut found = regex_automata::PatternSet::new(self.dfa.pattern_len());
        self.with_caches(|caches| {
            if self
                .dfa
                .try_which_overlapping_matches(&mut caches.dfa, &input, &mut found)
                .is_err()
            {
                found.clear();
                self.pikevm
                    .which_overlapping_matches(&mut caches.pikevm, &input, &mut found);
            }
        });
        found
    }

    /// Whether any pattern matches, stopping at the first match.
    fn is_match(&self, text: &str) -> bool {
        let input = Input::new(text).earliest(true);
        self.with_caches(
            |caches| match self.dfa.try_search_fwd(&mut caches.dfa, &input) {
                Ok(found) => found.is_some(),
                Err(_) => self.pikevm.is_match(&mut caches.pikevm, input.clone()),
            },
        )
    }

    fn with_caches<T>(&self, search: impl FnOnce(&mut Caches) -> T) -> T {
        let taken = self
            .caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut caches = taken.unwrap_or_else(|| Caches {
            dfa: self.dfa.create_cache(),
            pikevm: self.pikevm.create_cache(),
        });
        let answer = search(&mut caches);
        self.caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(caches);
        answer
    }
}

enum Gate {
    /// The pattern has no wide window after all: it joins the set.
    NotWindowed,
    /// The pattern begins with its window: nothing cheaper says it may match.
    Always,
    /// A pattern that matches wherever the windowed one does.
    Pattern(Hir),
}

fn gate_of(pattern: &Hir) -> Gate {
    match cut_before_window(pattern) {
        Cut::NotWide => Gate::NotWindowed,
        Cut::Wide(Some(gate)) if gate.properties().minimum_len().is_some_and(|n| n > 0) => {
            Gate::Pattern(gate)
        }
        Cut::Wide(_) => Gate::Always,
    }
}

/// What [`cut_before_window`] found.
enum Cut {
    /// No wide window: the pattern stays whole.
    NotWide,
    /// The pattern cut short before its first wide window: it matches at
    /// every position where the pattern does (so searching it first loses no
    /// match). None when no such cut is left: the window comes first, or is
    /// optional.
    Wide(Option<Hir>),
}

/// `hir` cut before its first wide window, each node visited once (an
/// operator's pattern may nest as deeply as the parser allows).
fn cut_before_window(hir: &Hir) -> Cut {
    match hir.kind() {
        HirKind::Concat(parts) => {
            for (i, part) in parts.iter().enumerate() {
                if let Cut::Wide(cut) = cut_before_window(part) {
                    let kept = parts[..i].iter().cloned().chain(cut);
                    return Cut::Wide(Some(Hir::concat(kept.collect())));
                }
            }
            Cut::NotWide
        }
        HirKind::Alternation(branches) => {
            let cuts: Vec<Cut> = branches.iter().map(cut_before_window).collect();
            if cuts.iter().all(|c| matches!(c, Cut::NotWide)) {
                return Cut::NotWide;
            }
            let kept = cuts
                .into_iter()
                .zip(branches)
                .map(|(cut, branch)| match cut {
                    Cut::NotWide => Some(branch.clone()),
                    Cut::Wide(cut) => cut,
                });
            Cut::Wide(kept.collect::<Option<Vec<_>>>().map(Hir::alternation))
        }
        HirKind::Capture(capture) => cut_before_window(&capture.sub),
        HirKind::Repetition(rep) => match (cut_before_window(&rep.sub), is_wide(rep)) {
            (Cut::NotWide, false) => Cut::NotWide,
            // At least one repetition happens, where `hir` matches.
            (Cut::NotWide, true) if rep.min > 0 => Cut::Wide(Some((*rep.sub).clone())),
            (Cut::Wide(cut), _) if rep.min > 0 => Cut::Wide(cut),
            _ => Cut::Wide(None),
        },
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => Cut::NotWide,
    }
}

fn is_wide(rep: &regex_syntax::hir::Repetition) -> bool {
    rep.max.is_some_and(|max| max >= WIDE_WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn parsed(pattern: &str) -> Hir {
        regex_syntax::Parser::new().parse(pattern).unwrap()
    }

    pub(crate) fn set_of(patterns: &[String]) -> PatternSet {
        PatternSet::new(&patterns.iter().map(|p| parsed(p)).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn wide_windows_are_found_and_escaped_braces_are_not() {
        let wide = |pattern| matches!(cut_before_window(&parsed(pattern)), Cut::Wide(_));
        assert!(wide(r"(?i)access keys?.{0,200}exposed"));
        assert!(wide(r"a.{5,20}b"));
        assert!(wide(r"(x(a.{5,20}b)?)+"));
        assert!(!wide(r"\d{10,16}"));
        assert!(!wide(r"\d{12}"));
        assert!(!wide(r"x{3,}"));
        assert!(!wide(r"\{0,200\}"));
        assert!(!wide(r"[{]0,200}"));
    }

    fn gate(pattern: &str) -> Option<String> {
        match gate_of(&parsed(pattern)) {
            Gate::Pattern(gate) => Some(gate.to_string()),
            Gate::Always => Some("always".into()),
            Gate::NotWindowed => None,
        }
    }

    #[test]
    fn a_gate_is_the_pattern_cut_before_its_first_wide_window() {
        let access =
            Regex::new(&gate(r"(?i)access keys?.{0,200}(exposed|public)").unwrap()).unwrap();
        assert!(access.is_match("Your AWS ACCESS KEY was found"));
        assert!(!access.is_match("exposed and public, but no key"));

        // Every branch is cut; a branch without a window stays whole.
        let branches =
            gate(r"(?i)(publicly|exposed).{0,100}access keys?|compromised keys").unwrap();
        let branches = Regex::new(&branches).unwrap();
        assert!(branches.is_match("publicly"));
        assert!(branches.is_match("COMPROMISED KEYS"));
        assert!(!branches.is_match("compromised") && !branches.is_match("access keys"));

        // A window that starts the pattern, or a branch, leaves nothing to gate on.
        assert_eq!(gate(r"(?s).{0,30}abc").as_deref(), Some("always"));
        assert_eq!(gate(r"abc|.{0,30}x").as_deref(), Some("always"));
        assert_eq!(gate(r"(x.{0,30}y)?z").as_deref(), Some("always"));
        // A repetition that happens at least once keeps its first round.
        let repeated = Regex::new(&gate(r"(ab.{0,30}c)+").unwrap()).unwrap();
        assert!(repeated.is_match("xab") && !repeated.is_match("ac"));
        // Braces the byte scan misread are no window: the pattern joins the set.
        assert_eq!(gate(r"[{]0,200}"), None);
        // Nested as deeply as the parser allows, the window at the bottom.
        let deep = format!("{}x.{{0,30}}y{}", "(?:a".repeat(100), ")".repeat(100));
        let cut = Regex::new(&gate(&deep).unwrap()).unwrap();
        assert!(cut.is_match(&format!("{}x", "a".repeat(100))));
        assert!(!cut.is_match(&"a".repeat(100)));
    }

    #[test]
    fn gated_patterns_match_exactly_where_they_match_alone() {
        let patterns = [
            r"(?is)access keys?.{0,200}(publicly|exposed)|(publicly|exposed).{0,100}access keys?",
            r"(?i)\b(MFA|multi-factor)\b.{0,60}\b(removed|added)|MFA device",
            r"(?s).{0,30}tail",
            r"(?i)invit(ed|ation)\b.{0,60}\bto join|handshake",
            r"(?i)Zahlung.{0,40}fehlgeschlagen|überfällig",
            r"plain",
        ]
        .map(String::from);
        let set = set_of(&patterns);
        let alone: Vec<Regex> = patterns.iter().map(|p| Regex::new(p).unwrap()).collect();
        let texts = [
            "Your access key was found publicly on GitHub.",
            "It was exposed. We rotated the ACCESS KEYS.",
            "access key: AKIA... and nothing else",
            "MFA was removed from the root user",
            "the MFA device was registered",
            "multi-factor, then many words later: added",
            "you were invited to join the organization",
            "invitation to join",
            "Die Zahlung ist leider fehlgeschlagen",
            "Zahlung erhalten",
            "a tail and plain text",
            "",
        ];
        for text in texts {
            let hits = set.matches(text);
            for (i, regex) in alone.iter().enumerate() {
                assert_eq!(
                    hits.matched(i),
                    regex.is_match(text),
                    "{:?} on {text:?}",
                    patterns[i]
                );
            }
            assert_eq!(set.is_match(text), alone.iter().any(|r| r.is_match(text)));
            // The same patterns without the windowed ones: a set that stops
            // at its first match.
            let plain: Vec<usize> = (0..patterns.len())
                .filter(|&i| !patterns[i].contains(".{"))
                .collect();
            let plain_set = set_of(
                &plain
                    .iter()
                    .map(|&i| patterns[i].clone())
                    .collect::<Vec<_>>(),
            );
            assert_eq!(plain_set.searched_alone(), (0, 0));
            assert_eq!(
                plain_set.is_match(text),
                plain.iter().any(|&i| alone[i].is_match(text)),
                "{text:?}"
            );
        }
    }

    /// Generated windowed patterns (windows first, last, nested, optional,
    /// repeated, in branches, beside `\b`) on generated texts: the set says
    /// what each pattern says alone, so no gate ever hides a match.
    #[test]
    fn gates_hide_no_match_on_generated_patterns() {
        let mut next = crate::generator(0x2545_f491_4f6c_dd1d_u64);
        let atoms = [
            "a", "b", "ab", r"\bab", r"b\b", "(a|ba)", "c?", "b+", ".{0,25}", ".{2,30}",
        ];
        for _ in 0..300 {
            let piece = |next: &mut dyn FnMut(usize) -> usize| -> String {
                let atom = |next: &mut dyn FnMut(usize) -> usize| atoms[next(atoms.len())];
                match next(5) {
                    0 => format!("({}{})?", atom(next), atom(next)),
                    1 => format!("({}.{{0,20}}{})+", atom(next), atom(next)),
                    2 => format!("({}|{})", atom(next), atom(next)),
                    _ => atom(next).to_string(),
                }
            };
            let patterns: Vec<String> = (0..3)
                .map(|_| {
                    let pieces: String = (0..1 + next(4)).map(|_| piece(&mut next)).collect();
                    format!("(?s){pieces}")
                })
                .collect();
            let set = set_of(&patterns);
            let alone: Vec<Regex> = patterns.iter().map(|p| Regex::new(p).unwrap()).collect();
            for _ in 0..20 {
                let text: String = (0..next(70))
                    .map(|_| ["a", "b", "c", " "][next(4)])
                    .collect();
                let hits = set.matches(&text);
                for (i, regex) in alone.iter().enumerate() {
                    assert_eq!(
                        hits.matched(i),
                        regex.is_match(&text),
                        "{} on {text:?}",
                        patterns[i]
                    );
                }
            }
        }
    }

    #[test]
    fn hits_are_reported_by_the_caller_s_index_whichever_way_they_ran() {
        let patterns = [
            r"(?i)alpha".to_string(),
            r"(?is)beta.{0,40}gamma".to_string(),
            r"delta".to_string(),
            r"(?s)epsilon.{0,30}zeta".to_string(),
        ];
        let set = set_of(&patterns);
        let hits = set.matches("ALPHA then beta, some words, gamma; no d-word");
        assert_eq!(
            (0..4).map(|i| hits.matched(i)).collect::<Vec<_>>(),
            [true, true, false, false]
        );
        assert!(hits.any());
        assert!(set.is_match("epsilon and zeta"));
        assert!(!set.is_match("epsilon") && !set.matches("nothing").any());
    }
}
