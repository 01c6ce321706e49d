//! File-writer bookkeeping (restic's `fileswriter`): which files are open, how many blob
//! placements each still waits for, and finishing a file (length, metadata) when its last
//! placement is accounted for, or removing it if any failed.

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::dirs::{clear_entry, Dirs};
use super::meta::set_fd_meta;
use super::{failed, Fail, Item};
use crate::error::{Error, Result};
use crate::problem::Problem;

/// Files left open between writes (a large file whose blobs lie in several packs); beyond
/// this a file is closed after each write and reopened by the next.
pub(super) const MAX_OPEN: usize = 256;

/// Where one blob goes: a file (its place in `write_files`' slots) and a byte offset.
pub(super) struct Place {
    pub(super) file: usize,
    pub(super) offset: u64,
}

/// A regular file being restored.
pub(super) struct Slot {
    pub(super) item: usize,
    pub(super) out: Mutex<Out>,
    /// Blob placements still to write; the one that takes it to zero finishes the file.
    pub(super) remaining: AtomicUsize,
}

#[derive(Default)]
pub(super) struct Out {
    pub(super) file: Option<File>,
    pub(super) created: bool,
    /// (device, inode) of the file while it is closed (see `MAX_OPEN`).
    pub(super) inode: Option<(u64, u64)>,
    /// The first error; a failed file is removed once its last placement is accounted for.
    pub(super) error: Option<Problem>,
}

/// Creates a file to restore into, replacing whatever else stands there (a symlink, a FIFO, a
/// file that may be a hard link to one outside the target), so content never goes through
/// anything planted in the target.
pub(super) fn create_dest(dirs: &Dirs, it: &Item) -> Result<File> {
    let dir = dirs.parent_of(it)?;
    let name = it.node.name.as_slice();
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let mode = Mode::RUSR | Mode::WUSR;
    match rustix::fs::openat(&dir, name, flags, mode) {
        Err(Errno::EXIST) => {
            clear_entry(&dir, name).and_then(|()| rustix::fs::openat(&dir, name, flags, mode))
        }
        r => r,
    }
    .map(File::from)
    .map_err(|e| Error::io("create", &it.dest, e.into()))
}

/// Opens a file again that was closed after `MAX_OPEN`, keeping what was written. `inode` is
/// the (device, inode) it had: a file swapped in meanwhile is refused, not written and chowned.
pub(super) fn reopen_dest(dirs: &Dirs, it: &Item, inode: Option<(u64, u64)>) -> Result<File> {
    let dir = dirs.parent_of(it)?;
    // O_NONBLOCK: a FIFO swapped in fails (ENXIO) instead of blocking.
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let io = |e: Errno| Error::io("open", &it.dest, e.into());
    let fd = rustix::fs::openat(&dir, it.node.name.as_slice(), flags, Mode::empty()).map_err(io)?;
    if inode.is_some() && inode != file_id(&fd) {
        let e = std::io::Error::other("replaced by another file while restoring");
        return Err(Error::io("open", &it.dest, e));
    }
    Ok(File::from(fd))
}

pub(super) fn file_id(fd: impl AsFd) -> Option<(u64, u64)> {
    let st = rustix::fs::fstat(fd).ok()?;
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// Removes a file whose restore failed.
pub(super) fn remove_dest(dirs: &Dirs, it: &Item) {
    if let Ok(dir) = dirs.get(it.parent) {
        let _ = rustix::fs::unlinkat(&dir, it.node.name.as_slice(), AtFlags::empty());
    }
}

/// The regular files being written, shared by the threads that read runs.
pub(super) struct Writer<'a> {
    pub(super) dirs: &'a Dirs<'a>,
    pub(super) slots: Vec<Slot>,
    pub(super) owner: bool,
    pub(super) fail: &'a Fail<'a>,
    open_files: AtomicUsize,
    done: AtomicU64,
    bytes: AtomicU64,
    progress: Option<&'a crate::util::Progress>,
}

impl<'a> Writer<'a> {
    /// One slot per item of `files` (indexes into `dirs.items`).
    pub(super) fn new(
        dirs: &'a Dirs<'a>,
        files: &[usize],
        owner: bool,
        fail: &'a Fail<'a>,
        progress: Option<&'a crate::util::Progress>,
    ) -> Self {
        let slots = files
            .iter()
            .map(|&item| Slot {
                item,
                out: Mutex::new(Out::default()),
                remaining: AtomicUsize::new(0),
            })
            .collect();
        Writer {
            dirs,
            slots,
            owner,
            fail,
            open_files: AtomicUsize::new(0),
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            progress,
        }
    }

    /// The files finished and their bytes.
    pub(super) fn totals(&self) -> (u64, u64) {
        (self.done.load(Relaxed), self.bytes.load(Relaxed))
    }

    /// Creates and finishes the empty file of slot `si`.
    pub(super) fn create_empty(&self, si: usize) {
        let slot = &self.slots[si];
        let it = &self.dirs.items[slot.item];
        let mut out = slot.out.lock().unwrap();
        match create_dest(self.dirs, it) {
            Ok(f) => {
                out.created = true;
                out.file = Some(f);
                self.open_files.fetch_add(1, Relaxed);
            }
            Err(e) => out.error = Some(failed(&e)),
        }
        self.finish(slot, &mut out);
    }

    /// Writes `data` at one place (a hole when `zero`), or records the error for its file;
    /// finishes the file when this was its last placement.
    pub(super) fn put(&self, place: &Place, data: std::result::Result<(&[u8], bool), &Problem>) {
        let slot = &self.slots[place.file];
        let it = &self.dirs.items[slot.item];
        let mut out = slot.out.lock().unwrap();
        if out.error.is_none() {
            let r = match data {
                Err(e) => Err(e.clone()),
                Ok((data, zero)) => {
                    if let Some(p) = self.progress {
                        p.add_bytes(data.len() as u64);
                    }
                    self.write_at(&mut out, it, place.offset, data, zero)
                }
            };
            if let Err(e) = r {
                out.error = Some(e);
            }
        }
        if slot.remaining.fetch_sub(1, Relaxed) == 1 {
            self.finish(slot, &mut out);
        } else if out.file.is_some() && self.open_files.load(Relaxed) > MAX_OPEN {
            out.inode = out.file.take().as_ref().and_then(file_id);
            self.open_files.fetch_sub(1, Relaxed);
        }
    }

    fn write_at(
        &self,
        out: &mut Out,
        it: &Item,
        offset: u64,
        data: &[u8],
        zero: bool,
    ) -> std::result::Result<(), Problem> {
        (|| -> Result<()> {
            if out.file.is_none() {
                let f = if out.created {
                    reopen_dest(self.dirs, it, out.inode)?
                } else {
                    create_dest(self.dirs, it)?
                };
                out.created = true;
                out.file = Some(f);
                self.open_files.fetch_add(1, Relaxed);
            }
            if !zero {
                use std::os::unix::fs::FileExt;
                let f = out.file.as_ref().expect("opened above");
                f.write_all_at(data, offset)
                    .map_err(|e| Error::io("write", &it.dest, e))?;
            }
            Ok(())
        })()
        .map_err(|e| failed(&e))
    }

    /// Called with the slot's lock held once its last placement is written (or failed).
    fn finish(&self, slot: &Slot, out: &mut Out) {
        let it = &self.dirs.items[slot.item];
        let file = out.file.take();
        if file.is_some() {
            self.open_files.fetch_sub(1, Relaxed);
        }
        let r = match out.error.take() {
            Some(e) => Err(e),
            None => (|| -> Result<()> {
                let f = match file {
                    Some(f) => f,
                    None => reopen_dest(self.dirs, it, out.inode)?,
                };
                // Covers trailing holes of a sparse file.
                f.set_len(it.node.size)
                    .map_err(|e| Error::io("set length", &it.dest, e))?;
                set_fd_meta(&it.node, f.as_fd(), &it.dest, self.owner)
            })()
            .map_err(|e| failed(&e)),
        };
        match r {
            Ok(()) => {
                self.done.fetch_add(1, Relaxed);
                self.bytes.fetch_add(it.node.size, Relaxed);
                if let Some(p) = self.progress {
                    p.add_files(1);
                    p.set_current(&it.snap_path);
                }
            }
            Err(e) => {
                if out.created {
                    remove_dest(self.dirs, it);
                }
                (self.fail)(it, "restore", e);
            }
        }
    }
}
