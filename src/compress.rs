//! zstd compression with a hard cap on decompressed size, so a hostile object cannot make a
//! reader allocate without bound.

use std::cell::RefCell;

thread_local! {
    // zstd contexts are reused per thread: creating one per blob (hundreds of KiB of tables)
    // dominated the cost of compressing small files.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's compressor, set to `level`.
fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> Option<T>,
) -> Option<T> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, comp) = c.as_mut()?;
        f(comp)
    })
}

/// Compresses `data` at `level`; `None` when the result would not be smaller. Unverified: the
/// repository's writers use `compress_verified`.
pub fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    if data.len() < 64 {
        return None;
    }
    let out = with_compressor(level, |comp| comp.compress(data).ok())?;
    (out.len() < data.len()).then_some(out)
}

/// Like `compress`, but into `out` (replacing its content) and verified: true when `out` holds
/// a frame smaller than `data` that decompresses back to it (restic 0.16.0 stored data an
/// upstream zstd bug had corrupted), using `check` as the buffer for that. Callers on the
/// backup hot path reuse both buffers per thread.
pub fn compress_verified(data: &[u8], level: i32, out: &mut Vec<u8>, check: &mut Vec<u8>) -> bool {
    out.clear();
    if data.len() < 64 {
        return false;
    }
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    let n = with_compressor(level, |comp| comp.compress_to_buffer(data, out).ok());
    n.is_some_and(|n| n < data.len())
        && decompress_into(out, data.len(), check).is_ok()
        && check[..] == *data
}

/// Decompresses a zstd frame that must expand to exactly `len` bytes. The frame must declare
/// that size in its header (our writer always does), so a damaged or hostile length cannot make
/// the reader reserve more memory than the frame claims to hold.
pub fn decompress(data: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    decompress_into(data, len, &mut out)?;
    Ok(out)
}

/// Like `decompress`, into `out` (cleared first): for callers that decompress many blobs and
/// keep none of them (check --read-data).
pub fn decompress_into(data: &[u8], len: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n == len as u64 => {}
        Ok(Some(n)) => return Err(format!("zstd frame declares {n} bytes, expected {len}")),
        Ok(None) => return Err("zstd frame does not declare its size".into()),
        Err(_) => return Err("not a zstd frame".into()),
    }
    out.clear();
    out.reserve_exact(len);
    let n = DECOMPRESSOR
        .with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new()?);
            }
            d.as_mut()
                .expect("set above")
                .decompress_to_buffer(data, out)
        })
        .map_err(|e| format!("zstd: {e}"))?;
    if n != len {
        return Err(format!("zstd frame holds {n} bytes, expected {len}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(0u8..4, 0..10000)) {
            if let Some(c) = compress(&data, 3) {
                prop_assert_eq!(decompress(&c, data.len()).unwrap(), data);
            }
        }
    }

    proptest! {
        #[test]
        fn compress_verified_round_trip(
            data in proptest::collection::vec(0u8..4, 0..20000),
            junk in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let (mut out, mut check) = (junk.clone(), junk);
            if compress_verified(&data, 3, &mut out, &mut check) {
                prop_assert!(out.len() < data.len());
                prop_assert_eq!(decompress(&out, data.len()).unwrap(), data);
            } else {
                prop_assert!(compress(&data, 3).is_none());
            }
        }
    }

    #[test]
    fn decompress_into_reuses_and_checks() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let c = compress(&data, 3).unwrap();
        let mut out = vec![1, 2, 3];
        decompress_into(&c, data.len(), &mut out).unwrap();
        assert_eq!(out, data);
        assert!(decompress_into(&c, data.len() - 1, &mut out).is_err());
        assert!(decompress_into(&c[..c.len() - 1], data.len(), &mut out).is_err());
        assert!(decompress_into(b"not zstd", 10, &mut out).is_err());
    }

    #[test]
    fn cap_is_enforced() {
        let data = vec![0u8; 100_000];
        let c = compress(&data, 3).unwrap();
        assert!(decompress(&c, 1000).is_err());
        assert!(decompress(&c, 100_001).is_err());
        assert_eq!(decompress(&c, 100_000).unwrap(), data);
        assert!(decompress(b"not zstd", 1000).is_err());
    }
}
