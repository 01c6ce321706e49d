//! zstd compression with a hard cap on decompressed size, so a hostile object cannot make a
//! reader allocate without bound.

/// Compresses `data` at `level`; `None` when the result would not be smaller.
pub fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    if data.len() < 64 {
        return None;
    }
    let out = zstd::bulk::compress(data, level).ok()?;
    (out.len() < data.len()).then_some(out)
}

/// Decompresses a zstd frame that must expand to at most `cap` bytes.
pub fn decompress(data: &[u8], cap: usize) -> Result<Vec<u8>, String> {
    zstd::bulk::decompress(data, cap).map_err(|e| format!("zstd: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(0u8..4, 0..10000)) {
            match compress(&data, 3) {
                Some(c) => prop_assert_eq!(decompress(&c, data.len()).unwrap(), data),
                None => {}
            }
        }
    }

    #[test]
    fn cap_is_enforced() {
        let data = vec![0u8; 100_000];
        let c = compress(&data, 3).unwrap();
        assert!(decompress(&c, 1000).is_err());
        assert!(decompress(b"not zstd", 1000).is_err());
    }
}
