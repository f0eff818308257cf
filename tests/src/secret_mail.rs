//! Generated mail holding fresh secrets, of every secret-bearing kind: each
//! corpus fixture listed in `SECRETS.tsv` whose secret appears in its raw text,
//! with the secret (or a link's token) replaced by random characters of the
//! same classes and a Message-ID of its own. Deterministic per seed.

use crate::leaks::link_tokens;
use crate::{XorShift, corpus_dir, known_secrets};

/// One generated message and the secret it holds.
pub struct SecretMail {
    /// An object or file name, unique per message.
    pub name: String,
    pub raw: Vec<u8>,
    pub secret: String,
}

/// `n` messages, cycling through the fixtures.
pub fn generate(n: usize, seed: u64) -> Vec<SecretMail> {
    let mut rng = XorShift::new(seed);
    let templates = templates();
    assert!(!templates.is_empty(), "secret fixtures exist");
    (0..n)
        .map(|i| {
            let (fixture, raw, secret) = &templates[i % templates.len()];
            let fresh = fresh_secret(secret, &mut rng);
            let mut text = raw.replace(secret.as_str(), &fresh);
            // HTML parts write a link's `&` as `&amp;`.
            text = text.replace(&secret.replace('&', "&amp;"), &fresh.replace('&', "&amp;"));
            let text = unique_message_id(&text, i, seed);
            let kind = fixture.split('/').next().unwrap_or("mail");
            SecretMail {
                name: format!("generated-{seed:x}-{i:05}-{kind}"),
                raw: text.into_bytes(),
                secret: fresh,
            }
        })
        .collect()
}

/// `(fixture, raw text, secret)` for each fixture whose secret is in its raw text
/// as written (not base64 or quoted-printable, which a text replace cannot reach).
fn templates() -> Vec<(String, String, String)> {
    known_secrets()
        .into_iter()
        .filter_map(|(fixture, secret)| {
            let raw = std::fs::read_to_string(corpus_dir().join(&fixture)).ok()?;
            raw.contains(&secret).then_some((fixture, raw, secret))
        })
        .collect()
}

/// The same shape with other characters: a code entirely, a link in its tokens.
fn fresh_secret(secret: &str, rng: &mut XorShift) -> String {
    let tokens = link_tokens(secret);
    if secret.contains("://") {
        tokens.iter().fold(secret.to_string(), |link, token| {
            link.replace(token, &scramble(token, rng))
        })
    } else {
        scramble(secret, rng)
    }
}

fn scramble(value: &str, rng: &mut XorShift) -> String {
    let mut pick = |from: &[u8]| from[(rng.next_u64() % from.len() as u64) as usize] as char;
    value
        .chars()
        .map(|c| match c {
            '0'..='9' => pick(b"0123456789"),
            'A'..='Z' => pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            'a'..='z' => pick(b"abcdefghijklmnopqrstuvwxyz"),
            other => other,
        })
        .collect()
}

fn unique_message_id(text: &str, i: usize, seed: u64) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut replaced = false;
    for line in text.split_inclusive('\n') {
        let header = line
            .split_once(':')
            .map(|(name, _)| name.to_ascii_lowercase());
        if !replaced && header.as_deref() == Some("message-id") {
            out.push_str(&format!(
                "Message-ID: <generated-{seed:x}-{i}@rootmail.test>\r\n"
            ));
            replaced = true;
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_holds_its_fresh_secret_and_not_the_fixtures() {
        let mail = generate(40, 9);
        let fixtures: Vec<String> = known_secrets().into_iter().map(|(_, s)| s).collect();
        for m in &mail {
            let text = String::from_utf8_lossy(&m.raw);
            assert!(text.contains(&m.secret), "{}", m.name);
            assert!(!fixtures.contains(&m.secret), "{}: a fresh secret", m.name);
            assert!(
                text.contains("@rootmail.test>"),
                "{}: its own Message-ID",
                m.name
            );
        }
        let kinds: std::collections::BTreeSet<_> = mail
            .iter()
            .map(|m| m.name.rsplit('-').next().unwrap_or_default().to_string())
            .collect();
        assert!(kinds.len() >= 8, "{kinds:?}");
    }
}
