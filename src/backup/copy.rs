//! `copy`: snapshots of another repository re-chunked and re-encrypted into this one, their
//! blobs read ahead when the source is an object store.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rayon::prelude::*;

use super::stream::FileErr;
use super::{Archiver, BackupOptions};
use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind, Snapshot, Tree};
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::index::Index;
use crate::lock::LockGuard;
use crate::repository::Repository;
use crate::tree::load_tree;

/// Bytes of the source repository's blobs read ahead of the files being copied, across the
/// whole copy (plus one blob per file being read, so every file makes progress).
pub(super) const COPY_AHEAD_BYTES: u64 = 64 << 20;

/// Reads of the source repository started before the copy needs them (object stores only):
/// each blob is a ranged read that waits a round trip, and a copy otherwise has one per file
/// being read, one file per core, in flight.
pub(super) struct Ahead {
    /// Reads in flight for one file at most: `io_width()` of the source, 0 on local disk
    /// (read when needed, as before).
    pub(super) width: usize,
    /// Bytes of reads started and not yet taken, for `COPY_AHEAD_BYTES`.
    pub(super) bytes: AtomicU64,
}

/// A read started on the source repository's I/O threads, or one to make when it is needed
/// (a blob the index does not name: `read_blob` then reports it).
pub(super) enum Pending {
    Started {
        id: BlobId,
        len: u64,
        rx: std::sync::mpsc::Receiver<Result<Vec<u8>>>,
    },
    Later(BlobId),
}

/// Reads the concatenated content of a file node from another repository.
pub(super) struct BlobReader<'r> {
    pub(super) repo: &'r Repository,
    pub(super) index: &'r Index,
    pub(super) ahead: &'r Ahead,
    pub(super) ids: std::vec::IntoIter<BlobId>,
    pub(super) pending: std::collections::VecDeque<Pending>,
    pub(super) cur: Vec<u8>,
    pub(super) pos: usize,
}

impl<'r> BlobReader<'r> {
    pub(super) fn new(
        repo: &'r Repository,
        index: &'r Index,
        ahead: &'r Ahead,
        ids: Vec<BlobId>,
    ) -> Self {
        BlobReader {
            repo,
            index,
            ahead,
            ids: ids.into_iter(),
            pending: Default::default(),
            cur: Vec::new(),
            pos: 0,
        }
    }

    /// Starts reading the next blob, unless `width` reads are pending already or (unless
    /// `force`) the copy's read-ahead budget is spent. False when nothing was started.
    pub(super) fn start(&mut self, force: bool) -> bool {
        if self.pending.len() >= self.ahead.width {
            return false;
        }
        let Some(&id) = self.ids.as_slice().first() else {
            return false;
        };
        let loc = self.index.get(BlobType::Data, &id);
        let len = loc.map_or(0, |l| l.length as u64);
        if !force && self.ahead.bytes.load(Relaxed) + len > COPY_AHEAD_BYTES {
            return false;
        }
        self.ids.next();
        let Some(loc) = loc else {
            self.pending.push_back(Pending::Later(id));
            return true;
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let repo = self.repo.clone();
        let started = self.repo.spawn_io(move || {
            // The reader may be gone (an error elsewhere): nobody wants the blob then.
            let _ = tx.send(crate::pack::read_blob_at(&repo, BlobType::Data, &id, &loc));
        });
        if started {
            self.ahead.bytes.fetch_add(len, Relaxed);
            self.pending.push_back(Pending::Started { id, len, rx });
        } else {
            self.pending.push_back(Pending::Later(id));
        }
        true
    }

    /// Starts reads for this file while the budget allows.
    pub(super) fn read_ahead(&mut self) {
        while self.start(false) {}
    }

    pub(super) fn next_blob(&mut self) -> Option<Result<Vec<u8>>> {
        if self.pending.is_empty() {
            self.start(true);
        }
        self.read_ahead();
        let sync = |id: BlobId| crate::pack::read_blob(self.repo, self.index, BlobType::Data, &id);
        match self.pending.pop_front() {
            Some(Pending::Started { id, len, rx }) => {
                self.ahead.bytes.fetch_sub(len, Relaxed);
                match rx.recv() {
                    Ok(Ok(raw)) => Some(Ok(raw)),
                    // Failed (or its thread died): again through the index, which also tries
                    // the blob's other copies and names what is wrong.
                    _ => Some(sync(id)),
                }
            }
            Some(Pending::Later(id)) => Some(sync(id)),
            None => self.ids.next().map(sync),
        }
    }
}

impl Drop for BlobReader<'_> {
    fn drop(&mut self) {
        for p in &self.pending {
            if let Pending::Started { len, .. } = p {
                self.ahead.bytes.fetch_sub(*len, Relaxed);
            }
        }
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            let Some(next) = self.next_blob() else {
                return Ok(0);
            };
            self.cur = next.map_err(|e| std::io::Error::other(e.to_string()))?;
            self.pos = 0;
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Archiver<'_> {
    /// Re-stores a tree of another repository: file contents are re-chunked, re-encrypted and
    /// deduplicated against this repository; every file's digest is checked on the way.
    pub(super) fn copy_tree(
        &self,
        src: &Repository,
        sidx: &Index,
        ahead: &Ahead,
        tree: &TreeId,
    ) -> Result<Tree> {
        let t = load_tree(src, sidx, tree)?;
        // Every file of the directory starts its reads now, in order, within the budget: a
        // directory of small files (one blob each) then has them all on the wire at once,
        // not one per core.
        let nodes: Vec<(Node, Option<BlobReader>)> = t
            .nodes
            .into_iter()
            .map(|mut n| {
                let r = (n.kind == NodeKind::File).then(|| {
                    let mut r = BlobReader::new(src, sidx, ahead, std::mem::take(&mut n.content));
                    r.read_ahead();
                    r
                });
                (n, r)
            })
            .collect();
        let nodes = nodes
            .into_par_iter()
            .map(|(mut n, r)| {
                match n.kind {
                    NodeKind::File => {
                        let mut r = r.expect("made for every file");
                        let c = match self.store_stream(&mut r, n.size) {
                            Ok(c) => c,
                            Err(FileErr::Fatal(e)) => return Err(e),
                            Err(FileErr::Source(e)) => {
                                return Err(Error::Invalid(format!(
                                    "reading {} from the source repository: {e}",
                                    n.name_lossy()
                                )))
                            }
                        };
                        if n.digest.is_some_and(|d| d != c.digest) || c.size != n.size {
                            return Err(Error::corrupt(
                                "file",
                                n.name_lossy(),
                                "copied content differs from the source digest",
                            ));
                        }
                        n.content = c.blobs;
                        if let Some(p) = &self.opts.progress {
                            p.add_files(1);
                        }
                        self.c.files.fetch_add(1, Relaxed);
                        self.c.files_new.fetch_add(1, Relaxed);
                    }
                    NodeKind::Dir => {
                        let sub = n.subtree.expect("decoded dirs have subtrees");
                        let tree = self.copy_tree(src, sidx, ahead, &sub)?;
                        self.finish_dir(&mut n, tree, None)?;
                    }
                    _ => {}
                }
                Ok(n)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tree { nodes })
    }
}

/// The identity a copied snapshot carries: the first snapshot of its line of copies.
pub fn copy_identity(id: &SnapshotId, s: &Snapshot) -> SnapshotId {
    s.original.unwrap_or(*id)
}

/// Copies one snapshot of `src` into `dst` (re-chunked and re-encrypted for `dst`), unless
/// `dst` already has a copy of it. Returns the new snapshot id, or `None` when skipped.
/// Packs and index files are written as by a backup, so an interrupted copy resumes cheaply.
pub fn copy_snapshot(
    dst: &Repository,
    dst_index: &Index,
    (src, src_index): (&Repository, &Index),
    src_id: &SnapshotId,
    snap: &Snapshot,
    progress: Option<std::sync::Arc<crate::util::Progress>>,
    lock: Option<&LockGuard>,
) -> Result<Option<SnapshotId>> {
    let identity = copy_identity(src_id, snap);
    if dst
        .snapshots()?
        .iter()
        .any(|(id, s)| copy_identity(id, s) == identity || *id == identity)
    {
        return Ok(None);
    }
    let opts = BackupOptions {
        progress,
        ..Default::default()
    };
    let a = Archiver::new(dst, dst_index, &opts)?;
    let ahead = Ahead {
        width: src.io_width(),
        bytes: AtomicU64::new(0),
    };
    let mut root = a.copy_tree(src, src_index, &ahead, &snap.tree)?;
    let tree = a.add_blob(BlobType::Tree, &root.encode())?;
    a.saver.flush()?;
    let copy = Snapshot {
        tree,
        parent: None,
        original: Some(identity),
        ..snap.clone()
    };
    if let Some(l) = lock {
        l.check()?;
    }
    dst.save_snapshot(&copy).map(Some)
}
