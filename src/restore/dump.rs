//! `dump`: one file's content, or a directory as a tar archive, to a writer.
//!
//! Fail-closed by default: every blob of a file is read, opened and verified (authentication,
//! keyed id, length) and the whole-file digest checked in a first pass that keeps nothing;
//! only then is the file read again and written, each blob checked again on the way. A damaged
//! file therefore writes nothing, so `cista dump … | psql -1` sees a failed dump and no data.
//! `stream` writes in one pass (a failure mid-file leaves the bytes before it written). Both
//! passes read a window of blobs at a time in parallel, so memory stays bounded.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind};
use crate::id::{BlobId, Id};
use crate::index::Index;
use crate::pack::read_blob;
use crate::repository::Repository;

use super::tar::dump_tar;

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

pub(super) fn write_failed(e: io::Error) -> Error {
    Error::io("write", "<stdout>", e)
}

/// Which pass a file's blobs are read in: what a failure has written of it.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Pass {
    Verify,
    Write,
}

/// A file's blobs in order, a window read in parallel at a time, each opened and verified;
/// once all were yielded, their length and digest are checked against the node.
pub(super) struct FileBlobs<'a> {
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
    pub(super) fn new(
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
pub(super) fn verify_file(repo: &Repository, index: &Index, node: &Node, path: &str) -> Result<()> {
    let mut check = FileBlobs::new(repo, index, node, path, Pass::Verify);
    while check.next_blob()?.is_some() {}
    Ok(())
}

/// A file's BLAKE3 digest computed from its blobs, each verified and the length (and any
/// recorded digest) checked: for a node that records no digest.
pub(crate) fn content_digest(
    repo: &Repository,
    index: &Index,
    node: &Node,
    path: &str,
) -> Result<Id> {
    let mut blobs = FileBlobs::new(repo, index, node, path, Pass::Verify);
    while blobs.next_blob()?.is_some() {}
    Ok(Id(*blobs.hasher.finalize().as_bytes()))
}

/// A file's verified blobs as a reader (the archive's entry content); a failure is kept in
/// `failed` for the caller, the archive writer sees only that reading stopped.
pub(super) struct BlobReader<'a> {
    pub(super) blobs: FileBlobs<'a>,
    pub(super) cur: Vec<u8>,
    pub(super) pos: usize,
    pub(super) failed: Option<Error>,
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
}
