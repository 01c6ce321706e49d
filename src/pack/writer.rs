//! A pack being filled: sealed blobs appended, then the sealed header and its length.

use crate::crypto::Keys;
use crate::format::{self, BlobEntry, BlobType};
use crate::id::{BlobId, Id, PackId};

/// A pack being filled.
#[derive(Debug)]
pub struct PackWriter {
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

/// A finished pack, ready to store.
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<BlobEntry>,
}

impl PackWriter {
    pub fn new(capacity: usize) -> PackWriter {
        PackWriter {
            buf: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, ty: BlobType, id: BlobId, sealed: &[u8], raw_len: u32) {
        self.entries.push(BlobEntry {
            ty,
            id,
            offset: self.buf.len() as u32,
            length: sealed.len() as u32,
            raw_len,
        });
        self.buf.extend_from_slice(sealed);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals the header and appends it and its length; the pack id is the BLAKE3 of the bytes.
    pub fn finish(mut self, keys: &Keys) -> FinishedPack {
        let header = format::seal_pack_header(keys, &self.entries);
        self.buf.extend_from_slice(&header);
        self.buf
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        FinishedPack {
            id: Id::of_bytes(&self.buf),
            bytes: self.buf,
            entries: self.entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec((any::<bool>(), proptest::collection::vec(0u8..4, 0..3000)), 1..12)) {
            let keys = Keys::from_master([4; 32]);
            let mut w = PackWriter::new(0);
            let mut want = Vec::new();
            for (tree, data) in &blobs {
                let ty = if *tree { BlobType::Tree } else { BlobType::Data };
                let id = keys.blob_id(data);
                w.add(ty, id, &format::seal_blob(&keys, ty, &id, data, Some(3)), data.len() as u32);
                want.push((ty, id, data.clone()));
            }
            let p = w.finish(&keys);
            prop_assert_eq!(p.id, Id::of_bytes(&p.bytes));
            let (area, header) = format::split_pack(&p.bytes).unwrap();
            let entries = format::open_pack_header(&keys, header, area.len() as u64).unwrap();
            prop_assert_eq!(&entries, &p.entries);
            for (e, (ty, id, data)) in entries.iter().zip(&want) {
                prop_assert_eq!((e.ty, e.id), (*ty, *id));
                let sealed = &area[e.offset as usize..(e.offset + e.length) as usize];
                prop_assert_eq!(&format::open_blob(&keys, *ty, id, sealed).unwrap(), data);
            }
        }
    }
}
