//! What a restore does with each planned path once it is decided: left alone, metadata set,
//! written, linked or made, and the counts and reports of each (or, in a dry run, only the
//! counts and reports).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::dirs::Dirs;
use super::files::{verify_files, write_files};
use super::meta::{hard_link, restore_specials, set_dir_meta};
use super::plan::{decide, Decision};
use super::writer::set_existing_meta;
use super::{failed, Events, Fail, Item, ItemAction, Overwrite, RestoreOptions, RestoreSummary};
use crate::error::Error;
use crate::format::NodeKind;
use crate::index::Index;
use crate::problem::{Problem, ProblemKind};
use crate::repository::Repository;

/// The non-directory items by how they are restored.
pub(super) struct Kinds {
    /// Regular files restored with their content (the first path of each inode).
    regular: Vec<usize>,
    /// Symlinks and special files.
    special: Vec<usize>,
    /// (link, first): later paths of an inode, hard links to its first path.
    link_to: Vec<(usize, usize)>,
}

impl Kinds {
    pub(super) fn of(items: &[Item]) -> Kinds {
        let (files, link_to) = group_links(items);
        let (regular, special) = files
            .into_iter()
            .partition(|&i| items[i].node.kind == NodeKind::File);
        Kinds {
            regular,
            special,
            link_to,
        }
    }

    pub(super) fn links(&self) -> Vec<usize> {
        self.link_to.iter().map(|(i, _)| *i).collect()
    }

    /// The decision for every item (`New` for directories): regular files by their content,
    /// the rest by the policy alone.
    pub(super) fn decide(
        &self,
        repo: &Repository,
        index: &Index,
        dirs: Option<&Dirs>,
        how: Overwrite,
        n: usize,
    ) -> Vec<Decision> {
        let mut decisions = vec![Decision::New; n];
        let links = self.links();
        for (list, content) in [
            (&self.regular, true),
            (&self.special, false),
            (&links, false),
        ] {
            let d = decide(repo, index, dirs, list, how, content);
            for (&i, d) in list.iter().zip(d) {
                decisions[i] = d;
            }
        }
        decisions
    }
}

/// A restore that writes (not a dry run), once its directories are made and its paths
/// decided.
pub(super) struct Apply<'a> {
    pub(super) repo: &'a Repository,
    pub(super) index: &'a Index,
    pub(super) dirs: &'a Dirs<'a>,
    pub(super) opts: &'a RestoreOptions,
    pub(super) owner: bool,
    pub(super) fail: &'a Fail<'a>,
    pub(super) events: &'a Events<'a>,
}

impl Apply<'_> {
    /// File contents, special files, hard links, then directory metadata and `--verify`.
    pub(super) fn apply(
        &self,
        kinds: &Kinds,
        decisions: &[Decision],
        made: &[bool],
        sum: &mut RestoreSummary,
    ) {
        let (dirs, items) = (self.dirs, self.dirs.items);
        let to_write = self.leave_or_keep(&kinds.regular, decisions, sum);
        if let Some(p) = &self.opts.progress {
            let bytes = to_write.iter().map(|(i, _)| items[*i].node.size).sum();
            p.set_totals(to_write.len() as u64, bytes);
        }
        let (repo, index, opts, owner) = (self.repo, self.index, self.opts, self.owner);
        let written = write_files(
            repo,
            index,
            dirs,
            &to_write,
            opts,
            owner,
            self.fail,
            self.events,
        );
        (sum.files, sum.files_updated, sum.bytes) = (written.files, written.updated, written.bytes);
        let mut special = Vec::new();
        for &i in &kinds.special {
            match decisions[i] {
                Decision::Skip => skipped(&items[i], self.events, sum),
                _ => special.push(i),
            }
        }
        sum.others += restore_specials(dirs, &special, owner, self.fail, self.events);
        let mut check: Vec<usize> = to_write
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| !written.failed.contains(i))
            .collect();
        check.extend(self.make_links(&kinds.link_to, decisions, &written.failed, sum));
        set_dir_meta(dirs, made, owner, self.fail, self.events);
        if opts.verify {
            sum.verified_files = verify_files(dirs, &check, self.fail);
        }
    }

    /// Of the regular files `regular`, counts those left alone and sets the metadata of those
    /// whose content matches; returns the rest (`New` or `Update`), to be written.
    fn leave_or_keep<'d>(
        &self,
        regular: &[usize],
        decisions: &'d [Decision],
        sum: &mut RestoreSummary,
    ) -> Vec<(usize, &'d Decision)> {
        let items = self.dirs.items;
        let mut to_write = Vec::new();
        let mut same = Vec::new();
        for &i in regular {
            match &decisions[i] {
                Decision::Skip => skipped(&items[i], self.events, sum),
                Decision::Unchanged { old } => same.push((i, *old)),
                d => to_write.push((i, d)),
            }
        }
        let kept: Vec<u64> = same
            .par_iter()
            .filter_map(|&(i, old)| {
                let it = &items[i];
                match set_existing_meta(self.dirs, it, old, self.owner) {
                    Ok(()) => {
                        let size = it.node.size;
                        self.events
                            .emit(ItemAction::Unchanged, &it.snap_path, Some(size));
                        Some(size)
                    }
                    Err(e) => {
                        let why = Problem::from_error(&e, ProblemKind::MetadataFailed);
                        (self.fail)(it, "set metadata", why);
                        None
                    }
                }
            })
            .collect();
        sum.files_skipped += kept.len() as u64;
        sum.bytes_skipped += kept.iter().sum::<u64>();
        to_write
    }

    /// Links the later paths of each inode to its first; a first path that failed (and may
    /// still hold other content) gets no links. Returns the paths linked.
    fn make_links(
        &self,
        link_to: &[(usize, usize)],
        decisions: &[Decision],
        failed_items: &HashSet<usize>,
        sum: &mut RestoreSummary,
    ) -> Vec<usize> {
        let items = self.dirs.items;
        let mut linked = Vec::new();
        for &(i, f) in link_to {
            let (it, first) = (&items[i], &items[f]);
            if decisions[i] == Decision::Skip {
                skipped(it, self.events, sum);
                continue;
            }
            let r = if failed_items.contains(&f) {
                let e = std::io::Error::other(format!("{} was not restored", first.snap_path));
                Err(Error::io("hard link", &it.dest, e))
            } else {
                hard_link(self.dirs, first, it)
            };
            match r {
                Ok(()) => {
                    sum.files += 1;
                    linked.push(i);
                    self.events.emit(ItemAction::Restored, &it.snap_path, None);
                }
                Err(e) => {
                    let what = format!("hard link to {}", first.snap_path);
                    (self.fail)(it, &what, failed(&e))
                }
            }
        }
        linked
    }
}

/// A path left as it is by the overwrite policy.
pub(super) fn skipped(it: &Item, events: &Events, sum: &mut RestoreSummary) {
    let size = if it.node.kind == NodeKind::File && it.node.links <= 1 {
        it.node.size
    } else {
        0
    };
    sum.files_skipped += 1;
    sum.bytes_skipped += size;
    events.emit(ItemAction::Unchanged, &it.snap_path, Some(size));
}

/// The counts and reports of a dry run: what a restore would do, in tree order. `links`: the
/// paths that would be hard links to an earlier path of the same inode.
pub(super) fn dry_run(
    items: &[Item],
    decisions: &[Decision],
    links: &[usize],
    events: &Events,
    sum: &mut RestoreSummary,
) {
    let links: HashSet<usize> = links.iter().copied().collect();
    for (i, (it, d)) in items.iter().zip(decisions).enumerate() {
        let size = it.node.size;
        match d {
            _ if it.node.kind == NodeKind::Dir => {
                events.emit(ItemAction::Restored, &it.snap_path, None);
            }
            Decision::Skip => skipped(it, events, sum),
            Decision::Unchanged { .. } => {
                sum.files_skipped += 1;
                sum.bytes_skipped += size;
                events.emit(ItemAction::Unchanged, &it.snap_path, Some(size));
            }
            Decision::Update { .. } => {
                sum.files += 1;
                sum.files_updated += 1;
                sum.bytes += size;
                events.emit(ItemAction::Updated, &it.snap_path, Some(size));
            }
            Decision::New if links.contains(&i) => {
                sum.files += 1;
                events.emit(ItemAction::Restored, &it.snap_path, None);
            }
            Decision::New if it.node.kind == NodeKind::File => {
                sum.files += 1;
                sum.bytes += size;
                events.emit(ItemAction::Restored, &it.snap_path, Some(size));
            }
            Decision::New => {
                sum.others += 1;
                events.emit(ItemAction::Restored, &it.snap_path, None);
            }
        }
    }
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
