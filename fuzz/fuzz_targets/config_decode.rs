//! `Config::decode` must never panic; whatever it accepts must be valid and round-trip.
#![no_main]

use cista::format::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = Config::decode(data) {
        assert!(cfg.validate().is_ok());
        let again = Config::decode(&cfg.encode()).expect("re-encoded config decodes");
        assert_eq!(again, cfg);
    }
});
