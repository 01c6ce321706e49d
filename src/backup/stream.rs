//! File contents: read in segments while the previous one is chunked, deduplicated and stored.

use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;

use super::source::fill;
use super::Archiver;
use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind};
use crate::id::{BlobId, Id};

/// A failure while reading the source (a warning) or while writing the repository (fatal).
pub(super) enum FileErr {
    Source(std::io::Error),
    Fatal(Error),
}

impl From<Error> for FileErr {
    fn from(e: Error) -> Self {
        FileErr::Fatal(e)
    }
}

/// The content of one stored file.
pub(super) struct Content {
    pub(super) blobs: Vec<BlobId>,
    pub(super) digest: Id,
    pub(super) size: u64,
}

impl Archiver<'_> {
    /// Chunks and stores everything `r` yields.
    /// Chunks and stores everything `r` yields. The next segment is read while the current one
    /// is chunked, hashed, compressed and sealed, so a pipe (`pg_dump | cista backup --stdin`)
    /// or a large file never waits on its own reads.
    pub(super) fn store_stream(
        &self,
        r: &mut (dyn Read + Send),
        size_hint: u64,
    ) -> Result<Content, FileErr> {
        let chunker = self.repo.chunker();
        let max = chunker.params().max as usize;
        // `cur` holds the uncut tail of the previous read (at most one maximum chunk) plus one
        // read; `next` is filled while `cur` is chunked, hashed, compressed and sealed. The
        // first large file being read gets reads of a maximum chunk, so a lone stream (a
        // pg_dump) keeps both cores busy; others read a quarter of that, which holds memory
        // to 24 MiB for the first large file and 12 MiB for each other one.
        let big = size_hint > max as u64;
        let first_big = big && self.big_streams.fetch_add(1, Relaxed) == 0;
        let read = if !big || first_big { max } else { max / 4 };
        let r = self.stream_pieces(r, size_hint, read);
        if big {
            self.big_streams.fetch_sub(1, Relaxed);
        }
        r
    }

    /// The body of `store_stream`, reading `read` bytes at a time.
    pub(super) fn stream_pieces(
        &self,
        r: &mut (dyn Read + Send),
        size_hint: u64,
        read: usize,
    ) -> Result<Content, FileErr> {
        let chunker = self.repo.chunker();
        let max = chunker.params().max as usize;
        let mut cur: Vec<u8> = Vec::with_capacity((size_hint as usize).min(read + max) + 1);
        let mut next: Vec<u8> = Vec::new();
        let mut blobs = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut eof = fill(r, &mut cur, read + max).map_err(FileErr::Source)?;
        loop {
            let (ranges, used) = chunker.cut(&cur, eof);
            let data = &cur;
            let ((ids, _), got) = rayon::join(
                || {
                    rayon::join(
                        || {
                            ranges
                                .par_iter()
                                .map(|rg| self.add_blob(BlobType::Data, &data[rg.clone()]))
                                .collect::<Result<Vec<_>>>()
                        },
                        || hasher.update(&data[..used]),
                    )
                },
                || {
                    if eof {
                        Ok(true)
                    } else {
                        next.clear();
                        next.reserve_exact(read);
                        fill(r, &mut next, read)
                    }
                },
            );
            blobs.extend(ids?);
            size += used as u64;
            if let Some(p) = &self.opts.progress {
                p.add_bytes(used as u64);
            }
            if eof {
                break;
            }
            eof = got.map_err(FileErr::Source)?;
            cur.drain(..used);
            cur.reserve_exact(next.len());
            cur.extend_from_slice(&next);
        }
        self.c.bytes.fetch_add(size, Relaxed);
        Ok(Content {
            blobs,
            digest: Id(*hasher.finalize().as_bytes()),
            size,
        })
    }
}

/// A stream's file name must be one path component.
pub(super) fn check_stream_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Invalid(format!(
            "stdin file name {name:?} must be a single path component"
        )));
    }
    Ok(())
}

/// Stores everything `r` yields as a file named `name` at the snapshot root (one component).
pub(super) fn stream_node(a: &Archiver, name: &str, r: &mut (dyn Read + Send)) -> Result<Node> {
    check_stream_name(name)?;
    file_node(a, name, r, &format!("<stdin:{name}>"))
}

/// Stores everything `r` yields as a file node named `name`, owned by this process's user and
/// timestamped now; `shown` names the stream in a read error.
pub(super) fn file_node(
    a: &Archiver,
    name: &str,
    r: &mut (dyn Read + Send),
    shown: &str,
) -> Result<Node> {
    let content = match a.store_stream(r, 0) {
        Ok(c) => c,
        Err(FileErr::Source(e)) => return Err(Error::io("read", shown, e)),
        Err(FileErr::Fatal(e)) => return Err(e),
    };
    a.c.files.fetch_add(1, Relaxed);
    a.c.files_new.fetch_add(1, Relaxed);
    let mut n = own_node(a, name, NodeKind::File, 0o644);
    n.size = content.size;
    n.links = 1;
    n.content = content.blobs;
    n.digest = Some(content.digest);
    Ok(n)
}

/// A node that no source file describes (a stream, a command's output, a directory made to
/// hold one): owned by this process's user, mode `mode`, timestamped now.
pub(super) fn own_node(a: &Archiver, name: &str, kind: NodeKind, mode: u32) -> Node {
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let mut n = Node::new(name.as_bytes().to_vec(), kind);
    n.mode = mode;
    n.uid = nix::unistd::getuid().as_raw();
    n.gid = nix::unistd::getgid().as_raw();
    n.user = a.user_name(n.uid);
    n.group = a.group_name(n.gid);
    (n.mtime_ns, n.ctime_ns) = (now, now);
    if a.opts.with_atime {
        n.atime_ns = now;
    }
    n
}
