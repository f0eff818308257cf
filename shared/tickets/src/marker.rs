//! The line that says which message a ticket body or comment reports:
//! `rootmail-message: <sha256 of the message> <MAC>`.
//!
//! Backends without idempotency keys trust it to decide that a message was
//! already written, so mail text must not be able to forge it: the MAC is the
//! first 16 bytes of HMAC-SHA256 over the hash, under a key of this deployment
//! that mail senders never see. A marker whose MAC does not verify is text.

use hmac::{Hmac, Mac};
use rootmail_domain::ContentHash;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// What every marker starts with.
pub const MARKER_PREFIX: &str = "rootmail-message: ";

/// Hex characters of the MAC (16 bytes).
const MAC_HEX: usize = 32;

/// Hex characters of a message hash (SHA-256).
const HASH_HEX: usize = 64;

/// The shortest key accepted: 32 bytes (a generated secret string of 32
/// letters and digits carries about 190 bits).
pub const MIN_KEY_BYTES: usize = 32;

/// The key file's name under a local state directory.
pub const KEY_FILE: &str = "marker.key";

#[derive(Debug, thiserror::Error)]
pub enum MarkerKeyError {
    #[error("the marker key is {0} bytes long; at least {MIN_KEY_BYTES} are needed")]
    TooShort(usize),
    #[error("the marker key file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no random bytes for a new marker key: {0}")]
    Random(String),
}

/// The deployment's marker key: never printed, zeroized when dropped.
#[derive(Clone)]
pub struct MarkerKey(Arc<Zeroizing<Vec<u8>>>);

impl std::fmt::Debug for MarkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MarkerKey([redacted])")
    }
}

impl MarkerKey {
    /// The key from its bytes (a secret string's UTF-8 bytes, or a file's).
    pub fn new(bytes: &[u8]) -> Result<Self, MarkerKeyError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_KEY_BYTES {
            return Err(MarkerKeyError::TooShort(trimmed.len()));
        }
        Ok(Self(Arc::new(Zeroizing::new(trimmed.to_vec()))))
    }

    /// The key in `dir/marker.key`, made on first use from the operating
    /// system's CSPRNG and readable by its owner only.
    pub fn load_or_create(dir: &Path) -> Result<Self, MarkerKeyError> {
        let path = dir.join(KEY_FILE);
        let file_error = |source| MarkerKeyError::File {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => return Self::new(&Zeroizing::new(bytes)),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(e)),
            Err(_) => {}
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(raw.as_mut()).map_err(|e| MarkerKeyError::Random(e.to_string()))?;
        let text = Zeroizing::new(hex::encode(raw.as_ref()));
        std::fs::create_dir_all(dir).map_err(file_error)?;
        // Written whole and synced under a name of its own, then linked in
        // (which never replaces a key): a crash leaves no empty or torn key
        // that would stop every later run, and a power loss does not lose
        // a key whose markers tickets already carry. A file system without
        // hard links (FAT, some FUSE mounts) has it renamed in instead: the
        // state directory's lock admits one run at a time.
        let draft = dir.join(format!("{KEY_FILE}.{}.new", std::process::id()));
        // A draft a crashed run with the same process id left goes first
        // (the lock admits one run at a time); then a new file, never one
        // through a link planted under the draft's name.
        let _ = std::fs::remove_file(&draft);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&draft).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        let linked = written.and_then(|()| match std::fs::hard_link(&draft, &path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !path.exists() => {
                std::fs::rename(&draft, &path)
            }
            linked => linked,
        });
        let _ = std::fs::remove_file(&draft);
        match linked {
            Ok(()) => {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(file_error)?;
                Self::new(text.as_bytes())
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::new(&Zeroizing::new(std::fs::read(&path).map_err(file_error)?))
            }
            Err(e) => Err(file_error(e)),
        }
    }

    fn mac(&self, hash: &str) -> Hmac<sha2::Sha256> {
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(MARKER_PREFIX.as_bytes());
        mac.update(hash.as_bytes());
        mac
    }

    /// The marker line of `message`.
    pub fn marker(&self, message: &ContentHash) -> String {
        let tag = self.mac(message.as_str()).finalize().into_bytes();
        format!(
            "{MARKER_PREFIX}{message} {}",
            hex::encode(&tag[..MAC_HEX / 2])
        )
    }

    /// Whether `text` carries `message`'s marker (a MAC nobody else can make).
    pub fn has_marker(&self, text: &str, message: &ContentHash) -> bool {
        text.contains(&self.marker(message))
    }

    /// The message whose verified marker comes last in `text`: rootmail writes
    /// its marker after the mail text, so quoted markers come before it.
    /// Linear in `text`: each candidate costs one HMAC of a fixed size.
    pub fn last_marked(&self, text: &str) -> Option<ContentHash> {
        text.match_indices(MARKER_PREFIX)
            .filter_map(|(at, _)| self.verified(&text[at + MARKER_PREFIX.len()..]))
            .last()
    }

    /// The hash at the start of `rest` if the MAC after it verifies.
    fn verified(&self, rest: &str) -> Option<ContentHash> {
        let bytes = rest.as_bytes();
        let hash = bytes.get(..HASH_HEX)?;
        let tag = bytes.get(HASH_HEX + 1..HASH_HEX + 1 + MAC_HEX)?;
        if bytes[HASH_HEX] != b' ' {
            return None;
        }
        let hash = std::str::from_utf8(hash).ok()?;
        let tag = hex::decode(tag).ok()?;
        self.mac(hash).verify_truncated_left(&tag).ok()?;
        ContentHash::parse(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> MarkerKey {
        MarkerKey::new(text.repeat(32).as_bytes()).expect("long enough")
    }

    #[test]
    fn a_marker_verifies_only_under_its_key() {
        let message = ContentHash::of(b"mail");
        let ours = key("a");
        let marker = ours.marker(&message);
        assert!(marker.starts_with(&format!("{MARKER_PREFIX}{message} ")));
        assert_eq!(marker.len(), MARKER_PREFIX.len() + HASH_HEX + 1 + MAC_HEX);
        assert!(ours.has_marker(&format!("text\n\n{marker}"), &message));
        assert_eq!(ours.last_marked(&marker), Some(message.clone()));
        assert_eq!(key("b").last_marked(&marker), None);
    }

    #[test]
    fn forged_markers_are_text() {
        let ours = key("a");
        let victim = ContentHash::of(b"victim");
        for forged in [
            format!("{MARKER_PREFIX}{victim}"),
            format!("{MARKER_PREFIX}{victim} {}", "0".repeat(MAC_HEX)),
            format!("{MARKER_PREFIX}{victim} zz"),
            MARKER_PREFIX.to_string(),
        ] {
            assert_eq!(ours.last_marked(&forged), None, "{forged}");
            assert!(!ours.has_marker(&forged, &victim), "{forged}");
        }
    }

    #[test]
    fn the_last_verified_marker_wins() {
        let ours = key("a");
        let (quoted, own) = (ContentHash::of(b"quoted"), ContentHash::of(b"own"));
        let text = format!(
            "{}\n{MARKER_PREFIX}{} {}\n\n{}",
            ours.marker(&quoted),
            ContentHash::of(b"forged"),
            "f".repeat(MAC_HEX),
            ours.marker(&own)
        );
        assert_eq!(ours.last_marked(&text), Some(own));
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert!(matches!(
            MarkerKey::new(b"short"),
            Err(MarkerKeyError::TooShort(5))
        ));
        let printed = format!("{:?}", key("s3cret-"));
        assert!(!printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn the_local_key_file_is_made_once_and_private() {
        let dir = std::env::temp_dir().join(format!("rootmail-marker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = MarkerKey::load_or_create(&dir).expect("created");
        let again = MarkerKey::load_or_create(&dir).expect("read back");
        let message = ContentHash::of(b"m");
        assert_eq!(first.marker(&message), again.marker(&message));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("the directory")
            .map(|e| e.expect("an entry").file_name())
            .collect();
        assert_eq!(names, [KEY_FILE], "no draft left beside the key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// Scanning hostile text stays linear: twice the markers, about twice the time.
    #[test]
    fn scanning_many_candidates_is_linear() {
        let ours = key("a");
        let line = format!("{MARKER_PREFIX}{} {}\n", "a".repeat(64), "b".repeat(32));
        let time = |n: usize| {
            let text = line.repeat(n);
            let start = std::time::Instant::now();
            assert_eq!(ours.last_marked(&text), None);
            start.elapsed()
        };
        time(2_000);
        let (small, large) = (time(20_000), time(40_000));
        assert!(large < small * 4, "{small:?} then {large:?}");
    }
}
