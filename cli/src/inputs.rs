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

/// The message files named by `paths`, in the order given; directories are
/// searched recursively for `*.eml` in name order. Paths that cannot be read are
/// returned as problems, so the rest is still processed.
pub fn message_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let (mut files, mut problems) = (Vec::new(), Vec::new());
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut files, &mut problems),
            Ok(_) => files.push(path.clone()),
            Err(e) => problems.push(format!("cannot read {}: {e}", path.display())),
        }
    }
    (files, problems)
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
