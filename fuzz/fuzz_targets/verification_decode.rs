//! `Verification::decode` must never panic; whatever it accepts must encode and decode again.
#![no_main]

use cista::format::Verification;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = Verification::decode(data) {
        let _ = v.timestamp();
        // No equality check: `fraction` is an f64 and need not round-trip exactly.
        Verification::decode(&v.encode()).expect("re-encoded record decodes");
    }
});
