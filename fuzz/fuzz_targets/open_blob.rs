//! `open_blob` must never panic: the first 32 bytes (if present) are the claimed blob id, the
//! rest is the sealed blob.
#![no_main]

use std::sync::OnceLock;

use cista::crypto::Keys;
use cista::format::{open_blob, BlobType};
use cista::Id;
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys::from_master([7u8; 32]))
}

fuzz_target!(|data: &[u8]| {
    let (id, rest) = if data.len() >= 32 {
        let mut id = [0u8; 32];
        id.copy_from_slice(&data[..32]);
        (Id(id), &data[32..])
    } else {
        (Id([0u8; 32]), data)
    };
    for ty in [BlobType::Data, BlobType::Tree] {
        if let Ok(raw) = open_blob(keys(), ty, &id, rest) {
            assert_eq!(keys().blob_id(&raw), id);
        }
    }
});
