//! One blob saver for backup, copy and prune (restic's packer manager): sealed blobs go into
//! one pack per blob type; a full pack is stored (in the background on object stores, at most
//! `connections` in flight) and only then may an index file name it. Backups write index files
//! in batches as they go, so an interrupted backup's packs are found by the next run; prune
//! takes the stored packs and writes its own index.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::{cache_trees, FinishedPack, PackWriter};
use crate::backend::{write_content_addressed, FileType};
use crate::error::{Error, Result};
use crate::format::{BlobType, FileKind, IndexFile, IndexPack};
use crate::id::{BlobId, Id};
use crate::repository::Repository;

/// A backup writes an index file every this many packs, so an interrupted backup's packs are
/// found (and reused) by the next run.
pub(crate) const INDEX_EVERY_PACKS: usize = 64;

/// See the module documentation.
pub(crate) struct BlobSaver<'a> {
    repo: &'a Repository,
    data: Mutex<PackWriter>,
    tree: Mutex<PackWriter>,
    /// Packs stored and not yet named by an index file.
    done: Arc<Mutex<Vec<IndexPack>>>,
    uploads: Option<Uploads>,
    /// Write an index file every this many stored packs (`None`: the caller indexes them).
    index_every: Option<usize>,
    index_files: Mutex<Vec<Id>>,
    packs_written: AtomicU64,
    bytes_written: AtomicU64,
}

/// A data pack is allocated once at its final size (a full pack plus the largest blob and a
/// header), so it never grows by copying; tree packs are small and grow as needed.
fn pack_capacity(repo: &Repository, ty: BlobType) -> usize {
    match ty {
        BlobType::Data => {
            repo.config().pack_size as usize + repo.config().chunker.max as usize + (1 << 20)
        }
        BlobType::Tree => 0,
    }
}

impl<'a> BlobSaver<'a> {
    pub(crate) fn new(repo: &'a Repository, index_every: Option<usize>) -> BlobSaver<'a> {
        let done = Arc::new(Mutex::new(Vec::new()));
        let n = repo.backend().connections();
        BlobSaver {
            repo,
            data: Mutex::new(PackWriter::new(pack_capacity(repo, BlobType::Data))),
            tree: Mutex::new(PackWriter::new(pack_capacity(repo, BlobType::Tree))),
            uploads: (n > 0).then(|| Uploads::start(repo.backend().clone(), n, done.clone())),
            done,
            index_every,
            index_files: Mutex::new(Vec::new()),
            packs_written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        }
    }

    /// Adds a sealed blob of `raw_len` plaintext bytes; stores the pack it fills.
    pub(crate) fn add(&self, ty: BlobType, id: BlobId, sealed: &[u8], raw_len: u32) -> Result<()> {
        let full = {
            let mut w = match ty {
                BlobType::Data => self.data.lock().unwrap(),
                BlobType::Tree => self.tree.lock().unwrap(),
            };
            w.add(ty, id, sealed, raw_len);
            (w.len() >= self.repo.config().pack_size as usize)
                .then(|| std::mem::replace(&mut *w, PackWriter::new(pack_capacity(self.repo, ty))))
        };
        match full {
            Some(w) => self.store(w),
            None => Ok(()),
        }
    }

    fn store(&self, w: PackWriter) -> Result<()> {
        if w.is_empty() {
            return Ok(());
        }
        let p = w.finish(self.repo.keys());
        cache_trees(self.repo, &p);
        self.packs_written.fetch_add(1, Relaxed);
        self.bytes_written.fetch_add(p.bytes.len() as u64, Relaxed);
        if let Some(u) = &self.uploads {
            u.send(p)?;
        } else {
            write_content_addressed(
                &**self.repo.backend(),
                FileType::Pack,
                &p.id.to_hex(),
                &p.bytes,
            )?;
            self.done.lock().unwrap().push(IndexPack {
                id: p.id,
                blobs: p.entries,
            });
        }
        let batch = self.index_every.and_then(|n| {
            let mut done = self.done.lock().unwrap();
            (done.len() >= n).then(|| std::mem::take(&mut *done))
        });
        match batch {
            Some(packs) => self.write_index(packs),
            None => Ok(()),
        }
    }

    /// Stores the packs still being filled and waits for every upload.
    pub(crate) fn finish_packs(&self) -> Result<()> {
        for m in [&self.data, &self.tree] {
            let w = std::mem::replace(&mut *m.lock().unwrap(), PackWriter::new(0));
            self.store(w)?;
        }
        match &self.uploads {
            Some(u) => u.finish(),
            None => Ok(()),
        }
    }

    /// The packs stored and not yet named by an index file written here.
    pub(crate) fn take_stored(&self) -> Vec<IndexPack> {
        std::mem::take(&mut *self.done.lock().unwrap())
    }

    /// `finish_packs`, then an index file for every pack not yet named by one.
    pub(crate) fn flush(&self) -> Result<()> {
        self.finish_packs()?;
        let packs = self.take_stored();
        self.write_index(packs)
    }

    fn write_index(&self, packs: Vec<IndexPack>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let f = IndexFile {
            supersedes: vec![],
            packs,
        };
        let id = self
            .repo
            .save_file(FileKind::Index, FileType::Index, &f.encode())?;
        self.index_files.lock().unwrap().push(id);
        Ok(())
    }

    /// The index files written so far.
    pub(crate) fn index_files(&self) -> Vec<Id> {
        self.index_files.lock().unwrap().clone()
    }

    /// Packs stored (or handed to an upload) and their bytes.
    pub(crate) fn written(&self) -> (u64, u64) {
        (
            self.packs_written.load(Relaxed),
            self.bytes_written.load(Relaxed),
        )
    }
}

/// Background uploads for stores that answer slowly (object stores): finished packs go to
/// `connections` threads through a rendezvous channel, so at most that many packs are in
/// flight (memory stays bounded) while the workers go on chunking. A pack joins `done`, and so
/// can be named by an index file, only once its upload has succeeded.
struct Uploads {
    tx: Mutex<Option<crossbeam_channel::Sender<FinishedPack>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    error: Arc<Mutex<Option<Error>>>,
    poisoned: Arc<std::sync::atomic::AtomicBool>,
}

impl Uploads {
    pub(super) fn start(
        be: Arc<dyn crate::backend::Backend>,
        n: usize,
        done: Arc<Mutex<Vec<IndexPack>>>,
    ) -> Uploads {
        let (tx, rx) = crossbeam_channel::bounded::<FinishedPack>(0);
        let error: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let poisoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|i| {
                let (rx, be, done, error) = (rx.clone(), be.clone(), done.clone(), error.clone());
                let poisoned = poisoned.clone();
                std::thread::Builder::new()
                    .name(format!("cista-upload-{i}"))
                    .spawn(move || {
                        for p in rx {
                            // After a failure the rest are dropped: the backup is failing.
                            if poisoned.load(Relaxed) {
                                continue;
                            }
                            match crate::backend::write_content_addressed(
                                &*be,
                                FileType::Pack,
                                &p.id.to_hex(),
                                &p.bytes,
                            ) {
                                Ok(()) => done.lock().unwrap().push(IndexPack {
                                    id: p.id,
                                    blobs: p.entries,
                                }),
                                Err(e) => {
                                    poisoned.store(true, Relaxed);
                                    error.lock().unwrap().get_or_insert(e);
                                }
                            }
                        }
                    })
                    .expect("spawn upload thread")
            })
            .collect();
        Uploads {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            error,
            poisoned,
        }
    }

    /// The first upload error, once; afterwards a short error for the callers that come later
    /// (the backup is failing either way, and none of them may go on as if its pack were stored).
    fn failed(&self) -> Result<()> {
        if let Some(e) = self.error.lock().unwrap().take() {
            return Err(e);
        }
        if self.poisoned.load(Relaxed) {
            return Err(Error::Invalid(
                "a pack upload failed (reported above); no snapshot saved".into(),
            ));
        }
        Ok(())
    }

    fn send(&self, p: FinishedPack) -> Result<()> {
        self.failed()?;
        let tx = self.tx.lock().unwrap().clone();
        let sent = match tx {
            // Blocks until an upload thread is free: the bound on packs in memory.
            Some(tx) => tx.send(p).is_ok(),
            None => false,
        };
        if !sent {
            // No upload thread took the pack (they stopped, or a panic ended them): it is not
            // stored, and the blobs in it must not be named by any snapshot.
            self.poisoned.store(true, Relaxed);
        }
        self.failed()
    }

    /// Waits for every upload; the first error, if any.
    fn finish(&self) -> Result<()> {
        drop(self.tx.lock().unwrap().take());
        for t in std::mem::take(&mut *self.threads.lock().unwrap()) {
            if t.join().is_err() {
                self.poisoned.store(true, Relaxed);
            }
        }
        self.failed()
    }
}

impl Drop for Uploads {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
