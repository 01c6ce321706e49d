//! The plaintext of an index file: the files it supersedes, then packs and their blob entries.

use super::pack_header::BLOB_ENTRY_LEN;
use super::{BlobEntry, DecodeError, Reader, FORMAT_VERSION};
use crate::id::{Id, PackId};

/// One pack's entry in an index file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPack {
    pub id: PackId,
    pub blobs: Vec<BlobEntry>,
}

/// The plaintext of an index file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files whose content this one includes, so they can be deleted (by prune).
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        let n: usize = self
            .packs
            .iter()
            .map(|p| 36 + p.blobs.len() * BLOB_ENTRY_LEN)
            .sum();
        let mut out = Vec::with_capacity(9 + self.supersedes.len() * 32 + n);
        out.push(FORMAT_VERSION as u8);
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            out.extend_from_slice(&s.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id.0);
            out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for e in &p.blobs {
                e.write(&mut out);
            }
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Result<IndexFile, DecodeError> {
        let mut r = Reader { b: raw };
        let v = r.u8()?;
        if v as u32 != FORMAT_VERSION {
            return Err(DecodeError::Version(v as u32));
        }
        let ns = r.count(32)?;
        let supersedes = (0..ns).map(|_| r.id()).collect::<Result<_, _>>()?;
        let np = r.count(36)?;
        let mut packs = Vec::with_capacity(np);
        for _ in 0..np {
            let id = r.id()?;
            let blobs = r.entries()?;
            packs.push(IndexPack { id, blobs });
        }
        r.finish()?;
        Ok(IndexFile { supersedes, packs })
    }
}
