//! `dump`: one file's content to a writer, blobs read a window at a time, digest checked.

use std::io::Write;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind};
use crate::id::{BlobId, Id};
use crate::index::Index;
use crate::pack::read_blob;
use crate::repository::Repository;

/// Blobs `dump` reads and opens in parallel at a time: at most this many, and at most
/// `DUMP_WINDOW_BYTES` of plaintext unless a single blob is larger.
const DUMP_WINDOW: usize = 8;
const DUMP_WINDOW_BYTES: u64 = 8 << 20;

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

/// Writes one file's content to `out` (for `dump`), verifying the digest at the end.
pub fn dump(repo: &Repository, index: &Index, node: &Node, out: &mut dyn Write) -> Result<u64> {
    if node.kind != NodeKind::File {
        return Err(Error::Invalid(format!(
            "{} is a {}, not a file",
            node.name_lossy(),
            node.kind.name()
        )));
    }
    let mut h = blake3::Hasher::new();
    let mut n = 0u64;
    // Blobs are read and opened a window at a time in parallel, then hashed and written in
    // order, so a large dump (`cista dump … | psql`) keeps every core busy in bounded memory.
    for window in windows(index, &node.content) {
        let blobs = window
            .par_iter()
            .map(|id| read_blob(repo, index, BlobType::Data, id))
            .collect::<Result<Vec<_>>>()?;
        for data in blobs {
            h.update(&data);
            out.write_all(&data)
                .map_err(|e| Error::io("write", "<stdout>", e))?;
            n += data.len() as u64;
        }
    }
    out.flush().map_err(|e| Error::io("write", "<stdout>", e))?;
    if node
        .digest
        .is_some_and(|d| d != Id(*h.finalize().as_bytes()))
    {
        return Err(Error::corrupt(
            "file",
            node.name_lossy(),
            "content does not match the digest recorded at backup",
        ));
    }
    Ok(n)
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
