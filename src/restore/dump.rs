//! `dump`: one file's content, or a directory as a tar archive, to a writer.
//!
//! Fail-closed by default: every blob of a file is read, opened and verified (authentication,
//! keyed id, length) and the whole-file digest checked in a first pass that keeps nothing;
//! only then is the file read again and written, each blob checked again on the way. A damaged
//! file therefore writes nothing, so `cista dump … | psql -1` sees a failed dump and no data.
//! `stream` writes in one pass (a failure mid-file leaves the bytes before it written). Both
//! passes read a window of blobs at a time in parallel, so memory stays bounded.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind};
use crate::id::{BlobId, Id, TreeId};
use crate::index::Index;
use crate::pack::read_blob;
use crate::repository::Repository;
use crate::tree::load_tree;

/// Blobs `dump` reads and opens in parallel at a time: at most this many, and at most
/// `DUMP_WINDOW_BYTES` of plaintext unless a single blob is larger.
const DUMP_WINDOW: usize = 8;
const DUMP_WINDOW_BYTES: u64 = 8 << 20;

/// How `dump` writes a directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveFormat {
    /// A tar archive: GNU headers (long names, large sizes and ids), PAX records for
    /// sub-second modification times and extended attributes (`SCHILY.xattr.*`).
    #[default]
    Tar,
}

/// How `dump` writes.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DumpOptions {
    /// Write each blob as soon as it is read and verified, in one pass, the whole-file digest
    /// checked at the end. A failure then leaves a partial output behind: unsafe where the
    /// reader acts on what it gets (`cista dump … | psql`). By default every file is read and
    /// verified whole before its first byte is written, then read again and written.
    pub stream: bool,
    /// How a directory is written (a file is written as it is).
    pub archive: ArchiveFormat,
}

/// What `dump` wrote.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DumpSummary {
    /// Bytes of file content written (archive headers not counted).
    pub bytes: u64,
    /// Archive entries written (0 when a file was dumped).
    pub entries: u64,
    /// Paths below a dumped directory an archive cannot hold (sockets), left out.
    pub skipped: Vec<String>,
}

/// Splits a file's blob list into windows (see `DUMP_WINDOW`).
pub(super) fn windows<'a>(index: &Index, content: &'a [BlobId]) -> Vec<&'a [BlobId]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, id) in content.iter().enumerate() {
        let len = index
            .get(BlobType::Data, id)
            .map_or(0, |l| l.raw_len as u64);
        if i > start && (i - start == DUMP_WINDOW || bytes + len > DUMP_WINDOW_BYTES) {
            out.push(&content[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < content.len() {
        out.push(&content[start..]);
    }
    out
}

/// Writes the node at `path` (its snapshot path, for messages) to `out`: a file's content, or
/// a directory as an archive (`opts.archive`). Nothing else can be dumped.
pub fn dump(
    repo: &Repository,
    index: &Index,
    node: &Node,
    path: &str,
    opts: &DumpOptions,
    out: &mut dyn Write,
) -> Result<DumpSummary> {
    let sum = match (node.kind, node.subtree) {
        (NodeKind::File, _) => DumpSummary {
            bytes: dump_file(repo, index, node, path, opts.stream, out)?,
            ..Default::default()
        },
        (NodeKind::Dir, Some(tree)) => match opts.archive {
            ArchiveFormat::Tar => dump_tar(repo, index, &tree, path, opts.stream, out)?,
        },
        _ => {
            return Err(Error::Invalid(format!(
                "{path} is a {}, not a file or a directory",
                node.kind.name()
            )))
        }
    };
    out.flush().map_err(write_failed)?;
    Ok(sum)
}

fn write_failed(e: io::Error) -> Error {
    Error::io("write", "<stdout>", e)
}

/// Which pass a file's blobs are read in: what a failure has written of it.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    Verify,
    Write,
}

/// A file's blobs in order, a window read in parallel at a time, each opened and verified;
/// once all were yielded, their length and digest are checked against the node.
struct FileBlobs<'a> {
    repo: &'a Repository,
    index: &'a Index,
    node: &'a Node,
    path: &'a str,
    pass: Pass,
    windows: std::vec::IntoIter<&'a [BlobId]>,
    ready: VecDeque<Vec<u8>>,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<'a> FileBlobs<'a> {
    fn new(
        repo: &'a Repository,
        index: &'a Index,
        node: &'a Node,
        path: &'a str,
        pass: Pass,
    ) -> FileBlobs<'a> {
        FileBlobs {
            repo,
            index,
            node,
            path,
            pass,
            windows: windows(index, &node.content).into_iter(),
            ready: VecDeque::new(),
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    /// What a failure now has written of the file.
    fn written(&self) -> String {
        match self.pass {
            Pass::Verify => "nothing of it was written".into(),
            Pass::Write => format!("{} bytes of it were written", self.bytes),
        }
    }

    /// The next blob, verified; `None` once every blob was and the length and the digest
    /// recorded at backup match.
    fn next_blob(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                self.hasher.update(&b);
                self.bytes += b.len() as u64;
                return Ok(Some(b));
            }
            let Some(window) = self.windows.next() else {
                self.finish()?;
                return Ok(None);
            };
            let read: Vec<Result<Vec<u8>>> = window
                .par_iter()
                .map(|id| read_blob(self.repo, self.index, BlobType::Data, id))
                .collect();
            for (id, r) in window.iter().zip(read) {
                match r {
                    Ok(b) => self.ready.push_back(b),
                    Err(e) => return Err(self.blob_failed(e, id)),
                }
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        if self.bytes != self.node.size {
            return Err(Error::corrupt(
                "file",
                self.path,
                format!(
                    "its blobs hold {} bytes, the snapshot records {}; {}",
                    self.bytes,
                    self.node.size,
                    self.written()
                ),
            ));
        }
        if self
            .node
            .digest
            .is_some_and(|d| d != Id(*self.hasher.finalize().as_bytes()))
        {
            return Err(Error::corrupt(
                "file",
                self.path,
                format!(
                    "content does not match the digest recorded at backup; {}",
                    self.written()
                ),
            ));
        }
        Ok(())
    }

    /// `e`, met reading blob `id`, naming the blob, its pack and the file: damage (a blob
    /// that fails verification or is gone) as damage to the file, other failures (a store
    /// that does not answer) as they are.
    fn blob_failed(&self, e: Error, id: &BlobId) -> Error {
        let hex = id.to_hex();
        let mut why = e.to_string();
        if !why.contains(&hex) {
            why = format!("data blob {hex}: {why}");
        }
        if let Some(loc) = self.index.get(BlobType::Data, id) {
            if !why.contains(&loc.pack.to_hex()) {
                why = format!("{why} (pack {})", loc.pack);
            }
        }
        if e.is_integrity() || e.is_not_found() {
            return Error::corrupt("file", self.path, format!("{why}; {}", self.written()));
        }
        match e {
            Error::Backend { op, path, source } => Error::Backend {
                op,
                path: format!(
                    "{path} (data blob {hex} of file {}; {})",
                    self.path,
                    self.written()
                ),
                source,
            },
            e => e,
        }
    }
}

/// Writes one file's content to `out`: verified whole first unless `stream`.
fn dump_file(
    repo: &Repository,
    index: &Index,
    node: &Node,
    path: &str,
    stream: bool,
    out: &mut dyn Write,
) -> Result<u64> {
    if !stream {
        verify_file(repo, index, node, path)?;
    }
    let mut blobs = FileBlobs::new(repo, index, node, path, Pass::Write);
    while let Some(b) = blobs.next_blob()? {
        out.write_all(&b).map_err(write_failed)?;
    }
    Ok(blobs.bytes)
}

/// Reads and verifies every blob of a file and its digest, keeping nothing.
fn verify_file(repo: &Repository, index: &Index, node: &Node, path: &str) -> Result<()> {
    let mut check = FileBlobs::new(repo, index, node, path, Pass::Verify);
    while check.next_blob()?.is_some() {}
    Ok(())
}

/// A file's verified blobs as a reader (the archive's entry content); a failure is kept in
/// `failed` for the caller, the archive writer sees only that reading stopped.
struct BlobReader<'a> {
    blobs: FileBlobs<'a>,
    cur: Vec<u8>,
    pos: usize,
    failed: Option<Error>,
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.blobs.next_blob() {
                Ok(Some(b)) => (self.cur, self.pos) = (b, 0),
                Ok(None) => return Ok(0),
                Err(e) => {
                    self.failed = Some(e);
                    return Err(io::Error::other("a blob of the file failed"));
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The archive's output, closed when the dump fails: the archive writer's end-of-archive
/// blocks (written when it is dropped) must not make a cut archive look complete.
struct Gate<'w> {
    out: &'w mut dyn Write,
    open: bool,
}

impl Write for Gate<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.open {
            return Err(io::Error::other("dump failed"));
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.open {
            return Err(io::Error::other("dump failed"));
        }
        self.out.flush()
    }
}

/// Writes the directory `tree` (at snapshot path `base`) as a tar archive: its entries by
/// paths relative to it, depth first in name order. Each file is verified whole before its
/// header is written (unless `stream`); a failure stops the archive there, without its
/// end-of-archive blocks, the entries before it written.
fn dump_tar(
    repo: &Repository,
    index: &Index,
    tree: &TreeId,
    base: &str,
    stream: bool,
    out: &mut dyn Write,
) -> Result<DumpSummary> {
    let mut t = Tar {
        repo,
        index,
        base: base.trim_end_matches('/'),
        stream,
        ar: tar::Builder::new(Gate { out, open: true }),
        links: HashMap::new(),
        sum: DumpSummary::default(),
    };
    let r = t
        .dir(tree, b"")
        .and_then(|()| t.ar.finish().map_err(write_failed));
    if r.is_err() {
        t.ar.get_mut().open = false;
    }
    r.map(|()| t.sum)
}

struct Tar<'a, 'w> {
    repo: &'a Repository,
    index: &'a Index,
    base: &'a str,
    stream: bool,
    ar: tar::Builder<Gate<'w>>,
    /// The first path of each multiply linked file written, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
    sum: DumpSummary,
}

impl Tar<'_, '_> {
    fn dir(&mut self, tree: &TreeId, rel: &[u8]) -> Result<()> {
        let t = load_tree(self.repo, self.index, tree)?;
        for n in &t.nodes {
            let mut p = rel.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&n.name);
            self.entry(n, &p)?;
            if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                self.dir(&sub, &p)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, n: &Node, rel: &[u8]) -> Result<()> {
        let shown = format!("{}/{}", self.base, String::from_utf8_lossy(rel));
        let path = Path::new(OsStr::from_bytes(rel));
        let mut h = header(n);
        let pax = pax_records(n);
        let key = (n.device, n.inode);
        let linked = n.kind == NodeKind::File && n.links > 1 && n.inode != 0;
        let written = match n.kind {
            NodeKind::File if linked && self.links.contains_key(&key) => {
                h.set_entry_type(tar::EntryType::Link);
                let first = self.links[&key].clone();
                self.pax(&pax)?;
                self.ar.append_link(&mut h, path, first)
            }
            NodeKind::File => return self.file(n, &shown, path, h, &pax, linked),
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                self.pax(&pax)?;
                let mut dir = rel.to_vec();
                dir.push(b'/');
                self.ar
                    .append_data(&mut h, OsStr::from_bytes(&dir), io::empty())
            }
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                self.pax(&pax)?;
                let target = OsStr::from_bytes(&n.link_target);
                self.ar.append_link(&mut h, path, target)
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                h.set_entry_type(match n.kind {
                    NodeKind::Fifo => tar::EntryType::Fifo,
                    NodeKind::CharDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                if n.kind != NodeKind::Fifo {
                    let dev = n.rdev as rustix::fs::Dev;
                    h.set_device_major(rustix::fs::major(dev))
                        .and_then(|()| h.set_device_minor(rustix::fs::minor(dev)))
                        .map_err(write_failed)?;
                }
                self.pax(&pax)?;
                self.ar.append_data(&mut h, path, io::empty())
            }
            NodeKind::Socket => {
                self.sum.skipped.push(shown);
                return Ok(());
            }
        };
        written.map_err(|e| entry_failed(&shown, e))?;
        self.sum.entries += 1;
        Ok(())
    }

    /// A regular file: verified whole first (unless streaming), then its header and content.
    fn file(
        &mut self,
        n: &Node,
        shown: &str,
        path: &Path,
        mut h: tar::Header,
        pax: &[(String, Vec<u8>)],
        linked: bool,
    ) -> Result<()> {
        // The header gives the size before the content: the blobs must add up to it.
        let mut indexed = 0u64;
        for id in &n.content {
            let loc = self.index.get(BlobType::Data, id).ok_or_else(|| {
                Error::corrupt(
                    "file",
                    shown,
                    format!("data blob {id} not found; nothing of it was written"),
                )
            })?;
            indexed += loc.raw_len as u64;
        }
        if indexed != n.size {
            return Err(Error::corrupt(
                "file",
                shown,
                format!(
                    "its blobs hold {indexed} bytes, the snapshot records {}; nothing of it was written",
                    n.size
                ),
            ));
        }
        if !self.stream {
            verify_file(self.repo, self.index, n, shown)?;
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(n.size);
        self.pax(pax)?;
        let mut r = BlobReader {
            blobs: FileBlobs::new(self.repo, self.index, n, shown, Pass::Write),
            cur: Vec::new(),
            pos: 0,
            failed: None,
        };
        if let Err(e) = self.ar.append_data(&mut h, path, &mut r) {
            return Err(r.failed.take().unwrap_or_else(|| entry_failed(shown, e)));
        }
        self.sum.bytes += n.size;
        self.sum.entries += 1;
        if linked {
            self.links.insert((n.device, n.inode), path.to_path_buf());
        }
        Ok(())
    }

    fn pax(&mut self, records: &[(String, Vec<u8>)]) -> Result<()> {
        self.ar
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(write_failed)
    }
}

/// A failure writing `shown`'s entry: the output failed, or the archive cannot hold its name.
fn entry_failed(shown: &str, e: io::Error) -> Error {
    Error::io("write to the archive", shown, e)
}

/// The header fields every entry has: mode, owner, modification time (whole seconds).
fn header(n: &Node) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(n.mode & 0o7777);
    h.set_uid(n.uid as u64);
    h.set_gid(n.gid as u64);
    // Names longer than the header holds are left out; the ids are there.
    let _ = h.set_username(&n.user);
    let _ = h.set_groupname(&n.group);
    h.set_mtime(n.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
    h.set_size(0);
    h
}

/// PAX records: the modification time when it has a fraction of a second, and the extended
/// attributes (as GNU tar and bsdtar write them).
fn pax_records(n: &Node) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let (secs, nanos) = (
        n.mtime_ns.div_euclid(1_000_000_000),
        n.mtime_ns.rem_euclid(1_000_000_000),
    );
    if nanos != 0 && secs >= 0 {
        out.push(("mtime".into(), format!("{secs}.{nanos:09}").into_bytes()));
    }
    for x in &n.xattrs {
        if let Ok(name) = std::str::from_utf8(&x.name) {
            out.push((format!("SCHILY.xattr.{name}"), x.value.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    #[test]
    fn windows_bound_count_and_bytes() {
        use crate::format::{BlobEntry, IndexFile, IndexPack};
        let sizes: [u32; 13] = [
            1 << 20,
            1 << 20,
            6 << 20,
            8 << 20,
            100,
            100,
            100,
            100,
            100,
            100,
            100,
            100,
            9 << 20,
        ];
        let ids: Vec<BlobId> = (0..sizes.len()).map(|i| Id([i as u8; 32])).collect();
        let pack = IndexPack {
            id: Id([0xee; 32]),
            blobs: ids
                .iter()
                .zip(sizes)
                .map(|(id, s)| BlobEntry {
                    ty: BlobType::Data,
                    id: *id,
                    offset: 0,
                    length: s,
                    raw_len: s,
                })
                .collect(),
        };
        let files = [IndexFile {
            supersedes: vec![],
            packs: vec![pack],
        }];
        let index = Index::from_files(files.iter());
        let w = windows(&index, &ids);
        let lens: Vec<usize> = w.iter().map(|w| w.len()).collect();
        // 1+1+6 MiB fit; 8 MiB alone; eight small ones (the count limit); 9 MiB alone.
        assert_eq!(lens, vec![3, 1, 8, 1]);
        assert_eq!(w.concat(), ids);
        assert!(windows(&index, &[]).is_empty());
    }

    #[test]
    fn a_closed_gate_writes_nothing() {
        let mut out = Vec::new();
        {
            let mut ar = tar::Builder::new(Gate {
                out: &mut out,
                open: true,
            });
            let mut h = tar::Header::new_gnu();
            h.set_size(3);
            ar.append_data(&mut h, "a", &b"abc"[..]).unwrap();
            ar.get_mut().open = false;
        }
        // One header and one block of content; no end-of-archive blocks after the failure.
        assert_eq!(out.len(), 1024);
    }
}
