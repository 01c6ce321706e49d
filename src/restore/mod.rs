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
//! it were restored. Before anything is downloaded, what exists in the target is compared
//! with the snapshot (`Overwrite`): files already right are left (their metadata set), and a
//! file to replace is written beside the old one from the blobs it lacks and those it holds,
//! and renamed over it once complete, so a failure leaves the old file whole. Links and special files follow, and last the directories' own metadata,
//! deepest first, so their times are not disturbed. `--verify` reads every file back and
//! checks its whole-content digest.

mod apply;
mod delete;
mod dirs;
mod dump;
mod files;
mod meta;
mod plan;
mod runs;
mod tar;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub(crate) use dump::content_digest;
pub use dump::{dump, ArchiveFormat, DumpOptions, DumpSummary};

use crate::error::Result;
use crate::format::{Node, NodeKind, Snapshot};
use crate::index::Index;
use crate::problem::{Problem, ProblemKind};
use crate::repository::Repository;
use apply::{dry_run, Apply, Kinds};
use delete::delete_extras;
use dirs::{make_dirs, open_target, open_target_if_there, Dirs};
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
    /// Change nothing: decide and report (counts, `on_item`) what a restore would do. Existing
    /// files are still read to tell `updated` from `unchanged`, as the overwrite policy says.
    pub dry_run: bool,
    /// What to do with a file that already exists in the target.
    pub overwrite: Overwrite,
    /// Remove what the target holds that the snapshot does not, in the directories restored
    /// and only where the includes and excludes would select it.
    pub delete: bool,
    /// Told of every path as it is restored, updated, left unchanged or deleted.
    pub on_item: Option<OnItem>,
    /// Counted as files are written, for a progress display (totals set after planning).
    pub progress: Option<std::sync::Arc<crate::util::Progress>>,
}

/// What to do with a file that already exists where the snapshot has one (restic 0.17's
/// `--overwrite`). Directories are always restored; anything else that exists is replaced
/// under `Always` and `IfChanged`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it unless it already holds the snapshot's content: it is read and compared
    /// chunk by chunk, and the chunks that match are copied from it instead of downloaded.
    /// Metadata is set either way.
    #[default]
    Always,
    /// As `Always`, but a regular file of the snapshot's size and mtime is taken to match
    /// without reading it.
    IfChanged,
    /// Only when the snapshot's mtime is newer than the existing entry's (then as `Always`).
    IfNewer,
    /// Never: whatever exists is left as it is.
    Never,
}

impl std::str::FromStr for Overwrite {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Overwrite> {
        Ok(match s {
            "always" => Overwrite::Always,
            "if-changed" => Overwrite::IfChanged,
            "if-newer" => Overwrite::IfNewer,
            "never" => Overwrite::Never,
            _ => {
                return Err(crate::Error::Invalid(format!(
                    "--overwrite {s:?}: use always, if-changed, if-newer or never"
                )))
            }
        })
    }
}

/// What a restore did with one path (restic's `-vv` actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemAction {
    /// Written where nothing (or something of another kind) was.
    Restored,
    /// An existing file replaced with the snapshot's content.
    Updated,
    /// Already as in the snapshot (only its metadata set), or left alone by the overwrite
    /// policy.
    Unchanged,
    /// Removed by `delete`.
    Deleted,
}

impl ItemAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemAction::Restored => "restored",
            ItemAction::Updated => "updated",
            ItemAction::Unchanged => "unchanged",
            ItemAction::Deleted => "deleted",
        }
    }
}

/// A callback told of each path: its action, its path inside the snapshot, and for regular
/// files (and skipped entries) a size. Called from the restore's worker threads.
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct OnItem(Arc<dyn Fn(ItemAction, &str, Option<u64>) + Send + Sync>);

impl OnItem {
    pub fn new(f: impl Fn(ItemAction, &str, Option<u64>) + Send + Sync + 'static) -> OnItem {
        OnItem(Arc::new(f))
    }
}

impl std::fmt::Debug for OnItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnItem(..)")
    }
}

#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RestoreSummary {
    /// Regular files written (new or updated) and hard links made.
    pub files: u64,
    /// Of `files`, those that replaced an existing file.
    pub files_updated: u64,
    pub dirs: u64,
    pub others: u64,
    /// The bytes of `files`.
    pub bytes: u64,
    /// Files and other entries not written: their content already matched (their metadata
    /// was set) or the overwrite policy left them alone.
    pub files_skipped: u64,
    pub bytes_skipped: u64,
    /// Entries removed by `delete` (each file and directory below a removed one counts).
    pub files_deleted: u64,
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

/// Tells `RestoreOptions::on_item`, if set, of one path.
pub(super) struct Events<'a>(Option<&'a OnItem>);

impl Events<'_> {
    pub(super) fn emit(&self, action: ItemAction, path: &str, size: Option<u64>) {
        if let Some(f) = self.0 {
            (f.0)(action, path, size)
        }
    }
}

/// Restores `subpath` of `snapshot` (all of it when empty) under `opts.target`. Paths keep
/// their place below the snapshot root (or below `subpath`), as restic does. Directories
/// first (parents first); then what to do with each path that exists is decided
/// (`opts.overwrite`), reading existing files to compare them, and with `opts.delete` what
/// the snapshot lacks is removed; then file contents by pack, links and special files, and
/// last the directories' own metadata, deepest first. `opts.dry_run` stops after deciding.
pub fn restore(
    repo: &Repository,
    index: &Index,
    snapshot: &Snapshot,
    subpath: &str,
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
    refuse_deleting_root(opts)?;
    let plan = plan(repo, index, snapshot, subpath, opts)?;
    let items = &plan.items;
    let root = if opts.dry_run {
        open_target_if_there(&opts.target)?
    } else {
        Some(open_target(&opts.target)?)
    };
    let dirs = root.map(|r| Dirs::new(r, items, opts.delete));
    let errors = Mutex::new(Vec::new());
    let report = |p: Problem| errors.lock().unwrap().push(p);
    let fail = |it: &Item, what: &str, why: Problem| {
        let message = format!("{}: {what}: {why}", it.snap_path);
        report(why.with_path(&it.snap_path).with_message(message));
    };
    let events = Events(opts.on_item.as_ref());
    let mut sum = RestoreSummary::default();

    let made = match &dirs {
        Some(d) if !opts.dry_run => make_dirs(d, &fail),
        _ => items
            .iter()
            .map(|it| it.node.kind == NodeKind::Dir)
            .collect(),
    };
    sum.dirs = made.iter().filter(|m| **m).count() as u64;
    let kinds = Kinds::of(items);
    let decisions = kinds.decide(repo, index, dirs.as_ref(), opts.overwrite, items.len());
    if let (Some(d), true) = (&dirs, opts.delete) {
        let (target, dry) = (&opts.target, opts.dry_run);
        sum.files_deleted = delete_extras(d, target, &plan, &made, dry, &events, &report);
    }
    match dirs {
        Some(dirs) if !opts.dry_run => {
            let owner = opts
                .owner
                .unwrap_or_else(|| nix::unistd::geteuid().is_root());
            let run = Apply {
                repo,
                index,
                dirs: &dirs,
                opts,
                owner,
                fail: &fail,
                events: &events,
            };
            run.apply(&kinds, &decisions, &made, &mut sum);
        }
        _ => dry_run(items, &decisions, &kinds.links(), &events, &mut sum),
    }
    sum.errors = errors.into_inner().unwrap();
    Ok(sum)
}

/// `delete` with the target `/` and no include or exclude would remove the whole system
/// outside the snapshot: refused, as restic does.
fn refuse_deleting_root(opts: &RestoreOptions) -> Result<()> {
    if !opts.delete || !opts.includes.is_empty() || !opts.excludes.is_empty() {
        return Ok(());
    }
    let t = std::fs::canonicalize(&opts.target).unwrap_or_else(|_| opts.target.clone());
    if t == std::path::Path::new("/") {
        return Err(crate::Error::Invalid(
            "--delete with the target / needs an --include or --exclude".into(),
        ));
    }
    Ok(())
}
