//! Finding secrets in mail text and keeping them out of everything shown.

use crate::evidence::sender_matches;
use crate::html::{decode_attribute, has_scheme};
use crate::rules::{HostPattern, Rules, SecretRule};
use crate::secret_value::{FoundSecret, SecretKind, SecretValue};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::{Match, Regex};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// A link with its scheme. Its slashes may be backslashes, or any number of
/// either, none too: a browser opens `https:\\signin.aws.amazon.com\reset...`
/// and `https:signin.aws.amazon.com/reset...` as the link with two slashes
/// (so does the URL parser the link rules read links with).
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(?-u:\b)https?:[/\\]*[^\s<>"'\)\]\}/\\][^\s<>"'\)\]\}]*"#)
        .expect("static regex")
});

/// A link written without its scheme, as people paste one
/// (`signin.aws.amazon.com/resetpassword?token=...`): a host of at least two
/// labels, then a path. The link rules decide, as for any link.
static BARE_LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(?-u:\b)(?:[a-z0-9-]+\.)+[a-z]{2,63}(?::\d{1,5})?[/\\][^\s<>"'\)\]\}]*"#)
        .expect("static regex")
});

/// At most this many distinct secrets are collected from one text. A message
/// with more is not shown at all (see [`FoundSecrets::overflowed`]): a secret
/// past the cap would not be redacted.
pub const MAX_SECRETS: usize = 64;
/// The bytes one mail's redaction searches for at most, every spelling of
/// every secret counted: 64 secrets as long as AWS's longest links, each
/// spelled three ways, take a fifth of it.
pub const MAX_REDACTED_BYTES: usize = 256 << 10;

/// The secrets of one text, in order of appearance, each value once.
#[derive(Debug, Default)]
pub struct FoundSecrets {
    pub secrets: Vec<FoundSecret>,
    /// The same secrets as the text also writes them, when that differs from
    /// the value (a link's `&` written `&#38;` or `&AMP;`): for the
    /// [`Redactor`] only, never handed over.
    pub spellings: Vec<FoundSecret>,
    /// More than [`MAX_SECRETS`] were there (or more than that many spellings
    /// of them): the text must not be shown.
    pub overflowed: bool,
    /// Other tokens in reach of a code's or password's words than the one
    /// found ("code for request 2026A1B2: 615274"): redacted from what a
    /// person may have written; in AWS's own ordinary mail they are invoice
    /// and request numbers (see `Secrets::of`).
    pub nearby: Vec<FoundSecret>,
    /// Which of `secrets` only the code rules found (a verification code
    /// after its words, near them or alone on a line below), as indices
    /// into `secrets`: see [`Self::codes_as_nearby`].
    codes: Vec<usize>,
    /// Some of `secrets` only a sender's own rules found (`rules.toml`'s
    /// `from`), in a looser shape than the rules for all mail read: the
    /// secret may be handed over, but the text is not shown, since the
    /// same mail may write its real secret where no rule reads it.
    pub read_loosely: bool,
}

impl FoundSecrets {
    /// Counts the codes only the code rules found as [`Self::nearby`]
    /// tokens: AWS's alerts name resources so ("the function code listed
    /// below ..." then `ORDERS26`), where they are no secret (`triage`'s
    /// `SearchScope` says where).
    pub fn codes_as_nearby(&mut self) {
        let codes = std::mem::take(&mut self.codes);
        let mut index = 0;
        self.secrets.retain(|secret| {
            let name = codes.contains(&index);
            index += 1;
            if name {
                self.nearby.push(secret.clone());
            }
            !name
        });
    }
}

/// Every secret in `text` (at most [`MAX_SECRETS`]).
pub fn find_secrets(text: &str, rules: &Rules) -> Vec<FoundSecret> {
    find_secrets_bounded(text, rules).secrets
}

/// Every secret in `text`, and whether there were more than [`MAX_SECRETS`],
/// by the rules that read any sender's mail.
pub fn find_secrets_bounded(text: &str, rules: &Rules) -> FoundSecrets {
    find_secrets_from(text, rules, None)
}

/// Every secret in `text` of a mail from `sender` (its address), by the
/// rules that read all mail and those that name the sender (`from`).
/// Linear in the text: each link is parsed once, each context match looks at
/// a bounded window, and values are de-duplicated through a set.
pub fn find_secrets_from(text: &str, rules: &Rules, sender: Option<&str>) -> FoundSecrets {
    let mut out = Collector::default();
    // Each pass stops once the collector is full.
    secret_links(text, rules, &mut out);
    secret_bare_links(text, rules, &mut out);
    tokens_after_contexts(text, rules, sender, &mut out);
    out.finish()
}

/// Links with their scheme.
fn secret_links(text: &str, rules: &Rules, out: &mut Collector) {
    for m in URL.find_iter(text) {
        if out.full() {
            return;
        }
        let written = m.as_str().trim_end_matches(SENTENCE_PUNCTUATION);
        // Read as a browser reads an `href`: a link written with `&amp;`,
        // `&#38;` or any other reference for `&` is the same link.
        let link = decode_attribute(written);
        if let Some(kind) = secret_link_kind(&link, rules) {
            out.add(kind, &link);
            out.add_spelling(kind, &link, written);
            if let Some(wrapped) = wrapped_link(text, m.start(), m.end()) {
                out.add_spelling(kind, &link, wrapped);
            }
            if let Some(broken) = broken_link(text, m.start(), m.end()) {
                out.add_spelling(kind, &link, broken);
            }
        }
    }
}

/// The link that starts at `start` and ends at `end` with the rest of its
/// token, when a character no link holds broke it there: an apostrophe or a
/// space that is no line break (a client's no-break space), then more of a
/// token with no space ("...token=AbC12\u{a0}34xyz"). Redacted with its
/// rest, so no piece of the token is shown. Reads at most
/// [`TOKEN_TAIL_CHARS`] characters past `end`.
fn broken_link(text: &str, start: usize, end: usize) -> Option<&str> {
    let mut rest = text[end..].chars();
    let breaker = rest.next()?;
    if !(breaker == '\'' || (breaker.is_whitespace() && !breaker.is_ascii())) {
        return None;
    }
    let after = end + breaker.len_utf8();
    let tail: usize = text[after..]
        .chars()
        .take(TOKEN_TAIL_CHARS)
        .take_while(|c| c.is_ascii_alphanumeric() || "%&=_-.~+/".contains(*c))
        .map(char::len_utf8)
        .sum();
    let tail = text[after..after + tail].trim_end_matches(SENTENCE_PUNCTUATION);
    (!tail.is_empty()).then(|| &text[start..after + tail.len()])
}

/// Links without their scheme, read as `https://` ones.
fn secret_bare_links(text: &str, rules: &Rules, out: &mut Collector) {
    for m in BARE_LINK.find_iter(text) {
        if out.full() {
            return;
        }
        // A link with its scheme was read by `secret_links`; one behind a
        // defanged scheme (`hxxps://`) is read here.
        if after_web_scheme(&text.as_bytes()[..m.start()]) {
            continue;
        }
        let written = m.as_str().trim_end_matches(SENTENCE_PUNCTUATION);
        let link = format!("https://{}", decode_attribute(written));
        if let Some(kind) = secret_link_kind(&link, rules) {
            out.add(kind, &link);
            out.add_spelling(kind, &link, written);
        }
    }
}

/// Whether `before` ends with `http:` or `https:`, in any case, and any
/// number of slashes either way, where [`URL`] reads a link: the scheme
/// starts a word (it does not read `xhttps:host/...`, so that is read here).
fn after_web_scheme(before: &[u8]) -> bool {
    let slashes = before
        .iter()
        .rev()
        .take_while(|b| matches!(b, b'/' | b'\\'))
        .count();
    let before = &before[..before.len() - slashes];
    ["http:", "https:"].iter().any(|scheme| {
        before.len() >= scheme.len()
            && ends_with_any(before, &[scheme])
            && before[..before.len() - scheme.len()]
                .last()
                .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
    })
}

/// Whether the colon a context reached to at `end` is a link's ("your
/// password at https://...") or a time's ("password for root changed at
/// 10:15 on 2026-12-06").
fn ends_at_a_foreign_colon(text: &str, end: usize) -> bool {
    ends_with_web_scheme(&text.as_bytes()[..end]) || is_time_colon(text, end)
}

/// Whether the text before `end` ends with a colon between two digits.
fn is_time_colon(text: &str, end: usize) -> bool {
    let bytes = text.as_bytes();
    end >= 2
        && bytes[end - 1] == b':'
        && bytes[end - 2].is_ascii_digit()
        && bytes.get(end).is_some_and(u8::is_ascii_digit)
}

/// Whether `before` ends with `http:` or `https:`, in any case.
fn ends_with_web_scheme(before: &[u8]) -> bool {
    ends_with_any(before, &["http:", "https:"])
}

fn ends_with_any(before: &[u8], ends: &[&str]) -> bool {
    ends.iter().any(|scheme| {
        before
            .len()
            .checked_sub(scheme.len())
            .is_some_and(|at| before[at..].eq_ignore_ascii_case(scheme.as_bytes()))
    })
}

/// What a sentence may put right after a link; never part of it.
const SENTENCE_PUNCTUATION: [char; 6] = ['.', ',', ';', ':', '!', '?'];

/// The kind of secret a link is, by the link rules, or by the link it
/// carries (a mail filter's wrapper, two deep).
fn secret_link_kind(link: &str, rules: &Rules) -> Option<SecretKind> {
    link_kind(link, rules).or_else(|| carried_kind(link, rules, 2))
}

/// Codes and passwords: a token within reach of its context's words, by
/// the rules for all mail; then, in mail from a sender some rules name, by
/// those rules, for the kinds of secret the first found none of. Their
/// tokens may be looser (a root email code may hold lower case, or no
/// digit), so they never add to a secret the rules for all mail found, nor
/// take a token inside a link; each other token they take is one more
/// secret (a rotation refuses a mail with two), and what they find leaves
/// the text withheld (`FoundSecrets::read_loosely`).
fn tokens_after_contexts(text: &str, rules: &Rules, sender: Option<&str>, out: &mut Collector) {
    let all = rules.secret_rules().iter();
    for rule in all.clone().filter(|r| r.senders().is_empty()) {
        tokens_after_rule(text, rule, None, out);
    }
    let Some(sender) = sender else { return };
    let reads = |r: &&SecretRule| r.senders().iter().any(|f| sender_matches(f, sender));
    // Most senders no rule names: nothing more is read or collected.
    if !all.clone().any(|r| reads(&r)) {
        return;
    }
    let found: HashSet<SecretKind> = out.found.iter().map(|s| s.kind).collect();
    let mut own = all
        .filter(reads)
        .filter(|r| !found.contains(&r.kind()))
        .peekable();
    if own.peek().is_none() {
        return;
    }
    let links = LinkSpans::of(text);
    let found_before = out.found.len();
    for rule in own {
        tokens_after_rule(text, rule, Some(&links), out);
    }
    out.read_loosely = out.found.len() > found_before;
}

/// One token rule's finds (none for a link rule). With `links` (a looser
/// rule's, see [`tokens_after_contexts`]), a token inside one of them, or
/// on the line a link wraps onto, is none, and every token in reach is a
/// secret. Tokens before the words (rules with `before`) are read back to
/// the previous context at most: each stretch about once however dense the
/// words.
fn tokens_after_rule(
    text: &str,
    rule: &SecretRule,
    links: Option<&LinkSpans>,
    out: &mut Collector,
) {
    let SecretRule::After {
        kind,
        context,
        token,
        within,
        before,
        min_digits,
        line,
        skip_words,
        ..
    } = rule
    else {
        return;
    };
    let check = TokenCheck {
        text,
        min_digits: *min_digits,
        skip_words: *skip_words,
        links,
    };
    let mut contexts = context.find_iter(text).peekable();
    let mut previous_end = 0;
    while let Some(m) = contexts.next() {
        if out.full() {
            return;
        }
        if ends_at_a_foreign_colon(text, m.end()) {
            continue;
        }
        if *before > 0 {
            let before_words = &text[previous_end..m.start()];
            let from = m.start() - suffix_chars(before_words, *before).len();
            let tokens = matches_from(token, line.as_ref(), &text[..m.start()], from, false);
            for t in tokens.filter(|t| check.is_secret(t, 0)) {
                out.add_nearby(*kind, t.as_str());
            }
        }
        previous_end = m.end();
        let (window, starts_before, own_before) = reach_of(text, &m, contexts.peek(), *within);
        let ends_text = m.end() + window.len() == text.len();
        let mut hits = matches_from(token, line.as_ref(), window, 0, ends_text)
            .take_while(|t| t.start() < starts_before)
            .filter(|t| check.is_secret(t, m.end()));
        let Some(first) = hits.next() else { continue };
        let nearby = hits.take_while(|t| t.start() < own_before);
        let found = Found {
            kind: *kind,
            code: *kind == SecretKind::VerificationCode,
            every_token: links.is_some(),
        };
        add_found(found, first.as_str(), nearby.map(|t| t.as_str()), out);
    }
}

/// What a token a rule found must be to be a secret.
struct TokenCheck<'a> {
    text: &'a str,
    min_digits: usize,
    skip_words: bool,
    links: Option<&'a LinkSpans>,
}

impl TokenCheck<'_> {
    /// A secret holds its digits, is no link (nor stands in one, where the
    /// links are given), is no word where words are skipped, and is no
    /// piece of a longer run of digits (full-width digits have no `\b` to
    /// end them). `t` is found at `offset` in the text.
    fn is_secret(&self, t: &Match<'_>, offset: usize) -> bool {
        let (start, end) = (offset + t.start(), offset + t.end());
        let is_word = self.skip_words && is_written_as_word(t.as_str());
        digits_in(t.as_str()) >= self.min_digits
            && !is_word
            && !URL.is_match(t.as_str())
            && !flanked_by_digits(self.text, start, end)
            && self.links.is_none_or(|l| !l.holds(start))
    }
}

/// Where a text's links stand (with and without their scheme, a wrapped
/// link with its tail on the lines after), as sorted, disjoint byte ranges.
struct LinkSpans(Vec<(usize, usize)>);

impl LinkSpans {
    fn of(text: &str) -> Self {
        let mut spans: Vec<(usize, usize)> = URL
            .find_iter(text)
            .chain(BARE_LINK.find_iter(text))
            .map(|m| {
                let wrapped = wrapped_link(text, m.start(), m.end());
                (m.start(), m.start() + wrapped.map_or(m.len(), str::len))
            })
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Self(merged)
    }

    fn holds(&self, at: usize) -> bool {
        let after = self.0.partition_point(|(start, _)| *start <= at);
        after > 0 && at < self.0[after - 1].1
    }
}

/// The window after the context `m` that its tokens are read in (see
/// [`window_after`]), how far into it a token may start, and how far its
/// other tokens are its own: from the next context's end on they are that
/// context's to find (its reach goes as far). Read here too, a line of words
/// and tokens repeated had each token read once per context in reach.
fn reach_of<'t>(
    text: &'t str,
    m: &Match<'_>,
    next: Option<&Match<'_>>,
    within: usize,
) -> (&'t str, usize, usize) {
    let next_start = next.map_or(text.len(), |n| n.start());
    let (window, starts_before) = window_after(text, m.end(), next_start, within);
    let own_before = next
        .filter(|n| !ends_at_a_foreign_colon(text, n.end()))
        .map_or(starts_before, |n| starts_before.min(n.end() - m.end()));
    (window, starts_before, own_before)
}

/// What a token rule found: its kind, whether a code rule found it
/// (`FoundSecrets::codes`), and whether every token in its reach is a
/// secret (a looser rule's: which one is meant is not clear, so a rotation
/// refuses the mail) or only the first.
#[derive(Clone, Copy)]
struct Found {
    kind: SecretKind,
    code: bool,
    every_token: bool,
}

/// The first token after a context, the one handed over, redacted without
/// the punctuation a sentence put after it too; the others in reach are
/// kept apart (`FoundSecrets::nearby`), or are secrets as well where every
/// token is (`Found::every_token`).
fn add_found<'t>(
    found: Found,
    first: &str,
    nearby: impl Iterator<Item = &'t str>,
    out: &mut Collector,
) {
    let kind = found.kind;
    out.add_from_rule(found, first);
    out.add_spelling(kind, first, without_closing_punctuation(first));
    for written in nearby {
        if found.every_token {
            out.add_from_rule(found, written);
        }
        out.add_nearby(kind, written);
        out.add_nearby(kind, without_closing_punctuation(written));
    }
}

/// The tokens `pattern` finds in `hay` from `from` on, read with what comes
/// before `from` (a token the start cuts has no boundary there). A pattern
/// with a group finds the group; the rest of its match is what must stand
/// around the token (a delimiter, where `\b` cannot tell a key from a
/// piece of a link). With a `line` (a rule's `alone_on_line`), the lines it
/// finds are searched first, and the token is read in each; a line that
/// ends where `hay` does counts only when `hay_ends_text`.
fn matches_from<'h>(
    pattern: &'h Regex,
    line: Option<&'h Regex>,
    hay: &'h str,
    from: usize,
    hay_ends_text: bool,
) -> impl Iterator<Item = Match<'h>> + 'h {
    let grouped = pattern.captures_len() > 1;
    let mut at = from;
    std::iter::from_fn(move || {
        if let Some(line) = line {
            loop {
                let found = line.find_at(hay, at)?;
                let ends_line = found.as_str().ends_with('\n');
                // Without its line break it ends `hay`: nothing follows.
                if !(ends_line || hay_ends_text) {
                    return None;
                }
                // The line break that ends this line begins the next one.
                at = found.end() - usize::from(ends_line);
                let token = pattern.find_at(hay, found.start());
                if let Some(token) = token.filter(|t| t.end() <= found.end()) {
                    return Some(token);
                }
            }
        }
        if !grouped {
            let found = pattern.find_at(hay, at)?;
            at = found.end();
            return Some(found);
        }
        let found = pattern.captures_at(hay, at)?;
        let (whole, token) = (found.get(0)?, found.get(1));
        // The search goes on at the token's end (past `at`: a token is never
        // empty): a delimiter may end one token and begin the next.
        at = token.map_or(whole.end(), |t| t.end());
        Some(token.unwrap_or(whole))
    })
}

/// The text after a context at `from` that its token is read in, and how
/// far into it the token may start. The token starts within `within`
/// characters, and is read whole: a window cut there cut a password in two.
/// Past `within`, the window ends where the `next` context starts, so
/// contexts back to back read each stretch of text about once; a token the
/// cut crosses is read whole (a cut inside an account id made a code of its
/// first digits), to the next space, within [`TOKEN_TAIL_CHARS`].
fn window_after(text: &str, from: usize, next: usize, within: usize) -> (&str, usize) {
    let rest = &text[from..];
    let starts_before = prefix_chars(rest, within).len();
    let cut = (next - from).max(starts_before);
    let tail = rest[cut..]
        .char_indices()
        .take(TOKEN_TAIL_CHARS)
        .find(|(_, c)| c.is_whitespace())
        .map_or_else(
            || prefix_chars(&rest[cut..], TOKEN_TAIL_CHARS).len(),
            |(i, _)| i,
        );
    (&rest[..cut + tail], starts_before)
}

/// Whether a digit stands right before `start` or at `end` of `text`.
fn flanked_by_digits(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    [before, after].into_iter().flatten().any(is_digit)
}

/// `token` without the punctuation a sentence may close it with ("password:
/// Hunter2Secret." then "Hunter2Secret" further on), unless that leaves too
/// little to redact without hiding ordinary words.
fn without_closing_punctuation(token: &str) -> &str {
    let trimmed = token.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
    match trimmed.chars().count() >= MIN_TRIMMED_CHARS {
        true => trimmed,
        false => token,
    }
}

/// The shortest token redacted without its closing punctuation.
const MIN_TRIMMED_CHARS: usize = 6;

/// How far past a rule's `within` a token that starts inside it is read: at
/// least the longest token a rule writes (a password, 128 characters), and a
/// bound, so each context match reads a bounded window (linear in the text).
const TOKEN_TAIL_CHARS: usize = 256;

/// A line at least this long may have been wrapped by a mail client.
const WRAPPED_LINE_CHARS: usize = 60;

/// Lines of a link's tail followed past the one it starts on (a 200-character
/// token wrapped at 72 columns takes three).
const MAX_WRAPPED_LINES: usize = 6;

/// The link that starts at `start` and ends at `end` where a line ends, with
/// its tail on the lines after, when a client hard-wrapped it (a person's
/// plain-text forward): `text[start..]` up to the tail's end, so the
/// [`Redactor`] removes the tail too. A tail is what follows the next line's
/// quote marks (`> > `) up to a space; the first must read as part of a
/// token (a digit, one of `%&=_-/?+~`, or 16 characters), so a word after a
/// link stays; a line after a full tail line is tail whatever it holds.
/// Linear in the text: nothing is read before `end` but the line's last
/// [`WRAPPED_LINE_CHARS`] characters, and each line is read for at most
/// [`MAX_WRAPPED_LINES`] links before it.
fn wrapped_link(text: &str, start: usize, end: usize) -> Option<&str> {
    let ends_a_line = |at: usize| text[at..].starts_with('\n') || text[at..].starts_with("\r\n");
    if !ends_a_line(end) || !is_full_line(&text[..end]) {
        return None;
    }
    let (mut at, mut wrapped_to) = (end, None);
    for line in 0..MAX_WRAPPED_LINES {
        let after_break = text[at..].trim_start_matches('\r').strip_prefix('\n')?;
        let unquoted = after_break.trim_start_matches(['>', ' ']);
        let tail_len = unquoted
            .find(|c: char| c.is_whitespace() || "<>\"')]}".contains(c))
            .unwrap_or(unquoted.len());
        let tail = &unquoted[..tail_len];
        let token_like = line > 0
            || tail.contains(|c: char| c.is_ascii_digit() || "%&=_-/?+~".contains(c))
            || tail.chars().count() >= 16;
        if tail.is_empty() || !token_like {
            break;
        }
        at = text.len() - unquoted.len() + tail_len;
        wrapped_to = Some(at);
        if !ends_a_line(at) || !is_full_line(&text[..at]) {
            break;
        }
    }
    wrapped_to.map(|to| &text[start..to])
}

/// Whether the line `before` ends with holds at least [`WRAPPED_LINE_CHARS`]
/// characters, reading no further back than that.
fn is_full_line(before: &str) -> bool {
    let mut chars = 0;
    for c in before.chars().rev().take(WRAPPED_LINE_CHARS) {
        if c == '\n' {
            return false;
        }
        chars += 1;
    }
    chars == WRAPPED_LINE_CHARS
}

/// Which list of [`FoundSecrets`] a redacted-only value goes to.
enum Apart {
    Spelling,
    Nearby,
}

#[derive(Default)]
struct Collector {
    found: Vec<FoundSecret>,
    spellings: Vec<FoundSecret>,
    /// Values found (each with its index in `found`), and spellings kept: a
    /// value found after it was kept as another's spelling is still found
    /// (it may be the one handed over).
    seen: HashMap<String, usize>,
    spelled: HashSet<String>,
    nearby: Vec<FoundSecret>,
    codes: Vec<usize>,
    read_loosely: bool,
    overflowed: bool,
}

impl Collector {
    fn add(&mut self, kind: SecretKind, value: &str) {
        let found = Found {
            kind,
            code: false,
            every_token: false,
        };
        self.add_from_rule(found, value);
    }

    /// A value that a rule other than a code rule finds too (a password,
    /// a link) is no longer among the codes only the code rules found.
    fn add_from_rule(&mut self, found: Found, value: &str) {
        if value.is_empty() {
            return;
        }
        if let Some(index) = self.seen.get(value) {
            if !found.code {
                self.codes.retain(|i| i != index);
            }
            return;
        }
        if self.found.len() == MAX_SECRETS {
            self.overflowed = true;
            return;
        }
        let index = self.found.len();
        self.seen.insert(value.to_string(), index);
        if found.code {
            self.codes.push(index);
        }
        self.found.push(FoundSecret {
            kind: found.kind,
            value: SecretValue::new(value.to_string()),
        });
    }

    /// `written`, the text's own spelling of the secret `value`, unless the
    /// [`Redactor`] already covers it (the value itself, or it with `&amp;`).
    fn add_spelling(&mut self, kind: SecretKind, value: &str, written: &str) {
        if written != value && written != value.replace('&', "&amp;") {
            self.keep_apart(Apart::Spelling, kind, written);
        }
    }

    /// Another token near a context than the one found: kept apart.
    fn add_nearby(&mut self, kind: SecretKind, written: &str) {
        self.keep_apart(Apart::Nearby, kind, written);
    }

    /// Keeps `written` once, in the list `apart` names, unless a found value
    /// covers it; past the cap, the collector is full.
    fn keep_apart(&mut self, apart: Apart, kind: SecretKind, written: &str) {
        if self.seen.contains_key(written) || !self.spelled.insert(written.to_string()) {
            return;
        }
        let list = match apart {
            Apart::Spelling => &mut self.spellings,
            Apart::Nearby => &mut self.nearby,
        };
        if list.len() == MAX_SECRETS {
            self.overflowed = true;
            return;
        }
        list.push(FoundSecret {
            kind,
            value: SecretValue::new(written.to_string()),
        });
    }

    fn full(&self) -> bool {
        self.overflowed
    }

    fn finish(self) -> FoundSecrets {
        FoundSecrets {
            secrets: self.found,
            spellings: self.spellings,
            overflowed: self.overflowed,
            nearby: self.nearby,
            codes: self.codes,
            read_loosely: self.read_loosely,
        }
    }
}

/// The kind of secret a link is by the first link rule whose host pattern
/// covers its parsed host and whose path pattern matches.
fn link_kind(written: &str, rules: &Rules) -> Option<SecretKind> {
    let url = url::Url::parse(written).ok()?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let mut target = url.path().to_string();
    for (sep, part) in [('?', url.query()), ('#', url.fragment())] {
        if let Some(part) = part {
            target.push(sep);
            target.push_str(part);
        }
    }
    rules.secret_rules().iter().find_map(|rule| match rule {
        SecretRule::Link { kind, hosts, path } => (hosts.iter().any(|h| h.matches(&host))
            && path.as_ref().is_none_or(|p| p.is_match(&target)))
        .then_some(*kind),
        SecretRule::After { .. } => None,
    })
}

/// The kind of a secret link that `link` carries, percent-encoded, as a value
/// of its query, through up to `depth` wrappers: a mail filter's rewritten
/// link (Outlook's Safe Links, a redirect) opens the link it wraps, so it is
/// as secret, though no rule reads the wrapped link's words in it. The
/// wrapper itself is what is found (its host is never AWS's, so it is never
/// handed over). Each level reads a part of the one before: linear.
fn carried_kind(link: &str, rules: &Rules, depth: usize) -> Option<SecretKind> {
    if depth == 0 {
        return None;
    }
    let url = url::Url::parse(link).ok()?;
    url.query_pairs()
        .map(|(_, value)| value)
        .filter(|value| has_scheme(value, &["http://", "https://"]))
        .find_map(|inner| {
            link_kind(&inner, rules).or_else(|| carried_kind(&inner, rules, depth - 1))
        })
}

/// Whether a link's parsed host is `domain` or one of its subdomains (how a
/// secret link is known to be AWS's before it is handed over).
pub fn link_host_within(link: &str, domain: &str) -> bool {
    let Some(pattern) = HostPattern::parse(domain) else {
        return false;
    };
    url::Url::parse(link).ok().is_some_and(|url| {
        url.scheme() == "https"
            && url
                .host_str()
                .is_some_and(|h| pattern.matches(&h.trim_end_matches('.').to_ascii_lowercase()))
    })
}

/// Whether `token` is letters written as a word: all in lower case, or a
/// capital then lower case ("verify", "Thanks"). A code so written cannot
/// be told from a word, and is not taken.
fn is_written_as_word(token: &str) -> bool {
    let mut after_first = token.chars().skip(1);
    token.chars().all(char::is_alphabetic) && after_first.all(char::is_lowercase)
}

/// The digits of a token, full-width ones too ("６１５２７４").
fn digits_in(token: &str) -> usize {
    token.chars().filter(|c| is_digit(*c)).count()
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('０'..='９').contains(&c)
}

/// The last `n` characters of `s` (all of it when shorter; none for 0, as
/// [`prefix_chars`] gives none).
fn suffix_chars(s: &str, n: usize) -> &str {
    match n.checked_sub(1) {
        None => &s[s.len()..],
        Some(last) => s.char_indices().rev().nth(last).map_or(s, |(i, _)| &s[i..]),
    }
}

fn prefix_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// Replaces every known secret value with `[redacted <kind>]`, in one pass over
/// the text (leftmost-longest, so a link that contains a code is replaced whole).
pub struct Redactor {
    needles: Needles,
    placeholders: Vec<String>,
}

/// Up to this many values are searched for one by one: building an
/// Aho-Corasick automaton takes about 10 µs even for two values, more than
/// all of a mail's redactions (profiled: 4.6% of triage).
const FEW_NEEDLES: usize = 8;

enum Needles {
    None,
    Few(Vec<memchr::memmem::Finder<'static>>),
    Many(AhoCorasick),
}

impl Redactor {
    /// A redactor of `secrets`: the found values, and the
    /// [`FoundSecrets::spellings`] of them. An empty value redacts nothing.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a FoundSecret>) -> Self {
        Self::within(secrets, usize::MAX).0
    }

    /// A redactor of `secrets` while the values it searches for (each with
    /// its other spellings) fit in `budget` bytes, and whether all fit.
    /// Its automaton takes about 60 bytes per byte searched for: a mail of
    /// long links made mostly of `&` (each also searched as `&amp;`) made a
    /// megabyte of mail take 2 GB. What does not fit is not redacted, so the
    /// caller must then show none of the text.
    pub fn within<'a>(
        secrets: impl IntoIterator<Item = &'a FoundSecret>,
        budget: usize,
    ) -> (Self, bool) {
        let mut needles = Vec::new();
        let mut placeholders = Vec::new();
        let (mut used, mut fits) = (0usize, true);
        for s in secrets {
            let value = s.value.expose();
            if value.is_empty() {
                continue;
            }
            let mut spelled = vec![value.to_string()];
            if value.contains('&') {
                spelled.push(value.replace('&', "&amp;"));
            }
            // As a ticket shows it: the ticket's text is made inert before
            // it is redacted ("Pa55<img>Word!" shows as "Pa55‹img>Word!").
            let inert = crate::render::defang(value);
            if inert != value {
                spelled.push(inert);
            }
            used = used.saturating_add(spelled.iter().map(String::len).sum());
            if used > budget {
                fits = false;
                break;
            }
            for needle in spelled {
                needles.push(needle);
                placeholders.push(s.kind.placeholder());
            }
        }
        let needles = match needles.len() {
            0 => Needles::None,
            n if n <= FEW_NEEDLES => Needles::Few(
                needles
                    .iter()
                    .map(|n| memchr::memmem::Finder::new(n.as_bytes()).into_owned())
                    .collect(),
            ),
            // An NFA: still few needles per message, so a DFA's build would
            // cost more than all the searches it speeds up.
            _ => Needles::Many(
                AhoCorasick::builder()
                    .kind(Some(AhoCorasickKind::NoncontiguousNFA))
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&needles)
                    .expect("at most a few hundred short needles build"),
            ),
        };
        let redactor = Self {
            needles,
            placeholders,
        };
        (redactor, fits)
    }

    pub fn redact(&self, text: &str) -> String {
        self.redact_keeping(text, &[] as &[&str])
    }

    /// As [`Redactor::redact`], but an occurrence lying wholly inside one of
    /// `kept` stays: strings rootmail writes itself from the directory (the
    /// account's id, customer and address). A sender may declare any text a
    /// secret ("password: 222233334444"), and a real six-digit code can be
    /// part of an account id; either blanked the ticket's headline. A secret
    /// that only overlaps a kept string (a reset link naming the root
    /// address) is still replaced whole.
    pub fn redact_keeping(&self, text: &str, kept: &[impl AsRef<str>]) -> String {
        if matches!(self.needles, Needles::None) {
            return text.to_string();
        }
        let mut within = KeptSpans::of(text, kept);
        let mut out = String::with_capacity(text.len());
        let (mut at, mut keeps_left) = (0, MAX_KEPT_MATCHES);
        self.each_match(text, |start, end, which| {
            if keeps_left > 0 && within.covers(start, end) {
                // Kept: a value that starts inside it may still run past it.
                keeps_left -= 1;
                return start + 1;
            }
            // Values are whole UTF-8 strings, so matches fall on char
            // boundaries; a match starts at or after the last one's end.
            out.push_str(&text[at..start]);
            out.push_str(&self.placeholders[which]);
            at = end;
            end
        });
        out.push_str(&text[at..]);
        out
    }

    /// Every leftmost-longest occurrence of a value from where `found`
    /// (given its start, end and value index) says to go on: its end, or
    /// past its start to look inside it.
    fn each_match(&self, text: &str, found: impl FnMut(usize, usize, usize) -> usize) {
        match &self.needles {
            Needles::None => {}
            Needles::Few(finders) => each_match_of_few(text, finders, found),
            Needles::Many(matcher) => {
                let (mut found, mut at) = (found, 0);
                while at < text.len() {
                    let input = aho_corasick::Input::new(text).span(at..text.len());
                    let Some(m) = matcher.find(input) else { break };
                    at = found(m.start(), m.end(), m.pattern().as_usize());
                }
            }
        }
    }
}

/// Matches kept in one text at most. Each sends the search on from just past
/// its start, so a sender who declares many parts of a kept string secrets
/// and repeats it could make a text's search cost its longest value per
/// byte; past this, matches are replaced as though nothing were kept.
const MAX_KEPT_MATCHES: usize = 256;

/// Where kept strings occur in a text, for matches asked about in order of
/// their start: one pass over the spans in all (linear).
struct KeptSpans {
    /// (start, end), by start.
    spans: Vec<(usize, usize)>,
    next: usize,
    /// The furthest end among the spans that start at or before the last
    /// match asked about.
    reach: usize,
}

impl KeptSpans {
    fn of(text: &str, kept: &[impl AsRef<str>]) -> Self {
        let mut spans: Vec<(usize, usize)> = kept
            .iter()
            .map(AsRef::as_ref)
            .filter(|k| !k.is_empty())
            .flat_map(|k| {
                memchr::memmem::find_iter(text.as_bytes(), k.as_bytes()).map(|s| (s, s + k.len()))
            })
            .collect();
        spans.sort_unstable();
        Self {
            spans,
            next: 0,
            reach: 0,
        }
    }

    /// Whether [start, end) lies inside one span. Starts come in increasing order.
    fn covers(&mut self, start: usize, end: usize) -> bool {
        while let Some(&(_, e)) = self.spans.get(self.next).filter(|(s, _)| *s <= start) {
            self.reach = self.reach.max(e);
            self.next += 1;
        }
        self.reach >= end
    }
}

/// Leftmost-longest matches as Aho-Corasick's: the match that starts
/// first (the longest of those, then the first value given), then on after
/// its end. Each value's next occurrence is kept and searched again only once
/// the matches have passed it, so no part of the text is searched twice
/// for the same value: linear in the text.
fn each_match_of_few(
    text: &str,
    finders: &[memchr::memmem::Finder<'static>],
    mut found: impl FnMut(usize, usize, usize) -> usize,
) {
    let bytes = text.as_bytes();
    let mut next: Vec<Option<usize>> = finders.iter().map(|f| f.find(bytes)).collect();
    let mut at = 0;
    loop {
        for (finder, next) in finders.iter().zip(next.iter_mut()) {
            if next.is_some_and(|start| start < at) {
                *next = finder.find(&bytes[at..]).map(|start| start + at);
            }
        }
        let first = next
            .iter()
            .enumerate()
            .filter_map(|(i, start)| {
                Some(((*start)?, std::cmp::Reverse(finders[i].needle().len()), i))
            })
            .min();
        let Some((start, std::cmp::Reverse(len), i)) = first else {
            break;
        };
        at = found(start, start + len, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(SecretKind, String)> {
        find_secrets(text, &Rules::built_in())
            .into_iter()
            .map(|s| (s.kind, s.value.expose().to_string()))
            .collect()
    }

    /// A password after "password:" is found whole, with or without a space
    /// after the colon; before, the rule's 8-character window kept only a
    /// password's first 8 characters, and none at all after a space.
    #[test]
    fn a_password_is_found_whole() {
        for (text, password) in [
            ("Your temporary password: Xk9#mPq2vL!wz", "Xk9#mPq2vL!wz"),
            ("New password:Hunter2Secret", "Hunter2Secret"),
            ("password :   i-0123abcd then words", "i-0123abcd"),
        ] {
            assert_eq!(
                kinds(text),
                [(SecretKind::Password, password.to_string())],
                "{text}"
            );
        }
        // A token that starts past the window is not the password's.
        assert!(kinds("password:          far-away-token").is_empty());
        // A token longer than the tail read is cut there, still redacting its start.
        let long = "p".repeat(400);
        let found = kinds(&format!("password: {long}"));
        assert_eq!(found[0].1.len(), 128);
    }

    /// A mail filter's rewritten link carries the secret link it opens,
    /// percent-encoded: the wrapper is found as that kind, twice wrapped too.
    #[test]
    fn a_wrapped_secret_link_is_found_whole() {
        let inner = "https%3A%2F%2Fsignin.aws.amazon.com%2Fresetpassword%3Ftype%3DRootUser%26token%3DZq9Xk2PlmN";
        let safe = format!(
            "https://nam12.safelinks.protection.outlook.com/?url={inner}&data=05%7C02&reserved=0"
        );
        let twice = format!(
            "https://www.google.com/url?q={}&sa=D",
            url::form_urlencoded::byte_serialize(safe.as_bytes()).collect::<String>()
        );
        for link in [&safe, &twice] {
            let text = format!("Open {link} to reset.");
            assert_eq!(kinds(&text), [(SecretKind::ResetLink, link.clone())]);
            let shown = redacted(&text);
            assert!(
                !shown.contains("Zq9Xk2PlmN") && !shown.contains("Zq9Xk2"),
                "{shown}"
            );
        }
        // A wrapper of an ordinary page is no secret.
        assert!(
            kinds("https://www.google.com/url?q=https%3A%2F%2Faws.amazon.com%2Fec2%2F").is_empty()
        );
    }

    /// A secret link pasted without its scheme is found and redacted; a
    /// bare link to an ordinary page is not a secret.
    #[test]
    fn a_secret_link_without_its_scheme_is_found() {
        let text =
            "Reset it at signin.aws.amazon.com/resetpassword?type=RootUser&token=Zq9Xk2PlmN today.";
        assert_eq!(
            kinds(text),
            [(
                SecretKind::ResetLink,
                "https://signin.aws.amazon.com/resetpassword?type=RootUser&token=Zq9Xk2PlmN"
                    .to_string()
            )]
        );
        let shown = redacted(text);
        assert_eq!(shown, "Reset it at [redacted reset_link] today.");
        assert!(kinds("See aws.amazon.com/ec2/pricing for prices.").is_empty());
        // With its scheme, one secret, read once.
        let full = "https://signin.aws.amazon.com/resetpassword?token=Zq9Xk2PlmN";
        assert_eq!(kinds(full).len(), 1);
        assert_eq!(redacted(full), "[redacted reset_link]");
    }

    /// A window's end never cuts a token out of a longer word: an account
    /// id the cut crossed gave a "code" of its first eight digits.
    #[test]
    fn a_token_is_never_cut_out_of_a_longer_word() {
        // The first context's reach ends 7 digits into the account id (the
        // second context, right after it, ends its window there).
        let text = format!("code code {} 333344445555 code: 615274", "a".repeat(106));
        let found: Vec<String> = kinds(&text).into_iter().map(|(_, v)| v).collect();
        assert_eq!(found, ["615274"]);
        assert!(redacted(&text).contains("333344445555"));
    }

    /// What the redactor of everything found leaves of `text`.
    fn redacted(text: &str) -> String {
        let found = find_secrets_bounded(text, &Rules::built_in());
        Redactor::new(
            found
                .secrets
                .iter()
                .chain(&found.spellings)
                .chain(&found.nearby),
        )
        .redact(text)
    }

    /// A code written against Japanese, Chinese or Korean text is found: a
    /// Unicode word boundary never lies between は and 6, so the token's
    /// `\b` missed it (and a waiting rotation got no code).
    #[test]
    fn a_code_against_cjk_text_is_found() {
        for text in [
            "確認コードは615274です。",
            "您的验证码是615274。",
            "인증 코드는 615274입니다.",
            "인증번호: 615274",
        ] {
            assert_eq!(
                kinds(text),
                [(SecretKind::VerificationCode, "615274".to_string())],
                "{text}"
            );
        }
    }

    /// Every token in reach of a context is redacted, not only the first
    /// (which alone is handed over), and a password without the full stop
    /// that closed its sentence, where the text repeats it.
    #[test]
    fn every_token_in_reach_is_redacted() {
        let text = "Your verification code for account AWS2026 is 615274.";
        assert_eq!(kinds(text).len(), 1, "one value handed over");
        let shown = redacted(text);
        assert!(
            !shown.contains("615274") && !shown.contains("AWS2026"),
            "{shown}"
        );
        let shown = redacted("New password: Hunter2Secret.\nLog in with Hunter2Secret now.");
        assert!(!shown.contains("Hunter2Secret"), "{shown}");
        // A value kept as another's spelling is still found where a context
        // of its own names it (it may be the code a rotation waits for).
        let text = "code for request AB12CD34: 615274. Verification code: 615274";
        let found: Vec<String> = kinds(text).into_iter().map(|(_, v)| v).collect();
        assert_eq!(found, ["AB12CD34", "615274"]);
    }

    /// Codes as people write them in their own mail: in two groups, in
    /// full-width digits, before the words. Each reached the ticket.
    #[test]
    fn codes_as_people_write_them_are_redacted() {
        for (text, code) in [
            (
                "the verification code, it is 615 274 - can you log in?",
                "615 274",
            ),
            ("the sign-in code: 615-274", "615-274"),
            ("verification code: ６１５２７４", "６１５２７４"),
            ("確認コード：６１５２７４", "６１５２７４"),
            // Split by another space or dash, a middle dot; a digit a cell
            // ("6 1 5 2 7 4" is how a table of one digit per cell reads).
            ("verification code 617\u{b7}274", "617\u{b7}274"),
            ("verification code 610\u{2009}274", "610\u{2009}274"),
            ("verification code 610\u{2212}274", "610\u{2212}274"),
            ("verification code 610\u{3000}274", "610\u{3000}274"),
            ("Your verification code:\n\n6 1 5 2 7 4", "6 1 5 2 7 4"),
            // Other words for a code.
            ("Your one-time password is 615274", "615274"),
            ("MFA token: 615276", "615276"),
            ("PIN 615276", "615276"),
        ] {
            assert_eq!(
                kinds(text),
                [(SecretKind::VerificationCode, code.to_string())],
                "{text}"
            );
        }
        // Ordinary text near those words, as AWS writes it: no code.
        for text in [
            "A new MFA token was registered. Request ID: 7F3A9C21",
            "Tip: pin the Bills page; invoice EUINGB24",
            "card PIN reminder, invoice EUINGB24",
            "Usage by service code:\nAmazonEC2 hours\n744\n720",
            "decline code 05.\nAmount  Tax\n123  456",
        ] {
            assert!(kinds(text).is_empty(), "{text}");
        }
        // Before the words: redacted, never handed over (it is not where
        // any code mail of AWS's puts its code).
        let text = "615274 is the verification code AWS sent me.";
        assert!(kinds(text).is_empty(), "nothing to hand over");
        let shown = redacted(text);
        assert!(!shown.contains("615274"), "{shown}");
        // Farther back than `before`, or cut by its start: left alone.
        let far = "615274 was our order number. Later that day AWS sent a code.";
        assert!(redacted(far).contains("615274"));
        let cut = format!("AB12CD34EF56{}code", " ".repeat(32));
        assert!(redacted(&cut).contains("AB12CD34EF56"), "{cut}");
        // Every token before the words, not only the last; a run of
        // full-width digits longer than a code is no code (as ASCII ones).
        let shown = redacted("Either 615274 or 483920 is the code");
        assert!(
            !shown.contains("615274") && !shown.contains("483920"),
            "{shown}"
        );
        assert!(kinds("コード：１２３４５６７８９０").is_empty());
        // Lower case stays: it is a link's hex, not AWS's code.
        assert!(kinds("approvals?code=b9c59266-2f8c").is_empty());
    }

    /// Root credentials a person pastes besides a password: an IAM secret
    /// access key, a virtual MFA device's secret key or its otpauth:// link,
    /// a password after a dash. Each reached the ticket; an access key id,
    /// which AWS's own exposed-key mail names, is none of them.
    #[test]
    fn pasted_root_credentials_are_found() {
        let seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        for (text, kind, value) in [
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                SecretKind::AccessKeySecret,
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            (
                &format!("The root MFA secret key is {seed}"),
                SecretKind::MfaSeed,
                seed,
            ),
            (
                &format!("otpauth://totp/AWS:root?secret={seed}&issuer=AWS"),
                SecretKind::MfaSeed,
                &format!("totp/AWS:root?secret={seed}&issuer=AWS"),
            ),
            (
                "Root password - Xy7!pQ9#mL2z",
                SecretKind::Password,
                "Xy7!pQ9#mL2z",
            ),
            (
                "Secret key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                SecretKind::AccessKeySecret,
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            (
                "secret_access_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
                SecretKind::AccessKeySecret,
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            (
                "MFA setup key: jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp",
                SecretKind::MfaSeed,
                "jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp",
            ),
            (
                "db_user=root password=CorrectHorse!",
                SecretKind::Password,
                "CorrectHorse!",
            ),
        ] {
            assert_eq!(kinds(text), [(kind, value.to_string())], "{text}");
        }
        for aws in [
            "Access key AKIAIOSFODNN7EXAMPLE and its secret key were found on GitHub.",
            "The exposed secret access key was in https://github.com/acme/infra/blob/main/deploy/terraform/variables.tf",
            "From: password-reset-no-reply@verify.signin.aws",
        ] {
            assert!(kinds(aws).is_empty(), "{aws}");
        }
    }

    /// The ends of a text by characters, as `prefix_chars` takes its starts.
    #[test]
    fn suffix_chars_takes_whole_characters_and_none_for_zero() {
        assert_eq!(suffix_chars("abc", 0), "");
        assert_eq!(prefix_chars("abc", 0), "");
        assert_eq!(suffix_chars("aé", 1), "é");
        assert_eq!(suffix_chars("ab", 5), "ab");
    }

    /// A reset link behind a defanged scheme (`hxxps://`, as security tools
    /// rewrite links) is found like one without a scheme.
    #[test]
    fn a_link_behind_a_defanged_scheme_is_found() {
        let text = "hxxps://signin.aws.amazon.com/resetpassword?token=Zk3nTq9vB2xL&type=RESET";
        assert_eq!(
            kinds(text),
            [(
                SecretKind::ResetLink,
                "https://signin.aws.amazon.com/resetpassword?token=Zk3nTq9vB2xL&type=RESET"
                    .to_string()
            )]
        );
        assert!(!redacted(text).contains("Zk3nTq9vB2xL"));
    }

    /// A ticket's text is made inert before it is redacted: a secret holding
    /// what looks like markup is redacted as the ticket shows it.
    #[test]
    fn a_secret_is_redacted_as_the_ticket_shows_it() {
        let text = "new root password: Pa55<img>Word!";
        let found = find_secrets(text, &Rules::built_in());
        let shown = Redactor::new(&found).redact(&crate::render::defang(text));
        assert!(
            !shown.contains("Pa55") && !shown.contains("Word!"),
            "{shown}"
        );
    }

    #[test]
    fn passwords_are_found_in_more_wordings() {
        for text in [
            "The root password is Hunter2Secret",
            "Root-Passwort: Hunter2Secret",
            "パスワード：Hunter2Secret",
            "Mot de passe : Hunter2Secret",
            // Words between "password" and its colon or "is", on one line.
            "Root password for account 111122223333: Hunter2Secret",
            "Password (root): Hunter2Secret",
            "The password for the root user is Hunter2Secret",
            // Short forms, and a login written as user / password.
            "pwd: Hunter2Secret",
            "passwd=Hunter2Secret",
            "login creds -> root / Hunter2Secret",
            "Credentials: root / Hunter2Secret",
            "Credentials - root / Hunter2Secret",
            "Login credentials for the new account: root / Hunter2Secret",
            "Login as root / Hunter2Secret",
            "credentials are root / Hunter2Secret",
            "Credentials: root user / Hunter2Secret",
            "Login: \"root\" / Hunter2Secret",
            "Creds: root/Hunter2Secret",
            "Login: admin/Hunter2Secret",
            "Creds: root+acme@msp.example/Hunter2Secret",
            "Credentials: root user/Hunter2Secret",
            "Creds:root/Hunter2Secret",
            "login=admin/Hunter2Secret",
            "creds->root/Hunter2Secret",
            "Login - root/Hunter2Secret",
            "Creds: _svc/Hunter2Secret",
        ] {
            assert_eq!(
                kinds(text),
                [(SecretKind::Password, "Hunter2Secret".to_string())],
                "{text}"
            );
        }
        for text in [
            "Creds (root / Hunter2Secret)",
            "Credentials (root/Hunter2Secret)",
        ] {
            assert!(!redacted(text).contains("Hunter2"), "{text}");
        }
        assert!(kinds("A password is required to sign in").is_empty());
        // A link's colon, a time's, a sentence's, AWS's own lines: no
        // password.
        for text in [
            "Confirm your root password at https://evil.example/login first.",
            "Reset password (https://docs.example/help/reset-a-password)",
            "If you did not ask to reset the password, you can ignore this email: the password stays",
            "The password for root was changed at 10:15 on 2026-12-06",
            "Password last changed: 2026-02-03T07:58:12Z",
            "password was changed at 10:15 UTC yesterday.",
            "Sign in at https://111122223333.signin.aws.amazon.com/console with your login",
            "Health check pass: 3 of 3 passed",
            "Health check pass: 203.0.113.25",
            "re:Invent pass: RI26-7XK2QP",
            "enter your login (root user email / 12-digit account ID)",
            "console login / 2026-12-06T10:15:00Z",
            "Console login from a new device / us-east-1",
            "First unusual login activity / 2026-12-06T01:10Z",
            "Root console login: root / 203.0.113.25 (ap-southeast-3)",
            "Last login: 2026/12/06 10:15 UTC",
            "Last login: 06/Dec/2026:10:15:02 +0000",
            "Login: signin.aws.amazon.com/console",
            "https://github.com/globex-example/login-service/blob/main/config2.yml",
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/login-alb/50dc6c495c0c9188",
            "s3://acme-audit/login-audit/2026/12/06/AWSLogs1.json.gz",
            "pip install aws-credentials-helper/requirements2.txt",
            "Console login: acme-prod.signin.aws.amazon.com/console?region=us-east-1",
            "Credentials for the IAM user: console.aws.amazon.com/iam/home#/users/deploy-bot2",
            "Credentials: github.com/acme-corp/infra2/blob/main/.env",
        ] {
            assert!(kinds(text).is_empty(), "{text}");
        }
    }

    /// The few-values path replaces exactly as Aho-Corasick's leftmost-longest
    /// does, on random texts and overlapping, nested and repeated values.
    #[test]
    fn few_values_are_matched_as_aho_corasick_matches_them() {
        let mut next = crate::generator(0x2545_f491_4f6c_dd1d_u64);
        let word = |next: &mut dyn FnMut(usize) -> usize, len: usize| -> String {
            (0..len).map(|_| ['a', 'b', 'é', '&'][next(4)]).collect()
        };
        for _ in 0..3000 {
            let values: Vec<String> = (0..1 + next(FEW_NEEDLES))
                .map(|_| {
                    let len = 1 + next(4);
                    word(&mut next, len)
                })
                .collect();
            let text_len = next(40);
            let text = word(&mut next, text_len);
            let finders: Vec<_> = values
                .iter()
                .map(|v| memchr::memmem::Finder::new(v.as_bytes()).into_owned())
                .collect();
            let automaton = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&values)
                .unwrap();
            let mut few = Vec::new();
            each_match_of_few(&text, &finders, |start, end, i| {
                few.push((start, end, i));
                end
            });
            let wanted: Vec<_> = automaton
                .find_iter(&text)
                .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                .collect();
            assert_eq!(few, wanted, "{values:?} in {text:?}");
        }
    }

    fn redactor_of(values: &[&str]) -> Redactor {
        let secrets: Vec<FoundSecret> = values
            .iter()
            .map(|v| FoundSecret {
                kind: SecretKind::Password,
                value: crate::secret_value::SecretValue::new(v.to_string()),
            })
            .collect();
        Redactor::new(&secrets)
    }

    /// The directory's strings in a ticket stay whole: a value a sender
    /// declared a password, or a code that is part of an account id, is
    /// replaced everywhere else; a secret that only overlaps a kept string
    /// is replaced whole.
    #[test]
    fn a_secret_inside_a_kept_string_leaves_it_whole() {
        let kept = ["222233334444", "Globex Ltd", "root+g@msp.example"];
        for values in [
            vec!["222233334444", "333344"],
            vec!["Ltd", "a", "b", "c", "d", "e", "f", "g", "h", "i"],
        ] {
            let redactor = redactor_of(&values);
            let text = "[Globex Ltd / 222233334444] password: 222233334444, code 333344, Ltd";
            let shown = redactor.redact_keeping(text, &kept);
            assert!(
                shown.starts_with("[Globex Ltd / 222233334444] "),
                "{values:?}: {shown}"
            );
        }
        let shown = redactor_of(&["333344"]).redact_keeping("[222233334444] code 333344", &kept);
        assert_eq!(shown, "[222233334444] code [redacted password]");
        // A value that starts inside a kept match and runs past it.
        for many in [false, true] {
            let mut values = vec!["3333", "334444XYZ"];
            if many {
                values.extend(["a1", "b2", "c3", "d4", "e5", "f6", "g7"]);
            }
            let shown = redactor_of(&values).redact_keeping("222233334444XYZ", &kept);
            assert_eq!(shown, "222233[redacted password]", "{values:?}");
        }
        let link = "https://signin.aws.amazon.com/reset?email=root+g@msp.example&token=Zq9";
        let shown = redactor_of(&[link]).redact_keeping(&format!("go to {link} now"), &kept);
        assert_eq!(shown, "go to [redacted password] now");
        // Nothing kept: as before.
        assert_eq!(
            redactor_of(&["333344"]).redact("[222233334444] 333344"),
            "[2222[redacted password]44] [redacted password]"
        );
    }

    #[test]
    fn codes_after_their_context_are_found() {
        assert_eq!(
            kinds("Your verification code is:\n\n  Q7K2M9\n\nIt expires in 10 minutes."),
            vec![(SecretKind::VerificationCode, "Q7K2M9".to_string())]
        );
        assert_eq!(
            kinds("Verification code: 483920"),
            vec![(SecretKind::VerificationCode, "483920".into())]
        );
        assert!(kinds("Please enter the code below. EXPIRES SOON").is_empty());
    }

    /// The languages AWS writes its code mails in (the signin_otp rule's
    /// words): a code after any of them is a secret, wherever the mail is
    /// from, so a person pasting one into a mail does not put it in a ticket.
    #[test]
    fn codes_after_localized_words_are_found() {
        for sentence in [
            "Votre code de vérification : 615274",
            "Su código de verificación es: 615274",
            "Seu código de verificação: 615274",
            "Il tuo codice di verifica è 615274",
            "Ihr Bestätigungscode lautet: 615274",
            "Verifizierungscode: 615274",
            "Sicherheitscode 615274",
            "Kode verifikasi Anda: 615274",
            "確認コード: 615274",
            "認証コード：615274",
            "인증 코드: 615274",
            "您的验证码：615274",
            "您的驗證碼為 615274",
            "Ваш код подтверждения: 615274",
        ] {
            assert_eq!(
                kinds(sentence),
                vec![(SecretKind::VerificationCode, "615274".to_string())],
                "{sentence}"
            );
        }
        // A word that only contains "code" is not the context.
        assert!(kinds("Barcode 615274 and postcode AB12CD").is_empty());
    }

    /// A code in a box under a paragraph of instructions (an HTML mail's
    /// layout, read as text): alone on its line, it is found up to 400
    /// characters after its words, in any language the code rules know. A
    /// token that shares its line, or stands further off, is not.
    #[test]
    fn a_code_alone_on_its_line_is_found_below_its_instructions() {
        let instructions = "Give it to whoever made the request, who enters it in the \
            console of the management account or sends it with the Account Management \
            API; nothing changes until then.";
        assert!(instructions.len() > 120);
        let code = vec![(SecretKind::VerificationCode, "W6KD3P".to_string())];
        for words in [
            "the one-time code below",
            "確認コード",
            "Ihr Bestätigungscode",
        ] {
            let text = format!("Use {words}. {instructions}\n\n   W6KD3P  \n\nIt expires soon.");
            assert_eq!(kinds(&text), code, "{words}");
        }
        let on_a_line_with_more = format!("The code below. {instructions}\nRef W6KD3P today\n");
        assert!(kinds(&on_a_line_with_more).is_empty());
        let two_to_a_line = format!("The code below. {instructions}\nW6KD3P X7QP21\n");
        assert!(kinds(&two_to_a_line).is_empty());
        let far = format!("The code below. {}\nW6KD3P\n", instructions.repeat(3));
        assert!(kinds(&far).is_empty());
        // The line above ends in a digit; a quoted reply; the shapes the
        // rule above takes, in quotes or stars, after a full-width space;
        // the code's line ends a little after 400 characters, the window's
        // cut (a review of this rule found each one missed or taken).
        for line in [
            "valid for 20 minutes, request 2026\n   615274",
            "\n>\n>     615274",
            "\n\n615 274",
            "\n\n615-274",
            "\n\n6 1 5 2 7 4",
            "\n\n\u{3000}615274",
            "\n\n\"615274\".",
            "\n\n*615274*",
            "\n\n**615274**",
            "\n\n- 615274",
            "\n\n| 615274 |",
            "\n\n(615274)",
            "\n\n「615274」。",
            "\n\n615274:",
            "\n\n\u{205f}615274",
        ] {
            let text = format!("The code below. {instructions}{line}\nThanks");
            let found = kinds(&text);
            assert_eq!(found.len(), 1, "{line:?}: {found:?}");
            assert!(!redacted(&text).contains("274"), "{line:?}");
        }
        // The text's last line needs no line break after it.
        let last = format!("The code below. {instructions}\n\n   615274");
        assert_eq!(
            kinds(&last),
            vec![(SecretKind::VerificationCode, "615274".into())]
        );
        let cut = format!(
            "code code{}\nAB12CD45 was paid on 06 Dec 2026.",
            " lorem".repeat(65)
        );
        assert!(kinds(&cut).is_empty(), "{cut}");
        // Two codes on lines of their own: the first is the code, and the
        // second is redacted too.
        let two = format!("The code below. {instructions}\n\nW6KD3P\r\nX7QP21\n");
        assert_eq!(kinds(&two), code);
        let shown = redacted(&two);
        assert!(
            !shown.contains("W6KD3P") && !shown.contains("X7QP21"),
            "{shown}"
        );
    }

    /// Where a code is no secret (AWS's alerts), what the code rules found
    /// becomes nearby tokens, near its words or alone on a line below them;
    /// a value another rule finds as well, and a link, stay secrets.
    #[test]
    fn codes_can_count_as_nearby_tokens() {
        let instructions = "Give it to whoever made the request, who enters it in the \
            console of the management account or sends it with the Account Management API.";
        let below = format!("The code below. {instructions}\n\n  \"W6KD3P\".\n");
        let near = "Function code: ORDERS26 (PIN 615274)".to_string();
        for text in [below, near] {
            let mut found = find_secrets_bounded(&text, &Rules::built_in());
            assert!(!found.secrets.is_empty(), "{text}");
            found.codes_as_nearby();
            assert!(
                found.secrets.is_empty() && found.spellings.is_empty(),
                "{text}"
            );
            assert!(!found.nearby.is_empty(), "{text}");
        }
        let eight = format!("The code below. {instructions}\n\n  AB12CD34\n");
        let also_a_password = format!("{eight}\nPassword: AB12CD34\n");
        let mut found = find_secrets_bounded(&also_a_password, &Rules::built_in());
        found.codes_as_nearby();
        assert_eq!(found.secrets.len(), 1);
        let link = "Code: https://signin.aws.amazon.com/resetpassword?token=AbC123 W6KD3P";
        let mut found = find_secrets_bounded(link, &Rules::built_in());
        found.codes_as_nearby();
        let kinds: Vec<_> = found.secrets.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [SecretKind::ResetLink]);
    }

    #[test]
    fn reset_links_are_found_with_html_escaped_ampersands() {
        let found = kinds(
            "Reset: https://signin.aws.amazon.com/resetpassword?token=AbC123&amp;type=RESET.",
        );
        assert_eq!(
            found,
            vec![(
                SecretKind::ResetLink,
                "https://signin.aws.amazon.com/resetpassword?token=AbC123&type=RESET".into()
            )]
        );
    }

    /// A reset link a client broke with an apostrophe or a no-break space
    /// inside its token is redacted with the rest of the token; before, the
    /// rest was shown. A quote around a whole link keeps its quotes.
    #[test]
    fn a_link_broken_inside_its_token_is_redacted_with_the_rest() {
        let link = "https://signin.aws.amazon.com/resetpassword?type=RootUser&token=AbCdEf12";
        for breaker in ["'", "\u{a0}", "\u{202f}"] {
            let text = format!("Reset it: {link}{breaker}3456789xyz. Thanks");
            assert_eq!(
                redacted(&text),
                "Reset it: [redacted reset_link]. Thanks",
                "{breaker:?}"
            );
        }
        let quoted = format!("Open '{link}' now");
        assert_eq!(redacted(&quoted), "Open '[redacted reset_link]' now");
        let spaced = format!("Open {link} now");
        assert_eq!(redacted(&spaced), "Open [redacted reset_link] now");
    }

    /// A link written with backslashes opens the same page in a browser
    /// (which reads them as slashes): it is found, once, and redacted as
    /// written. Before, it reached the ticket whole.
    #[test]
    fn a_link_written_with_backslashes_is_found() {
        for link in [
            r"https:\\signin.aws.amazon.com\resetpassword?type=RootUser&token=AbCdEf123456789",
            r"https:\/signin.aws.amazon.com/resetpassword?type=RootUser&token=AbCdEf123456789",
            r"https:\signin.aws.amazon.com\resetpassword?type=RootUser&token=AbCdEf123456789",
            r"https:signin.aws.amazon.com\resetpassword?type=RootUser&token=AbCdEf123456789",
            r"signin.aws.amazon.com\resetpassword?type=RootUser&token=AbCdEf123456789",
        ] {
            let text = format!("Reset it here {link} today");
            assert_eq!(
                kinds(&text).iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                vec![SecretKind::ResetLink],
                "{link}"
            );
            assert_eq!(redacted(&text), "Reset it here [redacted reset_link] today");
        }
        // Glued to the word before, the scheme starts no word: the link is
        // read from its host, and nothing of its token is shown.
        for glued in ["xhttps:", "herehttps://"] {
            let text = format!(
                "Reset {glued}signin.aws.amazon.com/resetpassword?type=RootUser&token=AbCdEf123 now"
            );
            let shown = redacted(&text);
            assert!(
                shown.contains("[redacted reset_link] now") && !shown.contains("AbCdEf"),
                "{shown}"
            );
        }
    }

    #[test]
    fn links_are_secrets_by_their_parsed_host_never_a_substring() {
        for lookalike in [
            "https://login-amazon.com/resetpassword?x=1",
            "https://signin.aws.amazon.com.evil.example/resetpassword",
            "https://signin.aws.amazon.com@evil.example/resetpassword",
            "https://evil.example/signin.aws.amazon.com/resetpassword",
            "https://notsignin.aws/reset",
        ] {
            assert!(kinds(lookalike).is_empty(), "{lookalike}");
        }
        assert_eq!(
            kinds("https://eu-west-1.signin.aws.amazon.com/resetpassword?x=1")[0].0,
            SecretKind::ResetLink
        );
        // A token-bearing link on another host is still kept out of tickets,
        // as a plain verification link (never a reset link a rotation takes).
        assert_eq!(
            kinds("https://login-amazon.com/resetpassword?token=abc123"),
            vec![(
                SecretKind::VerificationLink,
                "https://login-amazon.com/resetpassword?token=abc123".into()
            )]
        );
        assert!(link_host_within(
            "https://signin.aws.amazon.com/resetpassword?t=1",
            "signin.aws.amazon.com"
        ));
        assert!(!link_host_within(
            "http://signin.aws.amazon.com/resetpassword?t=1",
            "signin.aws.amazon.com"
        ));
        assert!(!link_host_within(
            "https://signin.aws.amazon.com@evil.example/",
            "signin.aws.amazon.com"
        ));
    }

    /// A person's client hard-wrapped AWS's reset link (a plain-text
    /// forward, quoted in a reply): the tail on the next lines is part of
    /// the secret. Words after a link that ends a short line stay.
    #[test]
    fn a_wrapped_link_is_redacted_with_its_tail() {
        let link = "https://signin.aws.amazon.com/resetpassword?type=RootUser&token=AbC12";
        for (text, tail) in [
            (
                format!("Reset it here:\n{link}\ndEf456GhIjK789\nThanks"),
                "dEf456GhIjK789",
            ),
            (
                format!(
                    "> {link}\r\n> 3dEf456GhIjK789LmN0pQ7rS8tU9vW0xY1zA2bC3dE4fG5hI6jK7lM8nOpQ9rS0tU1\r\n> Zz_99-Tail\r\n>\r\n> Thanks"
                ),
                "Zz_99-Tail",
            ),
        ] {
            let found = find_secrets_bounded(&text, &Rules::built_in());
            let redactor = Redactor::new(found.secrets.iter().chain(&found.spellings));
            let shown = redactor.redact(&text);
            assert!(!shown.contains(tail), "{shown}");
            assert!(!shown.contains("AbC12"), "{shown}");
            assert!(shown.contains("Thanks"), "{shown}");
        }
        // Nested quotes, and a token wrapped over five lines whose last
        // fragment is short and has no digit.
        let long = format!(
            "> > {link}\n> > {}\n> > {}\n> > {}\n> > xKqPz\n> >\n> > Thanks",
            "Ab".repeat(35),
            "Cd".repeat(35),
            "Ef".repeat(35)
        );
        let found = find_secrets_bounded(&long, &Rules::built_in());
        let redactor = Redactor::new(found.secrets.iter().chain(&found.spellings));
        let shown = redactor.redact(&long);
        for tail in ["AbAb", "CdCd", "EfEf", "xKqPz"] {
            assert!(!shown.contains(tail), "{tail}: {shown}");
        }
        assert!(shown.contains("Thanks"), "{shown}");
        // A link that ends a short line: the next line's word is no tail.
        let short = "Reset: https://signin.aws.amazon.com/resetpassword?t=Ab1\nhere-today 2026\n";
        let found = find_secrets_bounded(short, &Rules::built_in());
        let redactor = Redactor::new(found.secrets.iter().chain(&found.spellings));
        assert!(redactor.redact(short).contains("here-today"));
    }

    #[test]
    fn more_secrets_than_the_cap_overflow() {
        let text: String = (0..MAX_SECRETS + 5)
            .map(|i| format!("code: {:06}\n", 100_000 + i))
            .collect();
        let found = find_secrets_bounded(&text, &Rules::built_in());
        // Each code's window reaches the next ones, kept as its spellings
        // too: those may fill their cap first.
        assert!(found.secrets.len() <= MAX_SECRETS && found.secrets.len() > MAX_SECRETS / 2);
        assert!(found.overflowed);
        let few = find_secrets_bounded("code: 123456 and code: 123456", &Rules::built_in());
        assert_eq!((few.secrets.len(), few.overflowed), (1, false));
    }

    #[test]
    fn a_link_is_one_secret_however_the_text_writes_its_ampersand() {
        let link = "https://signin.aws.amazon.com/resetpassword?token=AbC123&type=RESET";
        let text = ["&amp;", "&#38;", "&#x26;", "&AMP;", "&"]
            .map(|amp| format!("{} ", link.replace('&', amp)))
            .concat();
        let found = find_secrets_bounded(&text, &Rules::built_in());
        let values: Vec<&str> = found.secrets.iter().map(|s| s.value.expose()).collect();
        assert_eq!(values, [link]);
        // `&amp;` the redactor derives from the value; the other three it is given.
        assert_eq!(found.spellings.len(), 3);
        let redactor = Redactor::new(found.secrets.iter().chain(&found.spellings));
        assert_eq!(redactor.redact(&text), "[redacted reset_link] ".repeat(5),);
    }

    #[test]
    fn more_spellings_than_the_cap_overflow() {
        // `&#38;`, `&#038;`, `&#0038;`...: one link, ever more spellings.
        let text: String = (1..MAX_SECRETS + 5)
            .map(|zeros| {
                format!(
                    "https://signin.aws.amazon.com/resetpassword?token=AbC123&#{}38;type=RESET\n",
                    "0".repeat(zeros)
                )
            })
            .collect();
        let found = find_secrets_bounded(&text, &Rules::built_in());
        assert_eq!(found.secrets.len(), 1);
        assert_eq!(found.spellings.len(), MAX_SECRETS);
        assert!(found.overflowed);
    }

    #[test]
    fn redaction_replaces_both_spellings_and_longest_first() {
        let secrets = find_secrets(
            "code: 483920 link https://signin.aws.amazon.com/resetpassword?token=483920&type=RESET",
            &Rules::built_in(),
        );
        let redactor = Redactor::new(&secrets);
        let shown = redactor.redact(
            "a https://signin.aws.amazon.com/resetpassword?token=483920&amp;type=RESET b 483920 c",
        );
        assert_eq!(
            shown,
            "a [redacted reset_link] b [redacted verification_code] c"
        );
    }
}
