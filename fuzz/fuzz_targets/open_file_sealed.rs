//! Like `open_file`, but the fuzz input is sealed under the right key and envelope header first,
//! so what lies behind authentication (`unpack_payload`, zstd with the declared-length cap) and
//! the per-kind decoders are reached. Random bytes never pass AES-GCM-SIV authentication, so
//! `open_file` alone cannot get there.
//!
//! Input layout: `[kind selector u8][payload: compression u8, raw length u64 LE, body]`.
#![no_main]

use std::sync::OnceLock;

use cista::crypto::Keys;
use cista::format::{
    open_file, seal_file, Config, FileKind, IndexFile, LockInfo, Snapshot, Verification,
    FORMAT_VERSION, MAGIC,
};
use libfuzzer_sys::fuzz_target;

const KINDS: [FileKind; 5] = [
    FileKind::Config,
    FileKind::Index,
    FileKind::Snapshot,
    FileKind::Lock,
    FileKind::Verification,
];

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let k = Keys::from_master([7u8; 32]);
        // Guard against silently losing coverage if the envelope layout changes.
        let probe = b"probe";
        for kind in KINDS {
            let sealed = seal_file(&k, kind, probe);
            assert_eq!(&sealed[..6], &envelope(kind), "envelope layout changed; update this target");
        }
        k
    })
}

fn envelope(kind: FileKind) -> [u8; 6] {
    let mut h = [0u8; 6];
    h[..4].copy_from_slice(MAGIC);
    h[4] = kind as u8;
    h[5] = FORMAT_VERSION as u8;
    h
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else { return };
    let kind = KINDS[sel as usize % KINDS.len()];
    let k = keys();
    let header = envelope(kind);
    let mut file = header.to_vec();
    file.extend_from_slice(&k.seal(&header, payload));

    let Ok(raw) = open_file(k, kind, &file) else { return };
    if payload[0] == 0 {
        assert_eq!(raw, &payload[9..], "uncompressed payload altered");
    }
    match kind {
        FileKind::Config => {
            let _ = Config::decode(&raw);
        }
        FileKind::Index => {
            let _ = IndexFile::decode(&raw);
        }
        FileKind::Snapshot => {
            let _ = Snapshot::decode(&raw);
        }
        FileKind::Lock => {
            let _ = LockInfo::decode(&raw);
        }
        FileKind::Verification => {
            let _ = Verification::decode(&raw);
        }
    }
});
