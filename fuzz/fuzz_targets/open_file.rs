//! `peek_version` and `open_file` must never panic on any bytes, for every file kind.
#![no_main]

use std::sync::OnceLock;

use cista::crypto::Keys;
use cista::format::{open_file, peek_version, FileKind, FORMAT_VERSION};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys::from_master([7u8; 32]))
}

fuzz_target!(|data: &[u8]| {
    for kind in [
        FileKind::Config,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Lock,
        FileKind::Verification,
    ] {
        let peeked = peek_version(kind, data);
        let opened = open_file(keys(), kind, data);
        // Whatever peek refuses, open refuses too.
        if peeked.is_err() {
            assert!(opened.is_err());
        }
        if let Ok(v) = peeked {
            if v != FORMAT_VERSION {
                assert!(opened.is_err());
            }
        }
    }
});
