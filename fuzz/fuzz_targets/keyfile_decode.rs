//! `KeyFile::decode` must never panic; whatever it accepts must round-trip. `KeyFile::open` is
//! deliberately not called: Argon2id at 64 MiB per attempt is far too slow for fuzzing.
#![no_main]

use cista::crypto::KeyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = KeyFile::decode(data) {
        let _ = kf.params.check();
        let again = KeyFile::decode(&kf.encode()).expect("re-encoded key file decodes");
        assert_eq!(again, kf);
    }
});
