//! Finding secrets in mail text and keeping them out of everything shown.

use crate::rules::{Rules, SecretRule};
use crate::secret::{FoundSecret, SecretKind, SecretValue};
use regex::Regex;
use std::sync::LazyLock;

static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\bhttps?://[^\s<>"'\)\]\}]+"#).expect("static regex"));

/// Every secret in `text`, each value once, in order of appearance.
pub fn find_secrets(text: &str, rules: &Rules) -> Vec<FoundSecret> {
    let mut found: Vec<FoundSecret> = Vec::new();
    let mut add = |kind: SecretKind, value: &str| {
        if !value.is_empty() && !found.iter().any(|f| f.value.expose() == value) {
            found.push(FoundSecret {
                kind,
                value: SecretValue::new(value.to_string()),
            });
        }
    };
    for m in URL.find_iter(text) {
        let url = m
            .as_str()
            .trim_end_matches(['.', ',', ';', ':', '!', '?'])
            .replace("&amp;", "&");
        let kind = rules.secret_rules().iter().find_map(|rule| match rule {
            SecretRule::Url { kind, pattern } if pattern.is_match(&url) => Some(*kind),
            _ => None,
        });
        if let Some(kind) = kind {
            add(kind, &url);
        }
    }
    for rule in rules.secret_rules() {
        let SecretRule::After {
            kind,
            context,
            token,
            within,
            min_digits,
        } = rule
        else {
            continue;
        };
        for m in context.find_iter(text) {
            let window = prefix_chars(&text[m.end()..], *within);
            let hit = token.find_iter(window).find(|t| {
                t.as_str().bytes().filter(u8::is_ascii_digit).count() >= *min_digits
                    && !URL.is_match(t.as_str())
            });
            if let Some(t) = hit {
                add(*kind, t.as_str());
            }
        }
    }
    found
}

fn prefix_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// Replaces every known secret value with `[redacted <kind>]`.
pub struct Redactor<'a> {
    /// (value as it may appear, placeholder), longest first so a link that contains
    /// a code is replaced whole.
    needles: Vec<(String, String)>,
    _secrets: std::marker::PhantomData<&'a FoundSecret>,
}

impl<'a> Redactor<'a> {
    pub fn new(secrets: &'a [FoundSecret]) -> Self {
        let mut needles = Vec::new();
        for s in secrets {
            let value = s.value.expose();
            needles.push((value.to_string(), s.kind.placeholder()));
            if value.contains('&') {
                needles.push((value.replace('&', "&amp;"), s.kind.placeholder()));
            }
        }
        needles.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        Self {
            needles,
            _secrets: std::marker::PhantomData,
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (needle, placeholder) in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), placeholder);
            }
        }
        out
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
