//! The payload inside every sealed object: `[compression u8][raw length u64 LE][body]`
//! (format §5), compressed with zstd when that helps and verified before it is stored.

use super::{bad, DecodeError, MAX_OBJECT_LEN};
use crate::compress;

const COMP_NONE: u8 = 0;
const COMP_ZSTD: u8 = 1;
/// A payload's compression byte and raw length (format §5).
pub(super) const PAYLOAD_HEADER: usize = 9;

/// Scratch buffers grown beyond this are dropped after use, so an occasional maximum-size
/// chunk does not pin its buffers for the rest of the run.
pub(super) const SCRATCH_KEEP: usize = 2 << 20;

/// `[compression u8][raw length u64 LE][payload]`, compressed when that helps.
pub(super) fn pack_payload(raw: &[u8], level: Option<i32>) -> Vec<u8> {
    let (mut comp, mut check) = (Vec::new(), Vec::new());
    let compressed =
        level.is_some_and(|l| compress::compress_verified(raw, l, &mut comp, &mut check));
    let mut out = Vec::new();
    write_payload(&mut out, raw, compressed.then_some(&comp[..]));
    out
}

/// Appends the payload of `raw` to `out`: `compressed` is its verified zstd frame (every
/// compressed payload is decompressed and compared before it is stored), or `None` to store
/// `raw` as it is.
pub(super) fn write_payload(out: &mut Vec<u8>, raw: &[u8], compressed: Option<&[u8]>) {
    let body = compressed.unwrap_or(raw);
    out.reserve(PAYLOAD_HEADER + body.len());
    out.push(if compressed.is_some() {
        COMP_ZSTD
    } else {
        COMP_NONE
    });
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
}

/// Splits a payload into (compressed?, declared plaintext length, body), refusing a short
/// payload, an impossible length and an unknown compression byte.
pub(super) fn split_payload(p: &[u8]) -> Result<(bool, u64, &[u8]), DecodeError> {
    if p.len() < PAYLOAD_HEADER {
        return Err(bad("payload too short"));
    }
    let raw_len = u64::from_le_bytes(p[1..PAYLOAD_HEADER].try_into().unwrap());
    if raw_len > MAX_OBJECT_LEN {
        return Err(bad(format!("declared length {raw_len} is too large")));
    }
    match p[0] {
        COMP_NONE => Ok((false, raw_len, &p[PAYLOAD_HEADER..])),
        COMP_ZSTD => Ok((true, raw_len, &p[PAYLOAD_HEADER..])),
        c => Err(bad(format!("unknown compression {c}"))),
    }
}

pub(super) fn unpack_payload(p: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let (compressed, raw_len, body) = split_payload(p)?;
    let out = if compressed {
        compress::decompress(body, raw_len as usize).map_err(bad)?
    } else {
        body.to_vec()
    };
    if out.len() as u64 != raw_len {
        return Err(bad("decompressed length differs from the declared one"));
    }
    Ok(out)
}
