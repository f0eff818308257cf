//! What every command reads: message files, the account directory, the rules.

use anyhow::Context;
use rootmail_domain::{InMemoryDirectory, Rules};
use std::path::{Path, PathBuf};

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

/// Reads every message named by `paths` in order and hands it to `each` with its
/// path. Directories are searched recursively for `*.eml` in name order. A path
/// that cannot be read is reported on stderr and counted, and the rest is still
/// read: the return value is the number of such paths.
pub fn each_message(
    paths: &[PathBuf],
    mut each: impl FnMut(&Path, Vec<u8>) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let (files, mut unreadable) = message_files(paths);
    for file in &files {
        match std::fs::read(file) {
            Ok(raw) => each(file, raw)?,
            Err(e) => {
                eprintln!("rootmail: cannot read {}: {e}", file.display());
                unreadable += 1;
            }
        }
    }
    Ok(unreadable)
}

/// As [`each_message`], with `work` run on every core for independent
/// messages and `emit` called in the original order. Workers take the next
/// file as they finish one (a large message does not hold the others up) but
/// stay within a window of two files per core past the last one emitted, so
/// memory stays a few messages' worth whatever the number of files.
pub fn each_message_parallel<R: Send>(
    paths: &[PathBuf],
    work: impl Fn(&Path, Vec<u8>) -> R + Sync,
    mut emit: impl FnMut(&Path, R) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (files, mut unreadable) = message_files(paths);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let window = threads * 2;
    let next = AtomicUsize::new(0);
    let emitted = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (done, results) = std::sync::mpsc::sync_channel::<(usize, std::io::Result<R>)>(window);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..threads {
            let (done, files, work) = (done.clone(), &files, &work);
            let (next, emitted, stop) = (&next, &emitted, &stop);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= files.len() {
                        return;
                    }
                    while i >= emitted.load(Ordering::Acquire) + window {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    let result = std::fs::read(&files[i]).map(|raw| work(&files[i], raw));
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
            let mut at = emitted.load(Ordering::Acquire);
            while let Some(result) = waiting.remove(&at) {
                match result {
                    Ok(decided) => emit(&files[at], decided)?,
                    Err(e) => {
                        eprintln!("rootmail: cannot read {}: {e}", files[at].display());
                        unreadable += 1;
                    }
                }
                at += 1;
                emitted.store(at, Ordering::Release);
            }
            Ok(())
        };
        for (i, result) in results.iter() {
            if let Err(e) = emit_ready(i, result) {
                // Writing failed (a closed pipe): the workers stop too.
                stop.store(true, Ordering::Relaxed);
                drop(results);
                return Err(e);
            }
        }
        Ok(())
    })?;
    Ok(unreadable)
}

/// The message files `paths` name (directories searched), and how many paths
/// could not be read (each reported on stderr).
fn message_files(paths: &[PathBuf]) -> (Vec<PathBuf>, usize) {
    let (mut files, mut problems) = (Vec::new(), Vec::new());
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut files, &mut problems),
            Ok(_) => files.push(path.clone()),
            Err(e) => problems.push(format!("cannot read {}: {e}", path.display())),
        }
    }
    for problem in &problems {
        eprintln!("rootmail: {problem}");
    }
    (files, problems.len())
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(format!("cannot read directory {}: {e}", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        // Symlinked directories are not followed: a link loop must not hang a run.
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, files, problems),
            Ok(meta) if meta.file_type().is_symlink() && path.is_dir() => {}
            Ok(_)
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("eml")) =>
            {
                files.push(path)
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("cannot read {}: {e}", path.display())),
        }
    }
}
