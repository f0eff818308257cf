//! What every command reads: message files, the account directory, the rules.

use crate::mailbox::{self, MessageRef};
use anyhow::Context;
use rootmail_domain::{InMemoryDirectory, Rules};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The account directory: the CSV if given, else empty (every account unknown).
pub fn directory(accounts: Option<&Path>) -> anyhow::Result<InMemoryDirectory> {
    match accounts {
        Some(path) => Ok(rootmail_local::accounts::load(path)?),
        None => Ok(InMemoryDirectory::default()),
    }
}

pub fn rules(path: Option<&Path>) -> anyhow::Result<Rules> {
    match path {
        None => Ok(Rules::built_in()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read rules file {}", path.display()))?;
            Rules::parse(&text).with_context(|| format!("rules file {}", path.display()))
        }
    }
}

/// Reads every message named by `paths`, runs `work` on it on every core
/// (independent messages), and calls `emit` with the message (its label is
/// its path, `box.mbox#12` for a message in an mbox) and the result in the
/// original order. A path is an `.eml` file, an mbox, or a directory searched
/// recursively in name order for `*.eml`, `*.mbox` and Maildir folders (see
/// [`mailbox`]). A path that cannot be listed is reported on stderr; a
/// message that cannot be read (or is refused unread, see
/// [`mailbox::Reader::read`]) is given to `emit` as its error, in its place.
/// Both are counted, and the rest is still read: the return value is how many.
/// Workers take the next message as they finish one (a large message does not
/// hold the others up) within a [`Window`] past the last one emitted, so
/// memory stays bounded whatever the number or size of the messages.
pub fn each_message_parallel<R: Send>(
    paths: &[PathBuf],
    work: impl Fn(&Path, Vec<u8>) -> R + Sync,
    emit: impl FnMut(&MessageRef, std::io::Result<R>) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let window = Window::new(threads * Window::AHEAD_PER_WORKER, Window::BUDGET);
    each_message_within(paths, (threads, &window), work, emit)
}

/// [`each_message_parallel`] on `threads` workers within `window`.
fn each_message_within<R: Send>(
    paths: &[PathBuf],
    (threads, window): (usize, &Window),
    work: impl Fn(&Path, Vec<u8>) -> R + Sync,
    mut emit: impl FnMut(&MessageRef, std::io::Result<R>) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let (files, mut unreadable) = message_files(paths);
    // A backfill of years of mail takes a while: a bar on a terminal, nothing
    // in a pipe or a log.
    let bar = crate::ops::progress(Some(files.len() as u64), "messages");
    let (done, results) = std::sync::mpsc::sync_channel::<Done<R>>(window.ahead);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..threads {
            let (done, files, work) = (done.clone(), &files, &work);
            scope.spawn(move || prepare_admitted(files, window, work, &done));
        }
        drop(done);
        // A panic while emitting (a bug in the caller's writing) stops the
        // workers as a write error does, so the scope ends and the panic
        // reaches the caller rather than every thread waiting for another.
        let _stop_on_panic = StopOnPanic(window);
        let mut waiting = std::collections::BTreeMap::new();
        let mut at = 0;
        let mut emit_ready = |i: usize, read: (usize, std::io::Result<R>)| {
            waiting.insert(i, read);
            while let Some((bytes, result)) = waiting.remove(&at) {
                unreadable += usize::from(result.is_err());
                bar.suspend(|| emit(&files[at], result))?;
                bar.inc(1);
                at += 1;
                window.emitted(bytes);
            }
            anyhow::Ok(())
        };
        for (i, bytes, result) in results.iter() {
            if let Err(e) = emit_ready(i, (bytes, result)) {
                // Writing failed (a closed pipe): the workers stop too.
                window.stop();
                drop(results);
                return Err(e);
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(unreadable)
}

/// Stops the workers' window when dropped by a panic.
struct StopOnPanic<'a>(&'a Window);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// A prepared message for the writer: its place, the bytes it holds in the
/// window, and what the work made of it (or why it could not be read).
type Done<R> = (usize, usize, std::io::Result<R>);

/// A worker: reads and prepares each message the window admits it, until
/// none is left or the writer stopped.
fn prepare_admitted<R>(
    files: &[MessageRef],
    window: &Window,
    work: impl Fn(&Path, Vec<u8>) -> R,
    done: &std::sync::mpsc::SyncSender<Done<R>>,
) {
    yield_to_the_writer();
    let mut reader = mailbox::Reader::default();
    while let Some(i) = window.claim(files.len()) {
        let read =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.read(&files[i])));
        let (bytes, result) = match read {
            Ok(Ok(raw)) => {
                // Counted in the window until emitted, whatever the work does.
                let bytes = window.read(raw.len());
                let label = files[i].label();
                let prepared =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&label, raw)));
                (bytes, prepared.map_err(|_| panicked()))
            }
            Ok(Err(e)) => (0, Err(e)),
            Err(_) => {
                // The reader may be midway through an mbox: start it afresh.
                reader = mailbox::Reader::default();
                (0, Err(panicked()))
            }
        };
        if done.send((i, bytes, result)).is_err() {
            return;
        }
    }
}

/// A bug met while reading or preparing one message: that message's error,
/// so the writer, which waits for each message in order, is not left waiting
/// for one that never comes, and the others go on. The panic's own message
/// is on stderr only: it may quote the mail (a string slice's panic does),
/// and this error goes into the ledger and a quarantine ticket.
fn panicked() -> std::io::Error {
    std::io::Error::other(
        "rootmail failed while reading or preparing this message (a bug; its panic message is on stderr); it was not processed",
    )
}

/// Lowers the calling worker's scheduling priority below the writer's. The
/// writer emits in order, alone, so it is what a run waits for: with as many
/// workers as cores, the workers took a core's share from it while the
/// window had room, then slept while it caught up, and the cores were idle a
/// third of the time. Best effort: a run is right at any priority.
fn yield_to_the_writer() {
    #[cfg(target_os = "linux")]
    {
        // On Linux a priority set with a thread's id is that thread's alone.
        let worker = rustix::thread::gettid();
        let _ = rustix::process::setpriority_process(Some(worker), 10);
    }
}

/// Which message a worker reads next, and how far past the last emitted one
/// it may read: at most `ahead` messages and `budget` bytes read and not yet
/// emitted (overshot by at most one message per worker). The next message to
/// emit is always admitted, so a message larger than the budget still goes
/// through, alone. Workers wait on a condition variable that each emit
/// signals (polling with sleeps left the writer idle between messages).
struct Window {
    ahead: usize,
    budget: usize,
    progress: Mutex<Progress>,
    room: Condvar,
}

#[derive(Default)]
struct Progress {
    next: usize,
    emitted: usize,
    bytes: usize,
    /// The messages workers wait to read (at most one per worker).
    waiting: Vec<usize>,
    /// Emitting failed: workers waiting for room stop.
    stop: bool,
}

impl Window {
    /// Enough messages ahead that a worker rarely waits for the writer.
    const AHEAD_PER_WORKER: usize = 256;
    /// Mail read and not yet written: a few large messages' worth.
    const BUDGET: usize = 64 << 20;

    fn new(ahead: usize, budget: usize) -> Self {
        Self {
            ahead: ahead.max(1),
            budget,
            progress: Mutex::new(Progress::default()),
            room: Condvar::new(),
        }
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next message to read once it is within the window; `None` when
    /// every message is taken or the run stopped.
    fn claim(&self, files: usize) -> Option<usize> {
        let mut progress = self.progress();
        if progress.next >= files || progress.stop {
            return None;
        }
        let i = progress.next;
        progress.next += 1;
        if !self.admits(&progress, i, (0, 0)) {
            progress.waiting.push(i);
            while !progress.stop && !self.admits(&progress, i, (0, 0)) {
                progress = self
                    .room
                    .wait(progress)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            progress.waiting.retain(|&w| w != i);
        }
        (!progress.stop).then_some(i)
    }

    /// Whether message `i` may be read with `slack` (messages, bytes) to
    /// spare. The next message to emit always may.
    fn admits(&self, progress: &Progress, i: usize, (messages, bytes): (usize, usize)) -> bool {
        i == progress.emitted
            || (i + messages < progress.emitted + self.ahead
                && progress.bytes + bytes < self.budget)
    }

    /// Counts `bytes` read into the window, and returns them.
    fn read(&self, bytes: usize) -> usize {
        self.progress().bytes += bytes;
        bytes
    }

    /// One more message emitted, with the bytes it had read.
    fn emitted(&self, bytes: usize) {
        let mut progress = self.progress();
        progress.emitted += 1;
        progress.bytes = progress.bytes.saturating_sub(bytes);
        // A waiting worker is woken once a quarter of the window is free (or
        // its message is the next to emit), not at every message: each wake
        // is a system call and a context switch on the writer's time.
        let slack = (self.ahead / 4, self.budget / 4);
        if (progress.waiting.iter()).any(|&i| self.admits(&progress, i, slack)) {
            self.room.notify_all();
        }
    }

    fn stop(&self) {
        self.progress().stop = true;
        self.room.notify_all();
    }
}

/// The messages `paths` name (directories searched, mboxes split), and how
/// many paths could not be read (each reported on stderr). Files in the
/// directories that are no mail by their name, place or first line are
/// named on stderr too: a run skips nothing without saying so.
pub fn message_files(paths: &[PathBuf]) -> (Vec<MessageRef>, usize) {
    let mut found = Found::default();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut found),
            // Named on the command line: a message, whatever its name.
            Ok(_) => found.file(path, (true, false)),
            Err(e) => found
                .problems
                .push(format!("cannot read {}: {e}", path.display())),
        }
    }
    for problem in &found.problems {
        eprintln!("rootmail: {problem}");
    }
    if let Some(notice) = found.skipped_notice() {
        eprintln!("rootmail: {notice}");
    }
    (found.files, found.problems.len())
}

/// What a search of the inputs found.
#[derive(Default)]
struct Found {
    files: Vec<MessageRef>,
    problems: Vec<String>,
    /// Files in the directories searched that are no mail (by name, place
    /// or first line), and symlinked directories (not followed).
    skipped: Vec<PathBuf>,
}

impl Found {
    /// A file, read the same whether named on the command line or found in
    /// a directory: one message when named `*.eml` or in a Maildir (`place`:
    /// a body line beginning `From ` is nobody's separator there, and a
    /// leading `From ` line is dropped when it is read); an mbox when named
    /// `*.mbox`, or of another name and beginning with a `From ` line;
    /// otherwise one message when `named` on the command line, else skipped.
    fn file(&mut self, path: &Path, (named, place): (bool, bool)) {
        let eml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("eml"));
        if eml || place {
            self.files.push(MessageRef::file(path.to_path_buf()));
        } else if mailbox::is_mbox(path) {
            self.mbox(path);
        } else if named {
            self.files.push(MessageRef::file(path.to_path_buf()));
        } else {
            self.skipped.push(path.to_path_buf());
        }
    }

    /// An mbox's messages; what is not one (bytes before its first `From `
    /// line, or a file with none) is a problem the run names, never a silent skip.
    fn mbox(&mut self, path: &Path) {
        match mailbox::mbox_messages(path) {
            Ok(mailbox::Mbox {
                messages,
                leading,
                unsplit,
                covered,
            }) => {
                if covered.lines > 0 {
                    self.problems.push(format!(
                        "mbox {}: {} separator line(s) (\"From SENDER DATE\", with or without an empty line before it, a bare \"From \", or a two-digit year) were read inside bodies whose Content-Length the file confirms (the first at byte {}), as part of their message: right for an mboxcl2 file, whose writer leaves a body's From lines unquoted and counts each body. If the mailbox is not mboxcl2, a message's sender wrote that Content-Length and the messages after it were read into it: export as mboxrd",
                        path.display(),
                        covered.lines,
                        covered.first_at
                    ));
                }
                if unsplit.lines > 0 {
                    self.problems.push(format!(
                        "mbox {}: {} line(s) that look like separators (\"From \" alone, \"From SENDER\" and a weekday, month or ISO date, or \"From ADDRESS DATE\") were read inside a message (the first at byte {}): a separator needs an empty line before it and a time and a four-digit year in it. If they start messages (an export with no empty line between messages, a two-digit year), those messages were read as one; rewrite the separators, or export as mboxrd",
                        path.display(),
                        unsplit.lines,
                        unsplit.first_at
                    ));
                }
                if leading > 0 {
                    self.problems.push(format!(
                        "mbox {}: {leading} bytes before its first \"From \" line are not a message: not read",
                        path.display()
                    ));
                } else if messages.is_empty() {
                    self.problems
                        .push(format!("mbox {}: no message in it", path.display()));
                }
                self.files.extend(messages);
            }
            Err(e) => self
                .problems
                .push(format!("cannot read mbox {}: {e}", path.display())),
        }
    }

    /// The skipped files, named (the first few) and counted.
    fn skipped_notice(&self) -> Option<String> {
        const NAMED: usize = 5;
        if self.skipped.is_empty() {
            return None;
        }
        let named: Vec<String> = (self.skipped.iter().take(NAMED))
            .map(|p| p.display().to_string())
            .collect();
        let more = match self.skipped.len().saturating_sub(NAMED) {
            0 => String::new(),
            more => format!(" and {more} more"),
        };
        Some(format!(
            "{} files in the directories given were not read: no .eml or .mbox name, no \"From \" \
             first line, not in a Maildir's cur/ or new/, or a symlinked directory ({}{more}); \
             name a file on the command line to read it as one message",
            self.skipped.len(),
            named.join(", ")
        ))
    }
}

fn walk(dir: &Path, found: &mut Found) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found
                .problems
                .push(format!("cannot read directory {}: {e}", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    // In a Maildir's cur/ and new/, every file is a message, whatever its name
    // (dot files aside); its tmp/ holds deliveries still being written.
    let maildir = mailbox::is_maildir_folder(dir);
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Symlinked directories are not followed: a link loop must not hang a run.
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() && name == "tmp" => {
                if !path.parent().is_some_and(|p| p.join("cur").is_dir()) {
                    walk(&path, found)
                }
            }
            Ok(meta) if meta.is_dir() => walk(&path, found),
            Ok(meta) if meta.file_type().is_symlink() && path.is_dir() => found.skipped.push(path),
            Ok(_) if name.starts_with('.') => {}
            Ok(_) => {
                let place = maildir || mailbox::is_maildir_message_name(dir, &name);
                found.file(&path, (false, place))
            }
            Err(e) => found
                .problems
                .push(format!("cannot read {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `count` messages of `size` bytes each in a directory, in name order.
    fn mailbox(count: usize, size: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in 0..count {
            let mut text = format!("Subject: {n}\r\n\r\n").into_bytes();
            text.resize(size.max(text.len()), b'x');
            std::fs::write(dir.path().join(format!("{n:05}.eml")), text).expect("write");
        }
        dir
    }

    /// Runs 3 workers within `window`; returns the emitted file names and the
    /// most bytes ever read and not yet emitted.
    fn run(dir: &Path, window: &Window, slow_writer: bool) -> (Vec<String>, usize) {
        let (in_flight, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut emitted = Vec::new();
        let work = |_: &Path, raw: Vec<u8>| {
            let now = in_flight.fetch_add(raw.len(), Ordering::SeqCst) + raw.len();
            most.fetch_max(now, Ordering::SeqCst);
            raw
        };
        let emit = |message: &MessageRef, raw: std::io::Result<Vec<u8>>| {
            let raw = raw.expect("readable");
            if slow_writer {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            in_flight.fetch_sub(raw.len(), Ordering::SeqCst);
            let file = message.label();
            let name = file.file_name().expect("a file name");
            emitted.push(name.to_string_lossy().into_owned());
            Ok(())
        };
        let unreadable =
            each_message_within(&[dir.to_path_buf()], (3, window), work, emit).expect("runs");
        assert_eq!(unreadable, 0);
        (emitted, most.load(Ordering::SeqCst))
    }

    #[test]
    fn every_message_is_emitted_once_in_order() {
        let dir = mailbox(500, 100);
        let (emitted, _) = run(dir.path(), &Window::new(8, 1 << 20), false);
        let expected: Vec<String> = (0..500).map(|n| format!("{n:05}.eml")).collect();
        assert_eq!(emitted, expected);
    }

    #[test]
    fn workers_read_no_further_ahead_than_the_budget_allows() {
        // A writer slower than its workers: they would read everything ahead.
        let dir = mailbox(200, 1_000);
        let (emitted, most) = run(dir.path(), &Window::new(1_000, 4_000), true);
        assert_eq!(emitted.len(), 200);
        // The budget, overshot by at most one message per worker.
        assert!(most <= 4_000 + 3 * 1_000, "{most} bytes in flight");
        let (_, unbounded) = run(dir.path(), &Window::new(1_000, usize::MAX), true);
        assert!(
            unbounded > 7_000,
            "the test shows nothing: {unbounded} bytes"
        );
    }

    /// What `run` gives, run on a thread of its own, so a run that hangs
    /// fails the test instead of hanging it.
    fn ends_within_a_minute<T: Send + 'static>(run: impl FnOnce() -> T + Send + 'static) -> T {
        let (finished, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || finished.send(run()).expect("send"));
        ended
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the run ended")
    }

    /// A bug that panics on one message (in the reader or the work) makes
    /// that message an error in its place; the run ends, with every other
    /// message emitted, instead of waiting for ever for the one missing.
    #[test]
    fn a_panic_on_one_message_is_its_error_and_the_run_ends() {
        let dir = mailbox(50, 100);
        let paths = [dir.path().to_path_buf()];
        let (unreadable, emitted, left_in_window) = ends_within_a_minute(move || {
            let work = |file: &Path, raw: Vec<u8>| {
                assert!(!file.ends_with("00017.eml"), "a bug met on this message");
                raw.len()
            };
            let mut emitted = Vec::new();
            let emit = |message: &MessageRef, result: std::io::Result<usize>| {
                let file = message.label();
                let name = file.file_name().expect("a name").to_string_lossy();
                emitted.push((name.into_owned(), result.map_err(|e| e.to_string())));
                Ok(())
            };
            let window = Window::new(8, 1 << 20);
            let unreadable = each_message_within(&paths, (3, &window), work, emit).expect("runs");
            let left = window.progress().bytes;
            (unreadable, emitted, left)
        });
        assert_eq!(unreadable, 1);
        assert_eq!(emitted.len(), 50);
        let (name, failed) = &emitted[17];
        assert_eq!(name, "00017.eml");
        let error = failed.as_ref().expect_err("its error");
        assert!(error.contains("a bug"), "{error}");
        assert!(
            !error.contains("met on this message"),
            "the panic's text stays on stderr"
        );
        assert_eq!(emitted.iter().filter(|(_, r)| r.is_ok()).count(), 49);
        assert_eq!(
            left_in_window, 0,
            "the failed message's bytes were given back"
        );
        drop(dir);
    }

    /// A panic while emitting reaches the caller; the workers, which may be
    /// waiting for room in the window, stop.
    #[test]
    fn a_panic_while_emitting_reaches_the_caller() {
        let dir = mailbox(2_000, 100);
        let paths = [dir.path().to_path_buf()];
        let panicked = ends_within_a_minute(move || {
            let outcome = std::panic::catch_unwind(|| {
                let mut n = 0;
                let emit = |_: &MessageRef, _: std::io::Result<usize>| {
                    n += 1;
                    assert!(n < 5, "a bug in the writer");
                    Ok(())
                };
                let window = Window::new(8, 1 << 20);
                each_message_within(&paths, (3, &window), |_, raw| raw.len(), emit)
            });
            outcome.is_err()
        });
        assert!(panicked);
        drop(dir);
    }

    #[test]
    fn a_message_larger_than_the_budget_still_goes_through() {
        let dir = mailbox(20, 10_000);
        let (emitted, most) = run(dir.path(), &Window::new(4, 1_000), false);
        assert_eq!(emitted.len(), 20);
        assert!(most <= 1_000 + 3 * 10_000, "{most} bytes in flight");
    }

    fn found_in(dir: &Path) -> Found {
        let mut found = Found::default();
        walk(dir, &mut found);
        found
    }

    fn names(found: &Found) -> Vec<String> {
        found
            .files
            .iter()
            .map(|m| {
                let label = m.label();
                let name = label.file_name().unwrap_or_default();
                name.to_string_lossy().into_owned()
            })
            .collect()
    }

    /// A copy of mail that keeps only what it needed: a Maildir's `cur/`
    /// alone (a sync that drops empty folders), or a mail program's mbox
    /// without an extension (Thunderbird's `Inbox`). Before, a run found
    /// nothing in either, said nothing, and ended well.
    #[test]
    fn mailboxes_copied_without_their_usual_names_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cur = dir.path().join("backup/cur");
        std::fs::create_dir_all(&cur).expect("mkdir");
        let message = "Subject: a\r\n\r\nbody\r\n";
        std::fs::write(cur.join("1764900000.M1P1.host:2,S"), message).expect("write");
        std::fs::write(cur.join("1764900001.M2P1.host"), message).expect("write");
        let profile = dir.path().join("profile");
        std::fs::create_dir_all(&profile).expect("mkdir");
        let mbox = "From a@example.com Mon Jan  1 00:00:00 2024\nSubject: b\n\nx\n\nFrom c@example.com Mon Jan  1 00:00:01 2024\nSubject: c\n\ny\n";
        std::fs::write(profile.join("Inbox"), mbox).expect("write");
        let found = found_in(dir.path());
        assert_eq!(
            names(&found),
            [
                "1764900000.M1P1.host:2,S",
                "1764900001.M2P1.host",
                "Inbox#1",
                "Inbox#2"
            ]
        );
        assert!(found.skipped.is_empty() && found.problems.is_empty());
    }

    /// What is no mail is named, never dropped without a word: a file with
    /// no mail name, first line or Maildir place, and a symlinked directory.
    #[test]
    fn what_a_search_does_not_read_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("README.txt"), "notes").expect("write");
        std::fs::write(dir.path().join(".DS_Store"), "x").expect("write");
        std::fs::create_dir_all(dir.path().join("elsewhere")).expect("mkdir");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("linked"))
            .expect("symlink");
        let found = found_in(dir.path());
        assert!(found.files.is_empty());
        let skipped: Vec<_> = found.skipped.iter().filter_map(|p| p.file_name()).collect();
        assert_eq!(skipped, ["README.txt", "linked"]);
        let notice = found.skipped_notice().expect("a notice");
        assert!(
            notice.starts_with("2 files in the directories given were not read"),
            "{notice}"
        );
        assert!(notice.contains("README.txt"), "{notice}");
    }

    /// A `.eml` that begins with a `From ` line (as some mail programs save
    /// one) is one message, named on the command line or found in a
    /// directory: its `From ` line is dropped, and a body line beginning
    /// `From ` after a blank line (nobody quotes those in one message) does
    /// not cut it in two.
    #[test]
    fn a_file_reads_the_same_named_or_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("saved.eml");
        let text = "From - Mon Jan  1 00:00:00 2024\nSubject: a\n\nbody\n\nFrom the team\n";
        std::fs::write(&path, text).expect("write");
        let (named, _) = message_files(std::slice::from_ref(&path));
        let found = found_in(dir.path());
        assert_eq!(found.files, named);
        assert_eq!(named.len(), 1);
        let mut reader = mailbox::Reader::default();
        let raw = reader.read(&found.files[0]).expect("readable");
        assert_eq!(raw, b"Subject: a\n\nbody\n\nFrom the team\n");
    }
}
