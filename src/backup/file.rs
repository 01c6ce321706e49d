//! Regular files: read, then checked against the metadata they were read under; one that
//! changed meanwhile is read once more, and one that changed again is stored as read the
//! second time and named (`SourceChanged`, exit 3), as borg's "file changed while we backed
//! it up".
//!
//! The blobs of a discarded first read are stored as they were cut: holding them back would
//! mean holding the whole file. The chunks the second read shares with it are its own; the
//! others stay unreferenced until a prune removes them.

use std::fs::{File, Metadata};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use super::source::open_source;
use super::stream::{Content, FileErr};
use super::Archiver;
use crate::error::Result;
use crate::format::Node;
use crate::problem::{Problem, ProblemKind};

/// A test's hook, called after each read of a file with its path and the read's number.
#[cfg(test)]
pub(super) type ReadHook = fn(&Path, u32);

#[cfg(test)]
thread_local! {
    /// The hook of the backups this thread starts.
    pub(super) static AFTER_READ: std::cell::Cell<Option<ReadHook>> =
        const { std::cell::Cell::new(None) };
}

impl Archiver<'_> {
    /// Reads the regular file at `path` into `n`, whose metadata `m` was taken before it was
    /// opened. `Ok(false)`: it could not be read (a warning names it).
    pub(super) fn read_file(&self, path: &Path, n: &mut Node, m: &Metadata) -> Result<bool> {
        let mut f = match open_source(path) {
            Ok(f) => f,
            Err(e) => {
                self.warn(path, "read", e);
                return Ok(false);
            }
        };
        let Some((c, after)) = self.read_once(path, &mut f, n.size, 1)? else {
            return Ok(false);
        };
        if self.same_version(m, &after) {
            set_content(n, c);
            return Ok(true);
        }
        // The bytes of the first read are not part of the snapshot.
        self.c.bytes.fetch_sub(c.size, Relaxed);
        let Some((c, again)) = self.read_once(path, &mut f, after.size(), 2)? else {
            return Ok(false);
        };
        // The node describes the file as the stored read began, so the next backup sees any
        // change made since.
        let name = std::mem::take(&mut n.name);
        *n = self.node_from_meta(name, path, &after);
        set_content(n, c);
        if !self.same_version(&after, &again) {
            let shown = path.display();
            let message = format!(
                "{shown}: file changed while it was read, and again while read anew; \
                 stored as read the second time"
            );
            let p = Problem::new(ProblemKind::SourceChanged, message).with_path(shown.to_string());
            self.warnings.lock().unwrap().push(p);
        }
        Ok(true)
    }

    /// Read `attempt` of `f`, from its start, and its metadata (`fstat`) after it.
    fn read_once(
        &self,
        path: &Path,
        f: &mut File,
        size: u64,
        attempt: u32,
    ) -> Result<Option<(Content, Metadata)>> {
        let mut read = Ok(0);
        if attempt > 1 {
            read = f.seek(SeekFrom::Start(0)).map_err(FileErr::Source);
        }
        let read = read.and_then(|_| self.store_stream(f, size));
        #[cfg(test)]
        if let Some(hook) = self.after_read {
            hook(path, attempt);
        }
        let read = read.and_then(|c| Ok((c, f.metadata().map_err(FileErr::Source)?)));
        match read {
            Ok(r) => Ok(Some(r)),
            Err(FileErr::Source(e)) => {
                self.warn(path, "read", e);
                Ok(None)
            }
            Err(FileErr::Fatal(e)) => Err(e),
        }
    }

    /// Whether two looks at a file see the same version of it: size, mtime, ctime (unless
    /// `ignore_ctime`) and inode (unless `ignore_inode`), as the parent comparison does.
    fn same_version(&self, a: &Metadata, b: &Metadata) -> bool {
        let ctime = |m: &Metadata| (m.ctime(), m.ctime_nsec());
        a.size() == b.size()
            && (a.mtime(), a.mtime_nsec()) == (b.mtime(), b.mtime_nsec())
            && (self.opts.ignore_ctime || ctime(a) == ctime(b))
            && (self.opts.ignore_inode || (a.dev(), a.ino()) == (b.dev(), b.ino()))
    }
}

fn set_content(n: &mut Node, c: Content) {
    // A file that grew or shrank while read is stored as read.
    n.size = c.size;
    n.content = c.blobs;
    n.digest = Some(c.digest);
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;
    use std::sync::Arc;

    use super::*;
    use crate::backend::MemBackend;
    use crate::backup::{backup, BackupOptions, BackupResult, Source};
    use crate::index::Index;
    use crate::repository::{InitOptions, Repository};

    const GROWS: &str = "grows";

    /// Appends a line to the file `grows` (after read `attempt`, when `on` says so).
    fn append(p: &Path, attempt: u32, on: &[u32]) {
        if p.file_name().is_some_and(|n| n == GROWS) && on.contains(&attempt) {
            let mut f = fs::OpenOptions::new().append(true).open(p).unwrap();
            writeln!(f, "appended after read {attempt}").unwrap();
        }
    }

    fn after_first(p: &Path, attempt: u32) {
        append(p, attempt, &[1]);
    }

    fn after_each(p: &Path, attempt: u32) {
        append(p, attempt, &[1, 2]);
    }

    /// Backs up a directory holding `grows` and `still` with `hook` run after each read;
    /// returns the result, the node of `grows` and what `grows` held after each read.
    fn backup_with(hook: fn(&Path, u32)) -> (BackupResult, Node, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let grows = dir.path().join(GROWS);
        let start: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        fs::write(&grows, &start).unwrap();
        fs::write(dir.path().join("still"), b"not changed").unwrap();
        let repo =
            Repository::init(Arc::new(MemBackend::new()), b"pw", InitOptions::default()).unwrap();
        let index = Index::load(&repo).unwrap();
        AFTER_READ.set(Some(hook));
        let source = Source::Paths(vec![dir.path().to_path_buf()]);
        let res = backup(&repo, &index, source, &BackupOptions::default(), None);
        AFTER_READ.set(None);
        let res = res.unwrap();
        let index = Index::load(&repo).unwrap();
        let shown = grows.to_str().unwrap();
        let node = crate::tree::find_node(&repo, &index, &res.snapshot.tree, shown).unwrap();
        // What the file held after read 1 is its start and one line, and so on.
        let text = fs::read(&grows).unwrap();
        let mut states = vec![start.clone()];
        for line in text[start.len()..].split_inclusive(|&b| b == b'\n') {
            let mut s = states.last().unwrap().clone();
            s.extend_from_slice(line);
            states.push(s);
        }
        (res, node, states)
    }

    fn digest(b: &[u8]) -> crate::id::Id {
        crate::id::Id(*blake3::hash(b).as_bytes())
    }

    #[test]
    fn a_file_that_changed_once_is_read_again_and_stored_whole() {
        let (res, node, states) = backup_with(after_first);
        assert_eq!(states.len(), 2, "the hook appended once");
        assert!(res.warnings.is_empty(), "{:?}", res.warnings);
        assert!(res.snapshot_id.is_some());
        assert_eq!(node.size, states[1].len() as u64);
        assert_eq!(node.digest, Some(digest(&states[1])));
        // Counted once, and its bytes once.
        let s = &res.summary;
        assert_eq!((s.total_files_processed, s.files_new), (2, 2));
        let still = "not changed".len() as u64;
        assert_eq!(s.total_bytes_processed, states[1].len() as u64 + still);
    }

    #[test]
    fn a_file_that_changed_twice_is_stored_as_read_again_and_named() {
        let (res, node, states) = backup_with(after_each);
        assert_eq!(states.len(), 3, "the hook appended twice");
        assert!(res.snapshot_id.is_some(), "the snapshot is saved");
        assert_eq!(res.warnings.len(), 1, "{:?}", res.warnings);
        let w = &res.warnings[0];
        assert_eq!(w.kind, ProblemKind::SourceChanged);
        assert!(w.path.as_deref().unwrap().ends_with("/grows"), "{w:?}");
        assert!(w.message.contains("changed while it was read"), "{w}");
        // The second read saw the first append only; the node's metadata is that read's, so
        // the next backup reads the file again.
        assert_eq!(node.size, states[1].len() as u64);
        assert_eq!(node.digest, Some(digest(&states[1])));
    }
}
