//! File-writer bookkeeping (restic's `fileswriter`): which files are open, how many blob
//! placements each still waits for, and finishing a file (length, metadata) when its last
//! placement is accounted for, or removing it if any failed. A file that replaces an existing
//! one is written under a temporary name beside it and renamed over it only once complete, so
//! a restore that fails (or is killed) leaves the old file whole, never part old, part new.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::dirs::Dirs;
use super::meta::set_fd_meta;
use super::plan::{open_existing, FileId};
use super::{failed, Events, Fail, Item, ItemAction};
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
    /// It replaces an existing regular file (written beside it, then renamed over it).
    pub(super) replace: bool,
    pub(super) out: Mutex<Out>,
    /// Blob placements still to write; the one that takes it to zero finishes the file.
    pub(super) remaining: AtomicUsize,
}

#[derive(Default)]
pub(super) struct Out {
    pub(super) file: Option<File>,
    pub(super) created: bool,
    /// The temporary name it is written under, when it replaces a file.
    pub(super) tmp: Option<Vec<u8>>,
    /// (device, inode) of the file while it is closed (see `MAX_OPEN`).
    pub(super) inode: Option<(u64, u64)>,
    /// The first error; a failed file is removed once its last placement is accounted for.
    pub(super) error: Option<Problem>,
}

impl Out {
    /// The name the file is written under in its directory.
    fn name<'a>(&'a self, it: &'a Item) -> &'a [u8] {
        self.tmp.as_deref().unwrap_or(&it.node.name)
    }
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
        Err(Errno::EXIST) => dirs
            .clear(&dir, name)
            .and_then(|()| rustix::fs::openat(&dir, name, flags, mode)),
        r => r,
    }
    .map(File::from)
    .map_err(|e| Error::io("create", &it.dest, e.into()))
}

/// Creates the file that is to replace `it`'s existing one, under a new name in the same
/// directory (`O_EXCL`: never anything already there); returns it and its name.
pub(super) fn create_beside(dirs: &Dirs, it: &Item) -> Result<(File, Vec<u8>)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = dirs.parent_of(it)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let mut tries = 0;
    loop {
        let n = NEXT.fetch_add(1, Relaxed);
        let name = format!(".cista-restore-{:x}-{n:x}", std::process::id()).into_bytes();
        match rustix::fs::openat(&dir, name.as_slice(), flags, Mode::RUSR | Mode::WUSR) {
            Ok(fd) => return Ok((File::from(fd), name)),
            Err(Errno::EXIST) if tries < 100 => tries += 1,
            Err(e) => return Err(Error::io("create", &it.dest, e.into())),
        }
    }
}

/// Opens a file again that was closed after `MAX_OPEN`, keeping what was written. `inode` is
/// the (device, inode) it had: a file swapped in meanwhile is refused, not written and chowned.
pub(super) fn reopen_dest(
    dirs: &Dirs,
    it: &Item,
    name: &[u8],
    inode: Option<(u64, u64)>,
) -> Result<File> {
    let dir = dirs.parent_of(it)?;
    // O_NONBLOCK: a FIFO swapped in fails (ENXIO) instead of blocking.
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let io = |e: Errno| Error::io("open", &it.dest, e.into());
    let fd = rustix::fs::openat(&dir, name, flags, Mode::empty()).map_err(io)?;
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

/// Removes a file whose restore failed: what was created, under the name it was written.
pub(super) fn remove_dest(dirs: &Dirs, it: &Item, name: &[u8]) {
    if let Ok(dir) = dirs.get(it.parent) {
        let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
    }
}

/// Sets the metadata of an existing file whose content already matches, on a descriptor of
/// that very file (`old`, as it was compared).
pub(super) fn set_existing_meta(dirs: &Dirs, it: &Item, old: FileId, owner: bool) -> Result<()> {
    let f = open_existing(&*dirs.parent_of(it)?, it, old)?;
    set_fd_meta(&it.node, f.as_fd(), &it.dest, owner)
}

/// What `write_files` wrote.
#[derive(Default)]
pub(super) struct Written {
    pub(super) files: u64,
    pub(super) updated: u64,
    pub(super) bytes: u64,
    /// Items that failed (reported): hard links to them are not made.
    pub(super) failed: HashSet<usize>,
}

/// The regular files being written, shared by the threads that read runs.
pub(super) struct Writer<'a> {
    pub(super) dirs: &'a Dirs<'a>,
    pub(super) slots: Vec<Slot>,
    pub(super) owner: bool,
    pub(super) fail: &'a Fail<'a>,
    open_files: AtomicUsize,
    written: Mutex<Written>,
    progress: Option<&'a crate::util::Progress>,
    events: &'a Events<'a>,
}

impl<'a> Writer<'a> {
    /// One slot per item of `files` (indexes into `dirs.items`, and whether each replaces an
    /// existing file).
    pub(super) fn new(
        dirs: &'a Dirs<'a>,
        files: &[(usize, bool)],
        owner: bool,
        fail: &'a Fail<'a>,
        progress: Option<&'a crate::util::Progress>,
        events: &'a Events<'a>,
    ) -> Self {
        let slots = files
            .iter()
            .map(|&(item, replace)| Slot {
                item,
                replace,
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
            written: Mutex::default(),
            progress,
            events,
        }
    }

    /// What was written, and what failed.
    pub(super) fn totals(self) -> Written {
        self.written.into_inner().unwrap()
    }

    /// Reports slot `si` as failed before anything was written for it.
    pub(super) fn reject(&self, si: usize, why: Problem) {
        let it = &self.dirs.items[self.slots[si].item];
        self.written
            .lock()
            .unwrap()
            .failed
            .insert(self.slots[si].item);
        (self.fail)(it, "restore", why);
    }

    /// Creates and finishes the empty file of slot `si`.
    pub(super) fn create_empty(&self, si: usize) {
        let slot = &self.slots[si];
        let it = &self.dirs.items[slot.item];
        let mut out = slot.out.lock().unwrap();
        if let Err(e) = self.open_out(slot, &mut out, it) {
            out.error = Some(failed(&e));
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
                    self.write_at(slot, &mut out, it, place.offset, data, zero)
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

    /// Opens the slot's output unless it is open: created on first use (beside the file it
    /// replaces, or in its place), else reopened.
    fn open_out(&self, slot: &Slot, out: &mut Out, it: &Item) -> Result<()> {
        if out.file.is_some() {
            return Ok(());
        }
        let f = if out.created {
            reopen_dest(self.dirs, it, out.name(it), out.inode)?
        } else if slot.replace {
            let (f, name) = create_beside(self.dirs, it)?;
            out.tmp = Some(name);
            f
        } else {
            create_dest(self.dirs, it)?
        };
        out.created = true;
        out.file = Some(f);
        self.open_files.fetch_add(1, Relaxed);
        Ok(())
    }

    fn write_at(
        &self,
        slot: &Slot,
        out: &mut Out,
        it: &Item,
        offset: u64,
        data: &[u8],
        zero: bool,
    ) -> std::result::Result<(), Problem> {
        (|| -> Result<()> {
            self.open_out(slot, out, it)?;
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
                    None => reopen_dest(self.dirs, it, out.name(it), out.inode)?,
                };
                // Covers trailing holes of a sparse file.
                f.set_len(it.node.size)
                    .map_err(|e| Error::io("set length", &it.dest, e))?;
                set_fd_meta(&it.node, f.as_fd(), &it.dest, self.owner)?;
                match &out.tmp {
                    Some(tmp) => {
                        let dir = self.dirs.parent_of(it)?;
                        let name = it.node.name.as_slice();
                        rustix::fs::renameat(&dir, tmp.as_slice(), &dir, name)
                            .map_err(|e| Error::io("replace", &it.dest, e.into()))
                    }
                    None => Ok(()),
                }
            })()
            .map_err(|e| failed(&e)),
        };
        let mut w = self.written.lock().unwrap();
        match r {
            Ok(()) => {
                w.files += 1;
                w.updated += slot.replace as u64;
                w.bytes += it.node.size;
                drop(w);
                if let Some(p) = self.progress {
                    p.add_files(1);
                    p.set_current(&it.snap_path);
                }
                let action = if slot.replace {
                    ItemAction::Updated
                } else {
                    ItemAction::Restored
                };
                self.events.emit(action, &it.snap_path, Some(it.node.size));
            }
            Err(e) => {
                w.failed.insert(slot.item);
                drop(w);
                if out.created {
                    remove_dest(self.dirs, it, out.name(it));
                }
                (self.fail)(it, "restore", e);
            }
        }
    }
}
