//! Like `open_blob`, but the fuzz input is sealed with the right associated data first, so the
//! payload decoding behind authentication (compression byte, declared length, zstd) is reached.
//! For uncompressed payloads the id is the body's blob id, so the hash check passes too.
//!
//! Input layout: `[blob type selector u8][payload: compression u8, raw length u64 LE, body]`.
#![no_main]

use std::sync::OnceLock;

use cista::crypto::Keys;
use cista::format::{open_blob, seal_blob, BlobType};
use cista::Id;
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let k = Keys::from_master([7u8; 32]);
        // Guard against silently losing coverage if the blob aad layout changes.
        let id = k.blob_id(b"probe");
        let sealed = seal_blob(&k, BlobType::Tree, &id, b"probe", None);
        assert!(k.open(&aad(BlobType::Tree, &id), &sealed).is_ok(), "blob aad changed; update this target");
        k
    })
}

fn aad(ty: BlobType, id: &Id) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[0] = ty as u8;
    a[1..].copy_from_slice(&id.0);
    a
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else { return };
    let ty = if sel & 1 == 0 { BlobType::Data } else { BlobType::Tree };
    let k = keys();
    let id = if payload.len() >= 9 { k.blob_id(&payload[9..]) } else { Id([0; 32]) };
    let sealed = k.seal(&aad(ty, &id), payload);
    if let Ok(raw) = open_blob(k, ty, &id, &sealed) {
        assert_eq!(k.blob_id(&raw), id);
    }
});
