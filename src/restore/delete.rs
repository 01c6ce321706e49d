//! `delete`: what the target holds in the restored directories and the snapshot does not,
//! removed (or, in a dry run, only reported), as restic's `restore --delete`: only in
//! directories the restore writes, and only what the includes and excludes would select.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rayon::prelude::*;
use rustix::io::Errno;

use super::dirs::{entries, remove_tree, Dirs};
use super::plan::{Listing, Plan};
use super::{Events, ItemAction};
use crate::error::Error;
use crate::problem::{Problem, ProblemKind};

/// Removes the extra entries of every listed directory that was made (`made`, by item; the
/// target always is); returns how many entries went, counting those inside removed
/// directories. A directory that cannot be listed, or an entry that cannot be removed, is
/// reported through `fail`, never fatal.
pub(super) fn delete_extras(
    dirs: &Dirs,
    target: &Path,
    plan: &Plan,
    made: &[bool],
    dry_run: bool,
    events: &Events,
    fail: &(dyn Fn(Problem) + Sync),
) -> u64 {
    let deleted = AtomicU64::new(0);
    plan.listings
        .par_iter()
        .filter(|l| l.dir.is_none_or(|d| made[d]))
        .for_each(|l| {
            let gone = |p: &str| {
                deleted.fetch_add(1, Relaxed);
                events.emit(ItemAction::Deleted, p, None);
            };
            delete_in(dirs, target, plan, l, dry_run, &gone, fail)
        });
    deleted.into_inner()
}

#[allow(clippy::too_many_arguments)]
fn delete_in(
    dirs: &Dirs,
    target: &Path,
    plan: &Plan,
    l: &Listing,
    dry_run: bool,
    gone: &(dyn Fn(&str) + Sync),
    fail: &(dyn Fn(Problem) + Sync),
) {
    let shown = |name: &[u8]| format!("{}/{}", l.snap_dir, String::from_utf8_lossy(name));
    let problem = |path: &str, op: &'static str, e: Errno| {
        let dest = l.dir.map_or(target, |d| dirs.items[d].dest.as_path());
        let e = Error::io(op, dest, e.into());
        let message = format!("{path}: delete: {e}");
        Problem::new(ProblemKind::DeleteFailed, message).with_path(path)
    };
    let dir = match dirs.get(l.dir) {
        Ok(d) => d,
        // A dry run over a target that lacks the directory: nothing to delete there.
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) if dry_run => return,
        Err(e) => return fail(problem(&l.snap_dir, "open directory", e)),
    };
    let names = match entries(&dir) {
        Ok(v) => v,
        Err(e) => return fail(problem(&l.snap_dir, "list directory", e)),
    };
    for name in names {
        let path = shown(&name);
        if l.names.contains(&name) || !plan.select.selects(&path, l.included) {
            continue;
        }
        let r = remove_tree(&dir, &name, dry_run, &mut |below: &[u8]| {
            if below.is_empty() {
                gone(&path)
            } else {
                gone(&format!("{path}/{}", String::from_utf8_lossy(below)))
            }
        });
        if let Err(e) = r {
            fail(problem(&path, "remove", e));
        }
    }
}
