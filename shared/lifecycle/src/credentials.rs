//! The secrets a take-over creates: the new root address, a root password and a
//! TOTP seed, all from the operating system's CSPRNG; and the TOTP codes
//! (RFC 6238) computed from a seed for break-glass access.

use data_encoding::{BASE32_NOPAD, Encoding};
use rootmail_domain::{EmailAddress, SecretValue};
use std::sync::LazyLock;
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>, RandomError> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(bytes)
}

/// A uniformly random index below `n` (rejection sampling: no modulo bias).
fn random_below(n: u8) -> Result<usize, RandomError> {
    let limit = u8::MAX - (u8::MAX % n);
    loop {
        let byte = random_bytes(1)?[0];
        if byte < limit {
            return Ok(usize::from(byte % n));
        }
    }
}

/// The Account API's `PrimaryEmail` is at most 64 characters (API reference,
/// StartPrimaryEmailUpdate: "Length Constraints: Minimum length of 5.
/// Maximum length of 64").
pub const MAX_PRIMARY_EMAIL_CHARS: usize = 64;
/// `root-` + 20 random characters + `@`.
const ROOT_ADDRESS_LOCAL_CHARS: usize = 26;
/// The longest root mail domain our addresses fit with.
pub const MAX_ROOT_DOMAIN_CHARS: usize = MAX_PRIMARY_EMAIL_CHARS - ROOT_ADDRESS_LOCAL_CHARS;

/// Why `domain` cannot carry our root addresses, if it cannot.
pub fn root_domain_problem(domain: &str) -> Option<String> {
    let bare = domain.trim().trim_start_matches('@');
    (bare.chars().count() > MAX_ROOT_DOMAIN_CHARS).then(|| {
        format!(
            "the root mail domain {bare} has {} characters; at most {MAX_ROOT_DOMAIN_CHARS} fit, \
             since AWS takes root addresses of at most {MAX_PRIMARY_EMAIL_CHARS} characters \
             and ours are root-<20 characters>@<domain>",
            bare.chars().count()
        )
    })
}

/// A root address nobody can guess: 20 random base32 characters (100 bits) on
/// our domain. The account id is deliberately not in it.
pub fn new_root_address(domain: &str) -> Result<EmailAddress, RandomError> {
    if let Some(problem) = root_domain_problem(domain) {
        return Err(RandomError(problem));
    }
    // 13 bytes are 104 bits, 21 characters; the first 20 carry 100 of them.
    let mut local = BASE32_NOPAD.encode(&random_bytes(13)?);
    local.truncate(20);
    local.make_ascii_lowercase();
    EmailAddress::parse(&format!(
        "root-{local}@{}",
        domain.trim().trim_start_matches('@')
    ))
    .map_err(|e| RandomError(format!("the root mail domain is not usable: {e}")))
}

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
/// Symbols AWS accepts in a root password.
const SYMBOLS: &[u8] = b"!@#$%^&*()_+-=[]{}|'";

/// Root passwords are this long (AWS allows 8 to 128).
pub const PASSWORD_LENGTH: usize = 40;

/// A root password meeting AWS's rules with room to spare: 40 characters with
/// upper, lower, digit and symbol each present.
pub fn new_root_password() -> Result<SecretValue, RandomError> {
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    loop {
        let mut password = Zeroizing::new(String::with_capacity(PASSWORD_LENGTH));
        for _ in 0..PASSWORD_LENGTH {
            let index = random_below(all.len() as u8)?;
            password.push(char::from(all[index]));
        }
        if meets_aws_rules(&password) {
            return Ok(SecretValue::new(password.to_string()));
        }
    }
}

/// 8 to 128 characters with at least three of: upper, lower, digit, symbol.
pub fn meets_aws_rules(password: &str) -> bool {
    let classes = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    (8..=128).contains(&password.chars().count()) && classes.iter().filter(|c| **c).count() >= 3
}

/// A TOTP seed of 20 random bytes, as the base32 text an authenticator takes.
pub fn new_totp_seed() -> Result<SecretValue, RandomError> {
    Ok(SecretValue::new(base32_encode(&random_bytes(20)?)))
}

/// RFC 4648 base32, upper case, no padding (what authenticators expect).
pub fn base32_encode(bytes: &[u8]) -> String {
    BASE32_NOPAD.encode(bytes)
}

/// RFC 4648 base32 as people paste a seed: any case, with spaces, line breaks
/// and `=` padding anywhere ignored, and bits past the last whole byte not
/// checked. A length no encoder writes (1, 3 or 6 characters past a multiple
/// of 8) is refused: it is a mistyped seed.
static BASE32_AS_PASTED: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = BASE32_NOPAD.specification();
    spec.translate.from = "abcdefghijklmnopqrstuvwxyz".into();
    spec.translate.to = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".into();
    spec.ignore = " \t\r\n\x0b\x0c=".into();
    spec.check_trailing_bits = false;
    spec.encoding()
        .expect("base32 with a translation and ignored characters is a valid specification")
});

/// The bytes of a base32 seed ([`BASE32_AS_PASTED`]), decoded straight into
/// memory that is wiped on drop; `None` when it is not base32.
pub fn base32_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let encoding = &*BASE32_AS_PASTED;
    let mut out = Zeroizing::new(vec![0u8; encoding.decode_len(text.len()).ok()?]);
    let len = encoding.decode_mut(text.as_bytes(), &mut out).ok()?;
    out.truncate(len);
    Some(out)
}

/// The 6-digit TOTP code (RFC 6238: HMAC-SHA1, 30-second steps) at `unix_secs`.
pub fn totp_code(seed_base32: &SecretValue, unix_secs: u64) -> Option<SecretValue> {
    let key = base32_decode(seed_base32.expose())?;
    Some(SecretValue::new(totp(&key, 6).generate(unix_secs)))
}

/// HMAC-SHA1 TOTP over `key`, 30-second steps, the time always given (no
/// clock of its own). Unchecked: `TOTP::new` refuses keys under 128 bits, and
/// the console's seeds we accept start at 80 (16 characters). The crate's copy
/// of the key is wiped on drop (its `zeroize` feature).
fn totp(key: &[u8], digits: usize) -> TOTP {
    TOTP::new_unchecked(Algorithm::SHA1, digits, 0, 30, key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238_test_vectors() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", 8 digits.
        let key = b"12345678901234567890";
        for (time, expected) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp(key, 8).generate(time), expected, "T={time}");
        }
        let seed = SecretValue::new(base32_encode(key));
        assert_eq!(seed.expose(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(totp_code(&seed, 59).unwrap().expose(), "287082");
    }

    #[test]
    fn base32_round_trips() {
        for n in 0..25 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(*base32_decode(&base32_encode(&bytes)).unwrap(), bytes);
        }
        assert!(base32_decode("not base32 1").is_none());
    }

    #[test]
    fn a_seed_decodes_as_people_paste_it() {
        let key = b"12345678901234567890";
        for pasted in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "GEZDGNBV\nGY3TQOJQ\r\nGEZDGNBV\tGY3TQOJQ",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ======",
        ] {
            assert_eq!(
                base32_decode(pasted).as_deref().map(Vec::as_slice),
                Some(&key[..]),
                "{pasted:?}"
            );
        }
        // Bits past the last byte are not checked ("ME" and "MF" are both "a").
        assert_eq!(*base32_decode("MF").unwrap(), b"a");
        assert_eq!(*base32_decode("ME").unwrap(), b"a");
        // No encoder writes 1, 3 or 6 characters past a multiple of 8: the
        // hand-written decoder took such a seed and dropped the extra bits.
        for mistyped in ["GEZDGNBVGY3TQOJQA", "GEZDGNBVGY3TQOJQGEZ", "G"] {
            assert!(base32_decode(mistyped).is_none(), "{mistyped}");
        }
        assert!(base32_decode("GEZDGNBV0").is_none());
    }

    #[test]
    fn passwords_follow_aws_rules_and_differ() {
        let a = new_root_password().unwrap();
        let b = new_root_password().unwrap();
        assert_ne!(a.expose(), b.expose());
        for p in [&a, &b] {
            assert_eq!(p.expose().chars().count(), PASSWORD_LENGTH);
            assert!(meets_aws_rules(p.expose()));
            assert!(p.expose().chars().all(|c| c.is_ascii_graphic()));
        }
        assert!(!meets_aws_rules("short1A"));
        assert!(!meets_aws_rules("alllowercaseletters"));
        assert_eq!(format!("{a:?}"), "[redacted]");
    }

    #[test]
    fn a_root_address_never_exceeds_what_the_account_api_takes() {
        let longest = format!("{}.example.com", "d".repeat(MAX_ROOT_DOMAIN_CHARS - 12));
        let address = new_root_address(&longest).unwrap();
        assert_eq!(address.as_str().chars().count(), MAX_PRIMARY_EMAIL_CHARS);
        let too_long = format!("x{longest}");
        let error = new_root_address(&too_long).unwrap_err().to_string();
        assert!(error.contains("at most 38"), "{error}");
    }

    #[test]
    fn root_addresses_are_unguessable_and_on_our_domain() {
        let a = new_root_address("root.example-msp.com").unwrap();
        let b = new_root_address("@root.example-msp.com").unwrap();
        assert_ne!(a, b);
        assert!(a.as_str().ends_with("@root.example-msp.com"));
        assert_eq!(
            a.as_str().split('@').next().unwrap().len(),
            "root-".len() + 20
        );
        assert!(new_root_address("not a domain").is_err());
    }
}
