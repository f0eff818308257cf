//! Many regular expressions matched against one text, saying which matched.
//!
//! One `RegexSet` runs them all in one pass, as a lazy DFA whose states are
//! sets of positions in every pattern at once. A pattern with a wide window
//! (`access keys?.{0,200}exposed`) multiplies those states: each position
//! inside a window combines with every other pattern's, so the DFA builds new
//! states on nearly every byte of ordinary mail instead of reusing them
//! (profiled: 40% of triage went to the body set, half of it building states).
//! Such patterns are searched one by one instead, where a DFA stays small and
//! a literal prefilter skips most of the text; the rest stay in one set. Both
//! are linear in the text.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// A bounded repetition whose upper bound reaches this makes a pattern run
/// alone.
const WIDE_WINDOW: u32 = 20;

#[derive(Debug)]
pub struct PatternSet {
    together: RegexSet,
    /// The pattern index of each member of `together`, in order.
    together_ids: Vec<usize>,
    alone: Vec<(usize, Regex)>,
    len: usize,
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
    /// Compiles `patterns` (already in the syntax the set runs: see
    /// `ascii_word_boundaries`), with room for the Unicode classes that
    /// case-insensitive patterns in every language bring.
    pub fn new(patterns: &[String]) -> Result<Self, regex::Error> {
        let (mut together, mut together_ids, mut alone) = (Vec::new(), Vec::new(), Vec::new());
        for (i, pattern) in patterns.iter().enumerate() {
            if has_wide_window(pattern) {
                let regex = RegexBuilder::new(pattern)
                    .size_limit(64 << 20)
                    .dfa_size_limit(16 << 20)
                    .build()?;
                alone.push((i, regex));
            } else {
                together.push(pattern.as_str());
                together_ids.push(i);
            }
        }
        let together = RegexSetBuilder::new(together)
            .size_limit(256 << 20)
            .dfa_size_limit(64 << 20)
            .build()?;
        Ok(Self {
            together,
            together_ids,
            alone,
            len: patterns.len(),
        })
    }

    pub fn matches(&self, text: &str) -> PatternHits {
        let mut hits = vec![false; self.len];
        for member in self.together.matches(text).iter() {
            hits[self.together_ids[member]] = true;
        }
        for (i, regex) in &self.alone {
            hits[*i] = regex.is_match(text);
        }
        PatternHits(hits)
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.together.is_match(text) || self.alone.iter().any(|(_, r)| r.is_match(text))
    }
}

/// Whether `pattern` holds a bounded repetition `{m,n}` with `n` at least
/// `WIDE_WINDOW` (an open `{m,}` is a star, which a DFA handles well).
fn has_wide_window(pattern: &str) -> bool {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'{' => {
                let end = bytes[i..].iter().position(|&b| b == b'}').map(|e| i + e);
                let upper = end.and_then(|end| {
                    let inner = std::str::from_utf8(&bytes[i + 1..end]).ok()?;
                    inner.split_once(',')?.1.trim().parse::<u32>().ok()
                });
                if upper.is_some_and(|n| n >= WIDE_WINDOW) {
                    return true;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_windows_are_found_and_escaped_braces_are_not() {
        assert!(has_wide_window(r"(?i)access keys?.{0,200}exposed"));
        assert!(has_wide_window(r"a.{5,20}b"));
        assert!(!has_wide_window(r"\d{10,16}"));
        assert!(!has_wide_window(r"\d{12}"));
        assert!(!has_wide_window(r"x{3,}"));
        assert!(!has_wide_window(r"\{0,200\}"));
    }

    #[test]
    fn hits_are_reported_by_the_caller_s_index_whichever_way_they_ran() {
        let patterns = [
            r"(?i)alpha".to_string(),
            r"(?is)beta.{0,40}gamma".to_string(),
            r"delta".to_string(),
            r"(?s)epsilon.{0,30}zeta".to_string(),
        ];
        let set = PatternSet::new(&patterns).unwrap();
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
