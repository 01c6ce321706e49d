//! The regular files' contents: every blob they need is read once by pack, in ranged reads
//! run in parallel, opened and verified, and handed to the writer for each place that needs
//! it; then, with `--verify`, every file is read back.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::dirs::Dirs;
use super::plan::{open_existing, Decision, FileId};
use super::runs::{plan_runs, Run};
use super::writer::{Place, Writer, Written};
use super::{failed, Events, Fail, Item, RestoreOptions};
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::BlobType;
use crate::id::{BlobId, Id};
use crate::index::{BlobLocation, Index};
use crate::pack::open_blob_at;
use crate::problem::{ObjectKind, Problem, ProblemKind};
use crate::repository::Repository;

/// The blobs of one file that replaces an existing file holding them at the same offsets:
/// copied from it, not downloaded.
struct LocalCopy {
    slot: usize,
    old: FileId,
    /// (blob, offset, length)
    blobs: Vec<(BlobId, u64, usize)>,
}

/// What the files of `w` need: where every blob to download goes, by blob (each read once
/// however many files or offsets need it), the blobs to copy from the files being replaced,
/// and the slots of empty files. A file whose blobs the index lacks, or whose blobs do not
/// add up to its size, is reported and left out.
#[allow(clippy::type_complexity)]
fn place_blobs(
    index: &Index,
    w: &Writer,
    decisions: &[&Decision],
) -> (
    HashMap<BlobId, (BlobLocation, Vec<Place>)>,
    Vec<LocalCopy>,
    Vec<usize>,
) {
    let items = w.dirs.items;
    let mut places: HashMap<BlobId, (BlobLocation, Vec<Place>)> = HashMap::new();
    let (mut local, mut empty) = (Vec::new(), Vec::new());
    for (si, slot) in w.slots.iter().enumerate() {
        let node = &items[slot.item].node;
        let locs: std::result::Result<Vec<BlobLocation>, &BlobId> = node
            .content
            .iter()
            .map(|id| index.get(BlobType::Data, id).ok_or(id))
            .collect();
        let problem = match &locs {
            Err(id) => Some(failed(&Error::NotFound {
                what: BlobType::Data.blob_name(),
                id: id.to_hex(),
            })),
            Ok(locs) => {
                let total: u64 = locs.iter().map(|l| l.raw_len as u64).sum();
                (total != node.size).then(|| {
                    let e = Error::corrupt(
                        "file",
                        &items[slot.item].snap_path,
                        format!("its blobs hold {total} bytes, the tree says {}", node.size),
                    );
                    Problem::new(ProblemKind::SizeMismatch, e.to_string())
                })
            }
        };
        if let Some(why) = problem {
            w.reject(si, why);
            continue;
        }
        let locs = locs.expect("an error is reported above");
        if locs.is_empty() {
            empty.push(si);
            continue;
        }
        let (keep, old) = match decisions[si] {
            Decision::Update { keep, old } => (keep.as_slice(), *old),
            _ => (&[][..], (0, 0)),
        };
        let mut copy = LocalCopy {
            slot: si,
            old,
            blobs: Vec::new(),
        };
        let mut offset = 0u64;
        for (i, (id, loc)) in node.content.iter().zip(locs).enumerate() {
            if keep.get(i) == Some(&true) {
                copy.blobs.push((*id, offset, loc.raw_len as usize));
            } else {
                places
                    .entry(*id)
                    .or_insert_with(|| (loc, Vec::new()))
                    .1
                    .push(Place { file: si, offset });
            }
            offset += loc.raw_len as u64;
        }
        slot.remaining.store(node.content.len(), Relaxed);
        if !copy.blobs.is_empty() {
            local.push(copy);
        }
    }
    (places, local, empty)
}

/// Writes the content of the regular files `files` (indexes into `dirs.items`, each `New` or
/// `Update`): every blob they need is read once, by pack in ranged reads, opened and verified,
/// and written at each offset that needs it; blobs a replaced file already holds are copied
/// from it instead.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_files(
    repo: &Repository,
    index: &Index,
    dirs: &Dirs,
    files: &[(usize, &Decision)],
    opts: &RestoreOptions,
    owner: bool,
    fail: &Fail,
    events: &Events,
) -> Written {
    let slots: Vec<(usize, bool)> = files
        .iter()
        .map(|(i, d)| (*i, matches!(d, Decision::Update { .. })))
        .collect();
    let decisions: Vec<&Decision> = files.iter().map(|(_, d)| *d).collect();
    let progress = opts.progress.as_deref();
    let w = Writer::new(dirs, &slots, owner, fail, progress, events);
    let (places, local, empty) = place_blobs(index, &w, &decisions);
    empty.par_iter().for_each(|&si| w.create_empty(si));
    local
        .par_iter()
        .for_each_init(Vec::new, |buf, c| copy_local(repo, c, opts.sparse, &w, buf));
    let runs = plan_runs(places.iter().map(|(id, (loc, _))| (*id, *loc)).collect());
    // An object store answers each ranged read after a round trip: `in_flight` keeps
    // 2 x `connections` reads going rather than one per core.
    repo.in_flight(|| {
        runs.par_iter()
            .for_each(|run| read_run(repo, run, &places, opts.sparse, &w))
    });
    w.totals()
}

/// Copies the blobs a replaced file already holds into its replacement, each read again and
/// checked against its id (the file may have changed since it was compared).
fn copy_local(repo: &Repository, c: &LocalCopy, sparse: bool, w: &Writer, buf: &mut Vec<u8>) {
    let it = &w.dirs.items[w.slots[c.slot].item];
    let src = w
        .dirs
        .parent_of(it)
        .and_then(|dir| open_existing(&dir, it, c.old))
        .map_err(|e| failed(&e));
    for &(id, offset, len) in &c.blobs {
        let place = Place {
            file: c.slot,
            offset,
        };
        let read = src.as_ref().map_err(Clone::clone).and_then(|f| {
            buf.resize(len, 0);
            let e = match f.read_exact_at(buf, offset) {
                Ok(()) if repo.keys().blob_id(buf) == id => return Ok(()),
                Ok(()) => std::io::Error::other("changed while restoring"),
                Err(e) => e,
            };
            Err(failed(&Error::io("read", &it.dest, e)))
        });
        match read {
            Ok(()) => w.put(&place, Ok((buf, sparse && buf.iter().all(|&b| b == 0)))),
            Err(e) => w.put(&place, Err(&e)),
        }
    }
}

/// Reads one run, opens and verifies each blob in it, and hands it to every place that needs
/// it (or the error, so that those files are reported and removed).
fn read_run(
    repo: &Repository,
    run: &Run,
    places: &HashMap<BlobId, (BlobLocation, Vec<Place>)>,
    sparse: bool,
    w: &Writer,
) {
    let sealed = repo.backend().read_range(
        FileType::Pack,
        &run.pack.to_hex(),
        run.start,
        run.end - run.start,
    );
    for (id, loc) in &run.blobs {
        let at = (loc.offset as u64 - run.start) as usize;
        let raw = sealed
            .as_ref()
            .map_err(|e| {
                Problem::from_error(e, ProblemKind::Unreadable)
                    .or_object(ObjectKind::Pack, run.pack)
            })
            .and_then(|s| {
                let sealed = &s[at..at + loc.length as usize];
                open_blob_at(repo, BlobType::Data, id, loc, sealed).map_err(|e| {
                    Problem::from_error(&e, ProblemKind::Damaged).or_object(ObjectKind::Blob, id)
                })
            });
        let targets = &places[id].1;
        match &raw {
            Ok(raw) => {
                let zero = sparse && raw.iter().all(|&b| b == 0);
                for p in targets {
                    w.put(p, Ok((raw, zero)));
                }
            }
            Err(e) => {
                for p in targets {
                    w.put(p, Err(e));
                }
            }
        }
    }
}

/// Reads the regular files `files` (indexes into `dirs.items`) back (`--verify`); returns how
/// many matched.
pub(super) fn verify_files(dirs: &Dirs, files: &[usize], fail: &Fail) -> u64 {
    let items = dirs.items;
    let failed: Vec<(usize, Error)> = files
        .par_iter()
        .filter_map(|&i| verify_file(dirs, &items[i]).err().map(|e| (i, e)))
        .collect();
    for (i, e) in &failed {
        let kind = if e.is_integrity() {
            ProblemKind::DigestMismatch
        } else {
            ProblemKind::VerifyFailed
        };
        fail(&items[*i], "verify", Problem::new(kind, e.to_string()));
    }
    (files.len() - failed.len()) as u64
}

/// Re-reads a restored file, opened by name in its directory's descriptor without following
/// a symlink, and checks its whole-content digest.
pub(super) fn verify_file(dirs: &Dirs, it: &Item) -> Result<()> {
    let dir = dirs.parent_of(it)?;
    let (node, path, name) = (&it.node, &it.dest, it.node.name.as_slice());
    // O_NONBLOCK: a FIFO swapped in after the restore is read as empty instead of blocking.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    // O_NOATIME: reading back must not undo the atime just restored.
    let fd = match rustix::fs::openat(&dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rustix::fs::openat(&dir, name, flags, Mode::empty()),
        r => r,
    }
    .map_err(|e| Error::io("open", path, e.into()))?;
    let mut f = File::from(fd);
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    let got = Id(*h.finalize().as_bytes());
    if node.digest.is_some_and(|d| d != got) || size != node.size {
        return Err(Error::corrupt(
            "restored file",
            path.display(),
            "content differs from the snapshot's digest",
        ));
    }
    Ok(())
}
