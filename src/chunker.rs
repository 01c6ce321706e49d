//! Content-defined chunking: FastCDC (2020, normalization level 1) with a gear table expanded
//! from the repository's secret chunker key.
//!
//! The fastcdc crate's own seeding XORs one 64-bit value into its public table, which leaves the
//! table's structure visible to chunk-length fingerprinting; expanding all 256 entries from a
//! keyed BLAKE3 XOF makes the table as secret as the key. The cut-point search itself is
//! `fastcdc::v2020::cut_gear`.

use std::ops::Range;

use crate::format::ChunkerParams;

/// A keyed FastCDC chunker. Cheap to share between threads.
#[derive(Clone)]
pub struct Chunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    pub fn new(params: ChunkerParams, key: &[u8; 32]) -> Chunker {
        use fastcdc::v2020 as f;
        let mut bytes = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(key)
            .update(b"cista gear table v1")
            .finalize_xof()
            .fill(&mut bytes);
        let mut gear = Box::new([0u64; 256]);
        let mut gear_ls = Box::new([0u64; 256]);
        for i in 0..256 {
            gear[i] = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
            gear_ls[i] = gear[i] << 1;
        }
        let bits = f::logarithm2(params.avg);
        let norm = f::Normalization::Level1.bits();
        Chunker {
            params,
            gear,
            gear_ls,
            mask_s: f::MASKS[(bits + norm) as usize],
            mask_l: f::MASKS[(bits - norm) as usize],
        }
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the next chunk at the start of `data`, assuming `data` runs to the end of input
    /// or is longer than the maximum chunk size.
    fn next_cut(&self, data: &[u8]) -> usize {
        let (_, n) = fastcdc::v2020::cut_gear(
            data,
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        n
    }

    /// Cuts `data` into chunks. With `eof` false, the tail that might still grow (at most one
    /// maximum chunk) is left uncut; its start is returned so the caller can carry it over to the
    /// next read. Cut points are the same as when cutting the whole input at once.
    pub fn cut(&self, data: &[u8], eof: bool) -> (Vec<Range<usize>>, usize) {
        let max = self.params.max as usize;
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            if !eof && rest.len() <= max {
                break;
            }
            let n = self.next_cut(rest).max(1);
            out.push(pos..pos + n);
            pos += n;
        }
        (out, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams {
            min: 256,
            avg: 1024,
            max: 4096,
        }
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut out = vec![0u8; n];
        blake3::Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof()
            .fill(&mut out);
        out
    }

    proptest! {
        #[test]
        fn chunks_concatenate_to_input(len in 0usize..40000, seed in any::<u64>(), split in 1usize..9000) {
            let data = pseudo_random(len, seed);
            let c = Chunker::new(small(), &[1; 32]);
            let (whole, end) = c.cut(&data, true);
            prop_assert_eq!(end, data.len());
            let joined: Vec<u8> = whole.iter().flat_map(|r| data[r.clone()].iter().copied()).collect();
            prop_assert_eq!(&joined, &data);
            for r in &whole[..whole.len().saturating_sub(1)] {
                prop_assert!(r.len() >= 256 && r.len() <= 4096);
            }
            // Streaming with carry-over gives the same cut points as one pass.
            let mut streamed = Vec::new();
            let mut buf: Vec<u8> = Vec::new();
            let mut base = 0;
            for piece in data.chunks(split) {
                buf.extend_from_slice(piece);
                let (rs, used) = c.cut(&buf, false);
                streamed.extend(rs.into_iter().map(|r| base + r.start..base + r.end));
                buf.drain(..used);
                base += used;
            }
            let (rs, _) = c.cut(&buf, true);
            streamed.extend(rs.into_iter().map(|r| base + r.start..base + r.end));
            prop_assert_eq!(streamed, whole);
        }
    }

    #[test]
    fn key_changes_cut_points() {
        let data = pseudo_random(200_000, 1);
        let a = Chunker::new(small(), &[1; 32]).cut(&data, true).0;
        let b = Chunker::new(small(), &[2; 32]).cut(&data, true).0;
        assert_ne!(a, b);
    }

    #[test]
    fn shifted_content_resynchronises() {
        let data = pseudo_random(100_000, 7);
        let mut shifted = b"inserted bytes".to_vec();
        shifted.extend_from_slice(&data);
        let c = Chunker::new(small(), &[3; 32]);
        let ends = |d: &[u8], off: usize| -> std::collections::HashSet<usize> {
            c.cut(d, true).0.iter().map(|r| r.end - off).collect()
        };
        let common = ends(&data, 0).intersection(&ends(&shifted, 14)).count();
        assert!(common > 50, "only {common} common cut points");
    }
}
