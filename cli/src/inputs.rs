//! What every command reads: message files, the account directory, the rules.

use crate::mailbox::{self, MessageRef};
use anyhow::Context;
use rootmail_domain::{InMemoryDirectory, Rules};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
/// (independent messages), and calls `emit` with its label (its path;
/// `box.mbox#12` for a message in an mbox) and the result in the original
/// order. A path is an `.eml` file, an mbox, or a directory searched
/// recursively in name order for `*.eml`, `*.mbox` and Maildir folders (see
/// [`mailbox`]). A path that cannot be read is reported on stderr and counted,
/// and the rest is still read: the return value is the number of such paths.
/// Workers take the next
/// file as they finish one (a large message does not hold the others up) but
/// stay within a window of two files per core past the last one emitted, so
/// memory stays a few messages' worth whatever the number of files.
pub fn each_message_parallel<R: Send>(
    paths: &[PathBuf],
    work: impl Fn(&Path, Vec<u8>) -> R + Sync,
    mut emit: impl FnMut(&Path, R) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let (files, mut unreadable) = message_files(paths);
    // A backfill of years of mail takes a while: a bar on a terminal, nothing
    // in a pipe or a log.
    let bar = crate::ops::progress(Some(files.len() as u64), "messages");
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let window = Window::new(threads * 2);
    let (done, results) = std::sync::mpsc::sync_channel::<(usize, std::io::Result<R>)>(window.size);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..threads {
            let (done, files, work, window) = (done.clone(), &files, &work, &window);
            scope.spawn(move || {
                while let Some(i) = window.claim(files.len()) {
                    let result = files[i].read().map(|raw| work(&files[i].label(), raw));
                    if done.send((i, result)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done);
        let mut waiting = std::collections::BTreeMap::new();
        let mut emit_ready = |i: usize, result: std::io::Result<R>| -> anyhow::Result<()> {
            waiting.insert(i, result);
            let mut at = window.emitted.load(Ordering::Acquire);
            while let Some(result) = waiting.remove(&at) {
                let label = files[at].label();
                match result {
                    Ok(decided) => bar.suspend(|| emit(&label, decided))?,
                    Err(e) => {
                        bar.suspend(|| eprintln!("rootmail: cannot read {}: {e}", label.display()));
                        unreadable += 1;
                    }
                }
                bar.inc(1);
                at += 1;
                window.emitted.store(at, Ordering::Release);
            }
            Ok(())
        };
        for (i, result) in results.iter() {
            if let Err(e) = emit_ready(i, result) {
                // Writing failed (a closed pipe): the workers stop too.
                window.stop.store(true, Ordering::Relaxed);
                drop(results);
                return Err(e);
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(unreadable)
}

/// Which file a worker reads next, and how far past the last emitted one it
/// may read: the bound that keeps memory a few messages' worth.
struct Window {
    size: usize,
    next: AtomicUsize,
    emitted: AtomicUsize,
    /// Emitting failed: workers waiting for room stop.
    stop: AtomicBool,
}

impl Window {
    fn new(size: usize) -> Self {
        Self {
            size,
            next: AtomicUsize::new(0),
            emitted: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// The next file to read once it is within the window; `None` when every
    /// file is taken or the run stopped.
    fn claim(&self, files: usize) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= files {
            return None;
        }
        while i >= self.emitted.load(Ordering::Acquire) + self.size {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Some(i)
    }
}

/// The messages `paths` name (directories searched, mboxes split), and how
/// many paths could not be read (each reported on stderr).
pub fn message_files(paths: &[PathBuf]) -> (Vec<MessageRef>, usize) {
    let (mut files, mut problems) = (Vec::new(), Vec::new());
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut files, &mut problems),
            Ok(_) if mailbox::is_mbox(path) => add_mbox(path, &mut files, &mut problems),
            Ok(_) => files.push(MessageRef::file(path.clone())),
            Err(e) => problems.push(format!("cannot read {}: {e}", path.display())),
        }
    }
    for problem in &problems {
        eprintln!("rootmail: {problem}");
    }
    (files, problems.len())
}

fn add_mbox(path: &Path, files: &mut Vec<MessageRef>, problems: &mut Vec<String>) {
    match mailbox::mbox_messages(path) {
        Ok(messages) => files.extend(messages),
        Err(e) => problems.push(format!("cannot read mbox {}: {e}", path.display())),
    }
}

fn walk(dir: &Path, files: &mut Vec<MessageRef>, problems: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(format!("cannot read directory {}: {e}", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    // In a Maildir's cur/ and new/, every file is a message, whatever its name
    // (dot files aside); its tmp/ holds deliveries still being written.
    let maildir = mailbox::is_maildir_folder(dir);
    for path in paths {
        let extension = |wanted: &str| {
            path.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case(wanted))
        };
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        // Symlinked directories are not followed: a link loop must not hang a run.
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() && path.file_name().is_some_and(|n| n == "tmp") => {
                if !path.parent().is_some_and(|p| p.join("cur").is_dir()) {
                    walk(&path, files, problems)
                }
            }
            Ok(meta) if meta.is_dir() => walk(&path, files, problems),
            Ok(meta) if meta.file_type().is_symlink() && path.is_dir() => {}
            Ok(meta) if meta.is_file() && maildir && !hidden => files.push(MessageRef::file(path)),
            Ok(_) if extension("eml") => files.push(MessageRef::file(path)),
            Ok(_) if extension("mbox") => add_mbox(&path, files, problems),
            Ok(_) => {}
            Err(e) => problems.push(format!("cannot read {}: {e}", path.display())),
        }
    }
}
