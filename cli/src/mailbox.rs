//! Where a provider's existing root mail lives: `.eml` files, mbox files (one
//! file, each message after a `From ` line) and Maildirs (`cur/` and `new/`,
//! one file per message, any name). Each message is a [`MessageRef`]: an mbox
//! is scanned once for where its messages start and each is read on its own,
//! so memory stays one message's worth whatever the size of the mailbox.
//!
//! Not mail-parser's `mailbox::mbox::MessageIterator`: it splits at every line
//! that begins `From ` (also one in a body, with no empty line before it),
//! reads a line whole however long, and yields bytes in sequence, where
//! `triage` hands messages to several workers by their place in the file.

use rootmail_domain::ContentHash;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One message among the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    /// Shared by every message of one mbox: a backfill of millions holds
    /// one copy of its path, not one per message.
    pub path: Arc<Path>,
    /// Within an mbox: its number (from 1) and its bytes after the `From ` line.
    in_mbox: Option<(usize, Span)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    len: u64,
}

impl Span {
    fn between(start: u64, end: u64) -> Self {
        Self {
            start,
            len: end.saturating_sub(start),
        }
    }
}

impl MessageRef {
    pub fn file(path: PathBuf) -> Self {
        Self {
            path: Arc::from(path),
            in_mbox: None,
        }
    }

    /// Where it is, as the ledger keys one it could not read: the file's
    /// canonical path (a relative and an absolute path to one file are one
    /// place), its name's bytes as they are (two names a terminal shows
    /// alike are two places), and for an mbox's message its number.
    pub fn place(&self) -> String {
        let file = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.to_path_buf());
        let written = match file.to_str() {
            Some(text) => text.to_string(),
            None => format!("bytes:{}", hex_of(file.as_os_str().as_encoded_bytes())),
        };
        match self.in_mbox {
            Some((n, _)) => format!("{written}#{n}"),
            None => written,
        }
    }

    /// What output and the ledger call it: the file, or `box.mbox#12`.
    pub fn label(&self) -> PathBuf {
        match self.in_mbox {
            None => self.path.to_path_buf(),
            // Built on the path's bytes, not its display: a name that is no
            // UTF-8 keeps its bytes.
            Some((n, _)) => {
                let mut label = self.path.as_os_str().to_os_string();
                label.push(format!("#{n}"));
                PathBuf::from(label)
            }
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads messages, keeping the last mbox it read open: a worker reads an
/// mbox's messages one after another, and opening the file again for each
/// (then seeking, then reading in small steps) was most of a backfill's
/// system calls. One file open per reader, so any number of mboxes is fine.
#[derive(Default)]
pub struct Reader {
    open: Option<(Arc<Path>, File)>,
}

/// The largest message a run reads: what SES accepts, the limit mail-ingest
/// keeps. A larger one is not read into memory (a mailbox export can hold
/// anything, up to a file of gigabytes that would end the run at the same
/// place every time): the run records it as unreadable, a quarantine with a
/// ticket.
pub const MAX_MESSAGE_BYTES: u64 = rootmail_aws::mail::SES_MAX_MESSAGE_BYTES;

/// Why a pipe or a device is not read: it would block the run.
fn not_a_regular_file() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "not a regular file: not read",
    )
}

/// A message over [`MAX_MESSAGE_BYTES`], refused unread, and the hash of
/// its bytes (read in pieces): the ledger keys it by that, so the same
/// message found again (a Maildir file moved from `new/` to `cur/`, a path
/// written another way) is the same row, and another message at the same
/// place (an mbox exported again) is a row of its own.
#[derive(Debug)]
pub struct TooLarge {
    pub bytes: u64,
    pub hash: ContentHash,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes, over the {} MiB a message may have (as SES accepts): not read",
            self.bytes,
            MAX_MESSAGE_BYTES >> 20
        )
    }
}

impl std::error::Error for TooLarge {}

impl TooLarge {
    /// Its ledger key: its bytes' hash, apart from any message's key.
    pub fn ledger_key(&self) -> ContentHash {
        ContentHash::of_parts(&[b"too-large", self.hash.as_str().as_bytes()])
    }
}

/// The error of a message of `bytes` bytes over the limit, which `bytes`
/// (what is left of its reader) gives for its hash.
fn too_large(bytes: u64, content: impl Read) -> std::io::Error {
    match ContentHash::of_reader(content.take(bytes)) {
        Ok(hash) => std::io::Error::new(std::io::ErrorKind::InvalidData, TooLarge { bytes, hash }),
        Err(e) => e,
    }
}

impl Reader {
    /// The message's bytes; an mbox message with its `>From ` lines
    /// unquoted. Refused unread: a message over [`MAX_MESSAGE_BYTES`], and a
    /// file that is not a regular file (a pipe would block the run).
    pub fn read(&mut self, message: &MessageRef) -> std::io::Result<Vec<u8>> {
        let Some((_, span)) = message.in_mbox else {
            return read_message_file(&message.path);
        };
        if span.len > MAX_MESSAGE_BYTES {
            let mut file = File::open(&message.path)?;
            file.seek(SeekFrom::Start(span.start))?;
            return Err(too_large(span.len, file));
        }
        let file = match &mut self.open {
            Some((path, file)) if *path == message.path => file,
            open => {
                let file = File::open(&message.path)?;
                &mut open.insert((message.path.clone(), file)).1
            }
        };
        let len = usize::try_from(span.len).map_err(std::io::Error::other)?;
        let mut raw = vec![0; len];
        // A file cut short since it was scanned fails here, not silently.
        read_exact_at(file, &mut raw, span.start)?;
        Ok(unquote_from_lines(&raw))
    }
}

/// A message file, at most [`MAX_MESSAGE_BYTES`] of it: the size checked
/// is the open file's, and the read stops past the limit, so a file that
/// grows (or a path swapped for a device) after the check reads no more.
fn read_message_file(path: &Path) -> std::io::Result<Vec<u8>> {
    // Opening a pipe would wait for a writer: looked at before it is opened.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_a_regular_file());
    }
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_a_regular_file());
    }
    if meta.len() > MAX_MESSAGE_BYTES {
        return Err(too_large(meta.len(), file));
    }
    let mut raw = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_MESSAGE_BYTES + 1).read_to_end(&mut raw)?;
    if raw.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "grew past the {} MiB a message may have while it was read: not read",
                MAX_MESSAGE_BYTES >> 20
            ),
        ));
    }
    // An mbox separator some programs leave above a saved message: no
    // header begins `From ` (a field name ends at its colon).
    if raw.starts_with(b"From ") {
        let line = raw
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |n| n + 1);
        raw.drain(..line);
    }
    Ok(raw)
}

#[cfg(unix)]
fn read_exact_at(file: &mut File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(not(unix))]
fn read_exact_at(file: &mut File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

/// Whether `path` is an mbox: named `*.mbox`, or a file that starts with a
/// `From ` line (how every mbox writer begins one).
pub fn is_mbox(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mbox"))
    {
        return true;
    }
    // Opening a pipe would wait for a writer: only a regular file is looked into.
    if !path.is_file() {
        return false;
    }
    let mut start = [0u8; 5];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok_and(|()| &start == b"From ")
}

/// Whether `dir` is a Maildir's message folder: `cur` or `new` beside `tmp`,
/// or beside each other (an export by zip or git drops the empty `tmp/`).
pub fn is_maildir_folder(dir: &Path) -> bool {
    is_cur_or_new(dir)
        && dir.parent().is_some_and(|p| {
            p.join("tmp").is_dir() || (p.join("cur").is_dir() && p.join("new").is_dir())
        })
}

/// Whether a file named `name` in `dir` is a Maildir message although `dir`
/// is no [`is_maildir_folder`]: `dir` is a `cur` or `new` copied alone (an
/// export that keeps only the folder with mail in it), and the name is the
/// Maildir's own: its flags after `:2,` (`!2,` where `:` may not stand), or
/// the delivery time first (`1764900000.M1P1.host`).
pub fn is_maildir_message_name(dir: &Path, name: &str) -> bool {
    let flags = name.contains(":2,") || name.contains("!2,");
    // `time.unique.host`: two dots at least (`2024.csv` is no such name).
    let timed = name.split_once('.').is_some_and(|(time, rest)| {
        !time.is_empty() && time.bytes().all(|b| b.is_ascii_digit()) && rest.contains('.')
    });
    is_cur_or_new(dir) && (flags || timed)
}

/// A Maildir's message folders are named `cur` and `new`.
fn is_cur_or_new(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n == "cur" || n == "new")
}

/// An mbox as scanned: its messages in order, how many bytes before its
/// first `From ` line are no message (0 for a well-formed mbox), and the
/// lines that begin `From ` but were read inside a message ([`Unsplit`]).
pub struct Mbox {
    pub messages: Vec<MessageRef>,
    pub leading: u64,
    pub unsplit: Unsplit,
    /// Separators (`From SENDER DATE`, with or without an empty line before
    /// it, a bare `From `, a two-digit year) read inside a body whose
    /// `Content-Length` the file confirmed: part of that message in an
    /// mboxcl2 file, other messages if its sender wrote the length.
    pub covered: Unsplit,
}

/// Lines read as part of a message that look like separators written
/// another way ([`looks_like_a_separator`]: no empty line before them, a
/// two-digit year), so messages were read as one. Counted, and the first
/// one's byte offset kept, so the run names them instead of merging silently.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unsplit {
    pub lines: u64,
    pub first_at: u64,
}

impl Unsplit {
    fn count(&mut self, at: u64) {
        if self.lines == 0 {
            self.first_at = at;
        }
        self.lines += 1;
    }
}

/// The messages of the mbox at `path` ([`Mbox`]).
pub fn mbox_messages(path: &Path) -> std::io::Result<Mbox> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_a_regular_file());
    }
    let file = File::open(path)?;
    let lengths = ContentLengths {
        file: File::open(path)?,
        size: file.metadata()?.len(),
    };
    let scan = mbox_spans(BufReader::with_capacity(64 * 1024, file), lengths)?;
    let shared: Arc<Path> = Arc::from(path);
    let messages = scan
        .spans
        .into_iter()
        .enumerate()
        .map(|(i, span)| MessageRef {
            path: shared.clone(),
            in_mbox: Some((i + 1, span)),
        })
        .collect();
    Ok(Mbox {
        messages,
        leading: scan.leading,
        unsplit: scan.unsplit,
        covered: scan.covered,
    })
}

/// What one pass over an mbox found ([`Mbox`], with spans for messages).
#[derive(Default)]
struct Scan {
    spans: Vec<Span>,
    leading: u64,
    unsplit: Unsplit,
    covered: Unsplit,
}

/// The longest piece of a line read at once: only a line's first bytes
/// matter, so a hostile line of a gigabyte costs no more memory than this.
const PIECE: u64 = 4096;

/// Where each message starts and ends. A message starts after a line that
/// begins `From ` at the start of the file or after an empty line; its span
/// leaves out that line and the empty line before the next one. A message
/// whose header gives a `Content-Length` (mboxcl2, which leaves a body's
/// `From ` lines unquoted) that `lengths` confirms ends there: no line of
/// its body starts a message, and a separator there is counted
/// (`Scan::covered`). One pass.
fn mbox_spans(mut reader: BufReader<File>, mut lengths: ContentLengths) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    let mut message = Message::default();
    // The bytes before the first message's `From ` line: none in an mbox.
    let mut leading = None;
    let (mut offset, mut line) = (0u64, Vec::new());
    // The current message's start, and where its last empty line began.
    let (mut start, mut blank_at): (Option<u64>, Option<u64>) = (None, None);
    let mut line_start = true;
    loop {
        line.clear();
        let read = reader.by_ref().take(PIECE).read_until(b'\n', &mut line)? as u64;
        if read == 0 {
            break;
        }
        let at = offset;
        offset += read;
        let complete = line.last() == Some(&b'\n');
        if !line_start {
            line_start = complete;
            continue;
        }
        line_start = complete;
        let in_body = message.in_counted_body(at, &mut blank_at);
        // The first message's `From ` line is taken however it is written;
        // later ones must look like what mbox writers write, so a writer that
        // leaves a body's `From ` unquoted does not cut that message in two.
        let strict = blank_at.is_some() && is_from_line(&line);
        let separator = match leading {
            None => line.starts_with(b"From ") && (at == 0 || blank_at.is_some()),
            Some(_) => strict && !in_body,
        };
        if separator {
            leading.get_or_insert(at);
            scan.spans
                .extend(start.map(|begun| Span::between(begun, blank_at.unwrap_or(at))));
            // A `From ` line longer than a piece: the message starts after it.
            if !complete {
                offset += rest_of_line(&mut reader)?;
                line_start = true;
            }
            (start, blank_at, message) = (Some(offset), None, Message::started());
            continue;
        }
        if let Some(end) = lengths.body_end(offset, message.read_header(&line))? {
            message.body_until = Some(end);
        }
        match in_body {
            true if strict || separator_however_written(&line) => scan.covered.count(at),
            false if start.is_some() && looks_like_a_separator(&line) => scan.unsplit.count(at),
            _ => {}
        }
        blank_at = is_empty_line(&line).then_some(at);
    }
    scan.spans
        .extend(start.map(|begun| Span::between(begun, blank_at.unwrap_or(offset))));
    scan.leading = leading.unwrap_or(offset);
    Ok(scan)
}

/// An empty line, ended either way.
fn is_empty_line(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// The message being read: its header, for the `Content-Length` it gives,
/// and where a confirmed length ends its body.
#[derive(Default)]
struct Message {
    header_open: bool,
    content_length: Option<u64>,
    body_until: Option<u64>,
}

impl Message {
    fn started() -> Self {
        Self {
            header_open: true,
            ..Self::default()
        }
    }

    /// Reads one line of the message: at the empty line that ends the
    /// header, the `Content-Length` it gave.
    fn read_header(&mut self, line: &[u8]) -> Option<u64> {
        if !self.header_open {
            return None;
        }
        if is_empty_line(line) {
            self.header_open = false;
            return self.content_length;
        }
        const FIELD: &[u8] = b"content-length:";
        if line.len() > FIELD.len() && line[..FIELD.len()].eq_ignore_ascii_case(FIELD) {
            let value = std::str::from_utf8(&line[FIELD.len()..]).unwrap_or_default();
            self.content_length = value.trim().parse().ok();
        }
        None
    }

    /// Whether the line at `at` is in a body its confirmed length covers.
    /// The line where that body ends comes after its end as after an empty
    /// line, so a separator right there counts.
    fn in_counted_body(&mut self, at: u64, blank_at: &mut Option<u64>) -> bool {
        match self.body_until {
            Some(end) if at < end => return true,
            Some(end) if at == end => *blank_at = Some(end),
            _ => {}
        }
        self.body_until = None;
        false
    }
}

/// Confirms a `Content-Length` before the scan trusts it: its body must end
/// at the end of a line, where the file ends or a separator begins (`From
/// SENDER DATE`, [`is_from_line`], or an empty line and one). A length
/// edited or miscounted is not confirmed, and the message is split by its
/// lines as any other.
struct ContentLengths {
    /// The mbox opened again: looking ahead leaves the scan's place alone.
    file: File,
    size: u64,
}

/// How much of what follows a body is read to confirm its length.
const LOOK_AHEAD: u64 = 512;

impl ContentLengths {
    /// Where a body of `length` bytes (if a header gave one) that starts at
    /// `start` ends, if the file confirms it. One read of a few hundred bytes.
    fn body_end(&mut self, start: u64, length: Option<u64>) -> std::io::Result<Option<u64>> {
        let end = length.and_then(|length| start.checked_add(length));
        // The body starts after the header's empty line: `end - 1` is a byte.
        let Some(end) = end.filter(|end| *end <= self.size && *end >= 1) else {
            return Ok(None);
        };
        let mut look = vec![0u8; (self.size - (end - 1)).min(LOOK_AHEAD) as usize];
        read_exact_at(&mut self.file, &mut look, end - 1)?;
        let at_the_end = end - 1 + look.len() as u64 == self.size;
        let Some((b'\n', next)) = look.split_first() else {
            return Ok(None);
        };
        let next = [&b"\r\n"[..], b"\n"]
            .iter()
            .find_map(|empty| next.strip_prefix(*empty))
            .unwrap_or(next);
        let line = next
            .split_inclusive(|b| *b == b'\n')
            .next()
            .unwrap_or_default();
        let confirmed = (next.is_empty() && at_the_end) || is_from_line(line);
        Ok(confirmed.then_some(end))
    }
}

/// A line inside a body its `Content-Length` covers that would start a
/// message in an mbox written another way: `From SENDER DATE` with no empty
/// line before it, a bare `From ` (GYB's), or a separator's shape with a
/// time but a two-digit year. A body's "From Monday Jan 5" is none.
fn separator_however_written(line: &[u8]) -> bool {
    let bare = line
        .strip_prefix(b"From ")
        .is_some_and(|rest| rest.trim_ascii().is_empty());
    let timed = || line.split(|b| b.is_ascii_whitespace()).any(is_clock_time);
    bare || is_from_line(line) || (looks_like_a_separator(line) && timed())
}

/// A `From ` line as mbox writers write it, `From SENDER DATE`: after the
/// sender, a time (`10:24:56` or `10:24`) and a four-digit year, as in
/// `From aws@amazon.com Mon Jan  5 10:00:00 2026` or Gmail's
/// `From 1234@xxx Sat Jun 15 10:24:56 +0000 2019`. A body's sentence that
/// begins `From ` has, as a rule, not both.
fn is_from_line(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let mut words = rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let _sender = words.next();
    let (mut time, mut year) = (false, false);
    for word in words {
        time |= is_clock_time(word);
        year |= word.len() == 4 && word.iter().all(u8::is_ascii_digit);
    }
    time && year
}

/// A line read inside a message that a writer meant as a separator, written
/// another way, where [`is_from_line`] wants an empty line before it, a time
/// and a four-digit year: a bare `From ` (GYB's); `From SENDER` with a date
/// right after the sender (a weekday's or a month's name, an ISO date), as
/// mbox writers put it, whatever the sender (`root`, `host!user`); or a
/// sender that is an address (`@`), `MAILER-DAEMON` or `-` with a digit
/// after it. A body's sentence ("From my point of view", "From 1 May 2026,
/// prices...", an mboxcl2 or Thunderbird body left unquoted) is rarely any.
fn looks_like_a_separator(line: &[u8]) -> bool {
    const NAMES: [&[u8]; 19] = [
        b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun", b"jan", b"feb", b"mar", b"apr",
        b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
    ];
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    if rest.trim_ascii().is_empty() {
        return true;
    }
    let mut words = rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let (Some(sender), Some(next)) = (words.next(), words.next()) else {
        return false;
    };
    let named = next.len() == 3 && NAMES.iter().any(|n| next.eq_ignore_ascii_case(n));
    let iso = next.len() >= 5 && next[..4].iter().all(u8::is_ascii_digit) && next[4] == b'-';
    let address =
        sender.contains(&b'@') || sender == b"-" || sender.eq_ignore_ascii_case(b"MAILER-DAEMON");
    let dated = |w: &[u8]| w.iter().any(u8::is_ascii_digit);
    // A number is a day ("From 1 May 2026", "From 1st May"), no sender.
    let sender_word = !sender.first().is_some_and(u8::is_ascii_digit);
    (sender_word && (named || iso)) || (address && (dated(next) || words.any(dated)))
}

/// `hh:mm` or `hh:mm:ss`, hours of one or two digits.
fn is_clock_time(word: &[u8]) -> bool {
    let parts: Vec<&[u8]> = word.split(|b| *b == b':').collect();
    let digits =
        |p: &&[u8], most: usize| (1..=most).contains(&p.len()) && p.iter().all(u8::is_ascii_digit);
    (2..=3).contains(&parts.len())
        && digits(&parts[0], 2)
        && parts[1..].iter().all(|p| digits(p, 2))
}

/// Reads to the end of the current line, a piece at a time; how many bytes.
fn rest_of_line(reader: &mut impl BufRead) -> std::io::Result<u64> {
    let (mut read, mut rest) = (0, Vec::new());
    loop {
        rest.clear();
        let n = reader.by_ref().take(PIECE).read_until(b'\n', &mut rest)? as u64;
        read += n;
        if n == 0 || rest.last() == Some(&b'\n') {
            return Ok(read);
        }
    }
}

/// mboxrd quoting undone: a body line `>From ` (any number of `>`) loses one
/// `>`. One pass over the message.
fn unquote_from_lines(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for line in raw.split_inclusive(|b| *b == b'\n') {
        let quotes = line.iter().take_while(|b| **b == b'>').count();
        if quotes > 0 && line[quotes..].starts_with(b"From ") {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbox_of(mbox: &str) -> Mbox {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.mbox");
        std::fs::write(&path, mbox).unwrap();
        mbox_messages(&path).unwrap()
    }

    fn messages(mbox: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.mbox");
        std::fs::write(&path, mbox).unwrap();
        let mut reader = Reader::default();
        mbox_messages(&path)
            .unwrap()
            .messages
            .iter()
            .map(|m| String::from_utf8(reader.read(m).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn a_maildir_exported_without_its_empty_tmp_is_still_one() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cur", "new"] {
            std::fs::create_dir_all(dir.path().join("M").join(sub)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("notes/cur")).unwrap();
        assert!(is_maildir_folder(&dir.path().join("M/cur")));
        assert!(is_maildir_folder(&dir.path().join("M/new")));
        assert!(!is_maildir_folder(&dir.path().join("notes/cur")));
    }

    /// What is not a message is counted, so the run can say so: bytes before
    /// the first `From ` line, or a file without one.
    #[test]
    fn bytes_before_the_first_from_line_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.mbox");
        for (text, messages, leading) in [
            ("From a\nS: 1\n\nx\n", 1, 0),
            ("S: pre\n\nb\n\nFrom a\nS: 1\n\nx\n", 1, 11),
            ("\u{feff}From a\nS: 1\n\nx\n", 0, 18),
            ("", 0, 0),
        ] {
            std::fs::write(&path, text).unwrap();
            let mbox = mbox_messages(&path).unwrap();
            assert_eq!(
                (mbox.messages.len(), mbox.leading),
                (messages, leading),
                "{text:?}"
            );
        }
    }

    /// Unquoted `From ` lines read inside a message that look like
    /// separators are counted, with the first one's offset: separators
    /// written another way (no empty line before, a two-digit year) merged
    /// messages silently. A quoted body line (mboxrd), a body's unquoted
    /// sentence (mboxcl2, Thunderbird) and a real separator count nothing.
    #[test]
    fn unquoted_from_lines_inside_a_message_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.mbox");
        let good = "From a@x Mon Jan  5 10:00:00 2026\nS: 1\n\n>From b said\n\nFrom my point of view\nFrom 1 May 2026, prices change\n\nFrom b@x Mon Jan  5 10:00:00 2026\nS: 2\n\ny\n";
        let no_blank = "From a@x Mon Jan  5 10:00:00 2026\nS: 1\n\nx\nFrom b@x Mon Jan  5 10:00:00 2026\nS: 2\n\ny\n";
        let short_year = "From a@x Mon Jan  5 10:00:00 96\nS: 1\n\nx\n\nFrom b@x Mon Jan  5 10:00:00 96\nS: 2\n\ny\n\nFrom MAILER-DAEMON 5 Jan 96\nS: 3\n\nz\n";
        let bare = "From \nS: 1\n\nx\n\nFrom \nS: 2\n\ny\n";
        let local_sender = "From root Mon Jan  5 10:00:00 2026\nS: 1\n\nx\nFrom root Mon Jan  5 10:00:00 2026\nS: 2\n\ny\n";
        for (text, messages, lines, first_at) in [
            (good, 2, 0, 0),
            (no_blank, 1, 1, 42),
            (short_year, 1, 2, 41),
            (bare, 1, 1, 15),
            (local_sender, 1, 1, 43),
        ] {
            std::fs::write(&path, text).unwrap();
            let mbox = mbox_messages(&path).unwrap();
            assert_eq!(mbox.messages.len(), messages, "{text:?}");
            assert_eq!(mbox.unsplit, Unsplit { lines, first_at }, "{text:?}");
        }
    }

    /// An unreadable message's place, which keys its ledger row: one file
    /// written two ways is one place, two names a terminal shows alike (not
    /// UTF-8) are two, and an mbox's message keeps its number.
    #[cfg(unix)]
    #[test]
    fn a_place_is_the_file_itself_whatever_its_path_and_name() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let direct = dir.path().join("a.eml");
        std::fs::write(&direct, "x").unwrap();
        let roundabout = dir.path().join("sub/../a.eml");
        let place = |path: &Path| MessageRef::file(path.to_path_buf()).place();
        assert_eq!(place(&direct), place(&roundabout));
        std::fs::write(dir.path().join("box.mbox"), "From a\n\nx\n").unwrap();
        let first = |path: &Path| mbox_messages(path).unwrap().messages[0].place();
        let (one, other) = (
            first(&dir.path().join("box.mbox")),
            first(&dir.path().join("sub/../box.mbox")),
        );
        assert_eq!(one, other);
        assert!(one.ends_with("box.mbox#1"), "{one}");
        let names = [b"\xff.eml", b"\xfe.eml"];
        let places: Vec<String> = names
            .iter()
            .map(|name| {
                let path = dir.path().join(std::ffi::OsStr::from_bytes(*name));
                std::fs::write(&path, "x").unwrap();
                place(&path)
            })
            .collect();
        assert_ne!(places[0], places[1]);
        assert!(places.iter().all(|p| !p.contains('\u{fffd}')), "{places:?}");
        // An mbox's message in a file so named: its place keeps the bytes.
        let boxes: Vec<String> = [b"\xff.mbox", b"\xfe.mbox"]
            .iter()
            .map(|name| {
                let path = dir.path().join(std::ffi::OsStr::from_bytes(*name));
                std::fs::write(&path, "From a\n\nx\n").unwrap();
                first(&path)
            })
            .collect();
        assert_ne!(boxes[0], boxes[1]);
        assert!(boxes.iter().all(|p| p.ends_with("#1")), "{boxes:?}");
    }

    #[test]
    fn a_reader_reads_messages_of_several_mboxes_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two, eml) = (
            dir.path().join("one.mbox"),
            dir.path().join("two.mbox"),
            dir.path().join("three.eml"),
        );
        std::fs::write(
            &one,
            "From a\nSubject: 1a\n\nx\n\nFrom b Mon Jan  1 00:00:00 2024\nSubject: 1b\n\ny\n",
        )
        .unwrap();
        std::fs::write(&two, "From a\nSubject: 2a\n\nz\n").unwrap();
        std::fs::write(&eml, "Subject: 3\n\nw\n").unwrap();
        let (first, second) = (
            mbox_messages(&one).unwrap().messages,
            mbox_messages(&two).unwrap().messages,
        );
        let order = [
            &first[1],
            &second[0],
            &MessageRef::file(eml),
            &first[0],
            &first[1],
        ];
        let mut reader = Reader::default();
        let read: Vec<String> = order
            .iter()
            .map(|m| String::from_utf8(reader.read(m).unwrap()).unwrap())
            .collect();
        assert_eq!(
            read,
            [
                "Subject: 1b\n\ny\n",
                "Subject: 2a\n\nz\n",
                "Subject: 3\n\nw\n",
                "Subject: 1a\n\nx\n",
                "Subject: 1b\n\ny\n",
            ]
        );

        // An mbox cut short after it was scanned: an error, not a short message.
        std::fs::write(&one, "From a\nSubject: 1a\n").unwrap();
        let cut = Reader::default().read(&first[1]).unwrap_err();
        assert_eq!(cut.kind(), std::io::ErrorKind::UnexpectedEof, "{cut}");
    }

    #[test]
    fn an_mbox_splits_at_from_lines_after_an_empty_line() {
        let mbox = "From aws@amazon.com Mon Jan  5 10:00:00 2026\nSubject: one\n\nBody one.\nFrom here on, not a separator.\n\nFrom the AWS team, 2 regions at 10:00.\n\nFrom aws@amazon.com Tue Jan  6 10:00:00 2026\nSubject: two\n\n>From quoted\n>>From twice\n\nFrom 1234@xxx Sat Jun 15 10:24:56 +0000 2019\nSubject: three\n\nz\n";
        assert_eq!(
            messages(mbox),
            [
                "Subject: one\n\nBody one.\nFrom here on, not a separator.\n\nFrom the AWS team, 2 regions at 10:00.\n",
                "Subject: two\n\nFrom quoted\n>From twice\n",
                "Subject: three\n\nz\n",
            ]
        );
        assert_eq!(messages(""), Vec::<String>::new());
    }

    /// mboxcl2 leaves a body's `From ` lines as they are and gives each
    /// message's length: a confirmed length ends the message there, so a
    /// patch's `From <sha> Mon Sep 17 00:00:00 2001` line does not split it
    /// (it is counted as `covered`, for the run to name) and `From Monday
    /// Jan 5` is no merged separator. A length the file does not confirm
    /// (edited, miscounted, past the end, or ending mid-line on a body's
    /// "From ") is read as before, by lines; one that counts the empty line
    /// before the next separator is confirmed.
    #[test]
    fn an_mboxcl2_message_ends_where_its_content_length_says() {
        let body =
            "Patch below.\n\nFrom 8f2a1c0e Mon Sep 17 00:00:00 2001\nFrom Monday Jan 5 on.\n";
        let with_length = |n: usize, crlf: bool| {
            let nl = if crlf { "\r\n" } else { "\n" };
            let body = body.replace('\n', nl);
            let n = n + if crlf { body.matches(nl).count() } else { 0 };
            format!(
                "From a@b Mon Jan  5 10:00:00 2026{nl}Subject: one{nl}Content-Length: {n}{nl}{nl}{body}{nl}From a@b Tue Jan  6 10:00:00 2026{nl}Subject: two{nl}Content-Length: 2{nl}{nl}z{nl}"
            )
        };
        let confirmed = with_length(body.len(), false);
        assert_eq!(
            messages(&confirmed),
            [
                format!("Subject: one\nContent-Length: {}\n\n{body}", body.len()),
                "Subject: two\nContent-Length: 2\n\nz\n".to_string(),
            ]
        );
        assert_eq!(messages(&with_length(body.len(), true)).len(), 2);
        assert_eq!(messages(&with_length(body.len() + 1, false)).len(), 2);
        let scanned = mbox_of(&confirmed);
        assert_eq!((scanned.unsplit.lines, scanned.covered.lines), (0, 1));
        // 14 ends where the patch line starts (a separator: confirmed, and
        // it splits there as by lines); 53 at "From Monday" (no time: not
        // confirmed, so the lines split at the patch line).
        for wrong in [14, 53, body.len() - 5, body.len() + 7, 1 << 40] {
            let split = messages(&with_length(wrong, false));
            assert_eq!(split.len(), 3, "Content-Length {wrong}: {split:?}");
        }
    }

    /// A sender's own `Content-Length` reaching past the next message to a
    /// later separator reads the messages between into its own: never
    /// silently, as the separators it covered are counted for the run to name.
    #[test]
    fn a_length_that_swallows_messages_is_named() {
        let next = |n: u32| {
            format!(
                "From aws@amazon.com Mon Jan  {n} 10:00:00 2026\nSubject: aws {n}\n\nNotice {n}.\n\n"
            )
        };
        let tail = format!("{}{}", next(6), next(7));
        let reach = tail.len() - next(7).len();
        let mbox = format!("From x@y Mon Jan  5 10:00:00 2026\nContent-Length: {reach}\n\n{tail}");
        assert_eq!(messages(&mbox).len(), 2, "the first took the second in");
        assert_eq!(mbox_of(&mbox).covered.lines, 1);
        // Separators written another way (no empty line before, GYB's bare
        // `From `, a two-digit year) count too, inside a covered body; a
        // body's "From Monday Jan 5" does not.
        for other in [
            "Notice.\nFrom c@x.com Mon Jan  5 10:02:00 2026\n",
            "Notice.\n\nFrom \n",
            "Notice.\n\nFrom c@x.com Mon Jan  5 10:02:00 26\n",
        ] {
            let mbox = format!(
                "From x@y Mon Jan  5 10:00:00 2026\nContent-Length: {}\n\n{other}",
                other.len()
            );
            assert_eq!(mbox_of(&mbox).covered.lines, 1, "{other:?}");
        }
        let monday = "Notice.\nFrom Monday Jan 5 on.\n";
        let mbox = format!(
            "From x@y Mon Jan  5 10:00:00 2026\nContent-Length: {}\n\n{monday}",
            monday.len()
        );
        let scanned = mbox_of(&mbox);
        assert_eq!((scanned.covered.lines, scanned.unsplit.lines), (0, 0));
        // A length that ends on a "From " inside a line is not confirmed.
        let body = format!("Notice: From a@b Mon Jan  5 10:00:00 2026\n\n{tail}");
        let mbox = format!(
            "From x@y Mon Jan  5 10:00:00 2026\nContent-Length: {}\n\n{body}",
            "Notice: ".len()
        );
        assert_eq!(messages(&mbox).len(), 3, "{mbox}");
    }

    #[test]
    fn crlf_mboxes_and_labels() {
        let mbox = "From a\r\nSubject: one\r\n\r\nx\r\n\r\nFrom b Mon Jan  1 00:00:00 2024\r\nSubject: two\r\n\r\ny\r\n";
        assert_eq!(
            messages(mbox),
            ["Subject: one\r\n\r\nx\r\n", "Subject: two\r\n\r\ny\r\n"]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old");
        std::fs::write(&path, mbox).unwrap();
        assert!(is_mbox(&path), "found by its first line");
        let found = mbox_messages(&path).unwrap().messages;
        assert_eq!(found[1].label(), dir.path().join("old#2"));
    }

    /// Hostile mboxes of `n` and `2n` bytes, scanned and every message read:
    /// the time about doubles (quadratic work would quadruple it). The least
    /// of five tries, measured twice before judging, as in the domain's
    /// linear tests.
    #[test]
    fn doubling_a_hostile_mbox_at_most_about_doubles_the_time() {
        let hostile = |name: &str, n: usize| -> String {
            match name {
                "tiny messages" => "From x Mon Jan  1 00:00:00 2024\nS: y\n\n".repeat(n / 37),
                "quoted From lines" => format!("From x\n\n{}", ">>From y\n".repeat(n / 10)),
                "blank lines" => format!("From x\n{}", "\n".repeat(n)),
                // Each length is looked up, and none is confirmed.
                "wrong lengths" => {
                    "From x Mon Jan  1 00:00:00 2024\nContent-Length: 1\n\nab\n\n".repeat(n / 52)
                }
                _ => format!("From {}\n\nbody", "a".repeat(n)),
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let time = |text: &str| {
            let path = dir.path().join("hostile.mbox");
            std::fs::write(&path, text).unwrap();
            (0..5)
                .map(|_| {
                    let started = std::time::Instant::now();
                    let mut reader = Reader::default();
                    for message in mbox_messages(&path).unwrap().messages {
                        std::hint::black_box(reader.read(&message).unwrap());
                    }
                    started.elapsed()
                })
                .min()
                .expect("five tries")
        };
        let n = 500_000;
        let mut report = Vec::new();
        for name in [
            "tiny messages",
            "quoted From lines",
            "blank lines",
            "wrong lengths",
            "long From line",
        ] {
            time(&hostile(name, n / 8));
            let measure = || {
                let (small, large) = (time(&hostile(name, n)), time(&hostile(name, 2 * n)));
                (
                    small,
                    large,
                    large.as_secs_f64() / small.as_secs_f64().max(1e-6),
                )
            };
            let (mut small, mut large, mut ratio) = measure();
            if ratio >= 2.5 {
                (small, large, ratio) = measure();
            }
            report.push(format!("{name}: {small:?} -> {large:?} ({ratio:.2}x)"));
            if large > std::time::Duration::from_millis(4) {
                assert!(ratio < 2.5, "not linear: {}", report.join("; "));
            }
        }
        println!("{}", report.join("\n"));
    }

    /// A hostile line without an end is read in pieces of 4 KiB, so the scan
    /// holds no more than that of it, at either size.
    #[test]
    fn a_line_without_end_is_one_message() {
        for size in [1usize << 20, 2 << 20] {
            let mbox = format!(
                "From {}\nSubject: x\n\n{}",
                "a".repeat(size),
                "b".repeat(size)
            );
            let found = messages(&mbox);
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].len(), "Subject: x\n\n".len() + size);
        }
    }
}
