//! `IndexFile::decode` must never panic; whatever it accepts must survive an encode/decode
//! round trip unchanged (and re-encode to the same bytes: the encoding is canonical).
#![no_main]

use cista::format::IndexFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = IndexFile::decode(data) {
        let enc = idx.encode();
        let again = IndexFile::decode(&enc).expect("re-encoded index file decodes");
        assert_eq!(again, idx);
        assert_eq!(enc, data, "index encoding is not canonical");
    }
});
