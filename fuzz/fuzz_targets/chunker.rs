//! The chunker must never panic, and with `eof` its chunks must tile the input exactly, each
//! within the size bounds (only the last may be shorter than `min`). Without `eof`, the cut
//! chunks must be a prefix of the `eof` ones (cut points do not depend on where input ends).
#![no_main]

use std::sync::OnceLock;

use cista::chunker::Chunker;
use cista::format::ChunkerParams;
use libfuzzer_sys::fuzz_target;

const PARAMS: ChunkerParams = ChunkerParams {
    min: 64,
    avg: 256,
    max: 1024,
};

fn chunker() -> &'static Chunker {
    static C: OnceLock<Chunker> = OnceLock::new();
    C.get_or_init(|| Chunker::new(PARAMS, &[1; 32]))
}

fuzz_target!(|data: &[u8]| {
    let c = chunker();
    let (ranges, end) = c.cut(data, true);
    assert_eq!(end, data.len());
    let mut pos = 0;
    for (i, r) in ranges.iter().enumerate() {
        assert_eq!(r.start, pos, "chunks not contiguous");
        assert!(r.end > r.start, "empty chunk");
        let len = r.end - r.start;
        assert!(len <= PARAMS.max as usize, "chunk of {len} bytes exceeds max");
        if i + 1 < ranges.len() {
            assert!(len >= PARAMS.min as usize, "non-final chunk of {len} bytes below min");
        }
        pos = r.end;
    }
    assert_eq!(pos, data.len(), "chunks do not cover the input");

    let (partial, rest) = c.cut(data, false);
    assert!(rest <= data.len());
    assert!(data.len() - rest <= PARAMS.max as usize);
    assert_eq!(partial.last().map_or(0, |r| r.end), rest);
    assert_eq!(&ranges[..partial.len()], &partial[..], "cut points depend on eof");
});
