//! Restore: snapshot → trees → index → pack reader → files and metadata on disk.
//!
//! The tree is walked once into a plan; directories are created first. Every path below the
//! target is reached from the target's descriptor one component at a time with `O_NOFOLLOW`
//! (see `Dirs`), and metadata is set through descriptors, so a symlink planted in the target
//! (or left there by an earlier restore) is replaced, never followed. File contents are then
//! planned by pack: every blob the selected files need is read once, by ranged reads of
//! neighbouring blobs in the same pack, run by run in parallel; each blob is opened and
//! verified (authentication, keyed id, length) and written with positional writes at every
//! offset of every file that needs it. A file whose blob cannot be read or opened is removed
//! once its last blob is accounted for and reported, so wrong data is never left behind as if
//! it were restored. Links and special files follow, and last the directories' own metadata,
//! deepest first, so their times are not disturbed. `--verify` reads every file back and
//! checks its whole-content digest.

mod dirs;
mod dump;
mod files;
mod meta;
mod plan;
mod runs;
mod tar;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub(crate) use dump::content_digest;
pub use dump::{dump, ArchiveFormat, DumpOptions, DumpSummary};

use crate::error::Result;
use crate::format::{Node, NodeKind, Snapshot};
use crate::index::Index;
use crate::problem::{Problem, ProblemKind};
use crate::repository::Repository;
use dirs::{make_dirs, open_target, Dirs};
use files::{verify_files, write_files};
use meta::{hard_link, restore_specials, set_dir_meta};
use plan::plan;

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Restore only paths matching one of these (or below a match).
    pub includes: Vec<String>,
    /// Skip paths matching one of these (and everything below).
    pub excludes: Vec<String>,
    /// Leave all-zero chunks as holes.
    pub sparse: bool,
    /// Read every restored file back and check its digest.
    pub verify: bool,
    /// Restore ownership (default: when running as root).
    pub owner: Option<bool>,
    /// Counted as files are written, for a progress display (totals set after planning).
    pub progress: Option<std::sync::Arc<crate::util::Progress>>,
}

#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    pub verified_files: u64,
    /// Every path that could not be restored, with the reason: `path` is the path inside the
    /// snapshot, `object` the blob or pack that could not be had, if that was why.
    pub errors: Vec<Problem>,
}

pub(super) struct Item {
    /// Path inside the snapshot, `/`-separated, for patterns and messages.
    pub(super) snap_path: String,
    /// Where it goes, for messages: it is opened by `name` in its parent's descriptor.
    pub(super) dest: PathBuf,
    /// The directory item it is restored in; `None`: the target itself.
    pub(super) parent: Option<usize>,
    pub(super) node: Node,
}

/// A failure to report for one item (what failed, and why as a problem whose message is the
/// reason); collected, never fatal.
pub(super) type Fail<'a> = dyn Fn(&Item, &str, Problem) + Sync + 'a;

/// `e` as the reason an item failed: by what `e` says, else `RestoreFailed`.
pub(super) fn failed(e: &crate::Error) -> Problem {
    Problem::from_error(e, ProblemKind::RestoreFailed)
}

/// Restores `subpath` of `snapshot` (all of it when empty) under `opts.target`. Paths keep
/// their place below the snapshot root (or below `subpath`), as restic does. Directories
/// first (parents first), then file contents by pack, then links and special files, then
/// the directories' own metadata, deepest first.
pub fn restore(
    repo: &Repository,
    index: &Index,
    snapshot: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
    let items = plan(repo, index, snapshot, subpath, opts)?;
    let dirs = Dirs::new(open_target(&opts.target)?, &items);
    let owner = opts
        .owner
        .unwrap_or_else(|| nix::unistd::geteuid().is_root());
    let errors = Mutex::new(Vec::new());
    let fail = |it: &Item, what: &str, why: Problem| {
        let message = format!("{}: {what}: {why}", it.snap_path);
        errors
            .lock()
            .unwrap()
            .push(why.with_path(&it.snap_path).with_message(message));
    };
    let mut sum = RestoreSummary::default();

    let made = make_dirs(&dirs, &fail);
    sum.dirs = made.iter().filter(|m| **m).count() as u64;
    let (files, link_to) = group_links(&items);
    let (regular, special): (Vec<usize>, Vec<usize>) = files
        .into_iter()
        .partition(|&i| items[i].node.kind == NodeKind::File);
    if let Some(p) = &opts.progress {
        let bytes = regular.iter().map(|&i| items[i].node.size).sum();
        p.set_totals(regular.len() as u64, bytes);
    }
    let (nfiles, bytes) = write_files(repo, index, &dirs, &regular, opts, owner, &fail);
    sum.files += nfiles;
    sum.bytes += bytes;
    sum.others += restore_specials(&dirs, &special, owner, &fail);
    for (i, f) in link_to {
        let (it, first) = (&items[i], &items[f]);
        match hard_link(&dirs, first, it) {
            Ok(()) => sum.files += 1,
            Err(e) => fail(it, &format!("hard link to {}", first.snap_path), failed(&e)),
        }
    }
    set_dir_meta(&dirs, &made, owner, &fail);
    if opts.verify {
        sum.verified_files = verify_files(&dirs, &fail);
    }
    sum.errors = errors.into_inner().unwrap();
    Ok(sum)
}

/// Splits the non-directory items into those restored with content or as special files,
/// and (link, first) pairs: the first path of an inode gets the content, the rest link to it.
fn group_links(items: &[Item]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
    let mut link_to: Vec<(usize, usize)> = Vec::new();
    let mut files = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if it.node.kind == NodeKind::Dir {
            continue;
        }
        if it.node.links > 1 && it.node.inode != 0 {
            match first_of.get(&(it.node.device, it.node.inode)) {
                Some(&f) => {
                    link_to.push((i, f));
                    continue;
                }
                None => {
                    first_of.insert((it.node.device, it.node.inode), i);
                }
            }
        }
        files.push(i);
    }
    (files, link_to)
}
