//! Splitting a pack and opening its header must never panic. With a fixed key, random bytes
//! essentially never authenticate, so this mostly exercises `split_pack` and the length checks;
//! an accepted header must tile the blob area exactly.
#![no_main]

use std::sync::OnceLock;

use cista::crypto::Keys;
use cista::format::{open_pack_header, split_pack};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys::from_master([7u8; 32]))
}

fuzz_target!(|data: &[u8]| {
    if let Ok((blobs, header)) = split_pack(data) {
        assert_eq!(blobs.len() + header.len() + 4, data.len());
        if let Ok(entries) = open_pack_header(keys(), header, blobs.len() as u64) {
            let total: u64 = entries.iter().map(|e| e.length as u64).sum();
            assert_eq!(total, blobs.len() as u64);
        }
    }
});
