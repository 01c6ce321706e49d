//! Like `pack_parse`, but the fuzz input is sealed as a pack header first, so the header decoder
//! behind authentication (version, entry count, entries, tiling check) is reached.
//!
//! Input layout: `[blobs_len u32 LE][header plaintext: version u8, count u32 LE, 45-byte entries]`.
#![no_main]

use std::sync::OnceLock;

use cista::crypto::Keys;
use cista::format::{open_pack_header, seal_pack_header};
use libfuzzer_sys::fuzz_target;

/// Copy of the private `format::PACK_HEADER_AAD`; checked at start-up.
const PACK_HEADER_AAD: &[u8] = b"cista pack header v1";

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let k = Keys::from_master([7u8; 32]);
        let sealed = seal_pack_header(&k, &[]);
        assert!(k.open(PACK_HEADER_AAD, &sealed).is_ok(), "pack header aad changed; update this target");
        k
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let blobs_len = u32::from_le_bytes(data[..4].try_into().unwrap()) as u64;
    let k = keys();
    let sealed = k.seal(PACK_HEADER_AAD, &data[4..]);
    if let Ok(entries) = open_pack_header(k, &sealed, blobs_len) {
        let total: u64 = entries.iter().map(|e| e.length as u64).sum();
        assert_eq!(total, blobs_len);
        // A sealed header of the same entries opens to the same entries.
        let again = open_pack_header(k, &seal_pack_header(k, &entries), blobs_len).unwrap();
        assert_eq!(again, entries);
    }
});
