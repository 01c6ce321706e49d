//! `Snapshot::decode` must never panic; whatever it accepts must encode and decode again.
#![no_main]

use cista::format::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snap) = Snapshot::decode(data) {
        let _ = snap.timestamp();
        // No equality check: `summary.duration_secs` is an f64 and need not round-trip exactly.
        let enc = snap.encode();
        Snapshot::decode(&enc).expect("re-encoded snapshot decodes");
    }
});
