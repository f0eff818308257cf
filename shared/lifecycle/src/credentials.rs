//! The secrets a take-over creates: the new root address, a root password and a
//! TOTP seed, all from the operating system's CSPRNG; and the TOTP codes
//! (RFC 6238) computed from a seed for break-glass access.

use hmac::{Hmac, Mac};
use rootmail_domain::{EmailAddress, SecretValue};
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

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

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
    let local: String = random_bytes(20)?
        .iter()
        .map(|b| char::from(BASE32[usize::from(b % 32)]))
        .collect();
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
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]).to_ascii_uppercase());
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]).to_ascii_uppercase());
    }
    out
}

pub fn base32_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let value = BASE32
            .iter()
            .position(|b| char::from(*b) == c.to_ascii_lowercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The 6-digit TOTP code (RFC 6238: HMAC-SHA1, 30-second steps) at `unix_secs`.
pub fn totp_code(seed_base32: &SecretValue, unix_secs: u64) -> Option<SecretValue> {
    let key = base32_decode(seed_base32.expose())?;
    Some(SecretValue::new(format!(
        "{:06}",
        hotp(&key, unix_secs / 30, 1_000_000)
    )))
}

/// RFC 4226 HOTP, truncated to `modulus` (10^digits).
fn hotp(key: &[u8], counter: u64, modulus: u32) -> u32 {
    let mut mac =
        <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let code = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    code % modulus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238_test_vectors() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", 8 digits.
        let key = b"12345678901234567890";
        for (time, expected) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_234_567_890, 89_005_924),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(key, time / 30, 100_000_000), expected, "T={time}");
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
