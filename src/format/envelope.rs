//! The envelope of a sealed repository file (config, index, snapshot, lock, verification
//! record): magic, kind, version, then the sealed payload.

use super::payload::{pack_payload, unpack_payload};
use super::{bad, DecodeError, FORMAT_VERSION};
use crate::crypto::Keys;

/// Magic at the start of every sealed repository file (config, index, snapshot, lock,
/// verification record).
pub const MAGIC: &[u8; 4] = b"CSTA";
/// Bytes before the sealed part of an envelope: magic, kind, version.
pub const ENVELOPE_HEADER_LEN: usize = 6;

/// What a sealed file holds; the byte after the magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FileKind {
    Config = 1,
    Index = 2,
    Snapshot = 3,
    Lock = 4,
    Verification = 5,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshot",
            FileKind::Lock => "lock",
            FileKind::Verification => "verification record",
        }
    }
}

/// Seals `raw` as a repository file of `kind`: `MAGIC ‖ kind ‖ version ‖ seal(payload)`, with the
/// six header bytes as associated data.
pub fn seal_file(keys: &Keys, kind: FileKind, raw: &[u8]) -> Vec<u8> {
    let header = envelope_header(kind);
    let sealed = keys.seal(&header, &pack_payload(raw, Some(3)));
    let mut out = Vec::with_capacity(header.len() + sealed.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&sealed);
    out
}

fn envelope_header(kind: FileKind) -> [u8; ENVELOPE_HEADER_LEN] {
    let mut h = [0u8; ENVELOPE_HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = kind as u8;
    h[5] = FORMAT_VERSION as u8;
    h
}

/// Reads the envelope header without a key: checks magic and kind, returns the version.
pub fn peek_version(kind: FileKind, bytes: &[u8]) -> Result<u32, DecodeError> {
    if bytes.len() < ENVELOPE_HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(bad("not a cista file (bad magic)"));
    }
    if bytes[4] != kind as u8 {
        return Err(bad(format!(
            "holds object kind {} where a {} was expected",
            bytes[4],
            kind.name()
        )));
    }
    Ok(bytes[5] as u32)
}

/// Opens a sealed repository file of `kind`.
pub fn open_file(keys: &Keys, kind: FileKind, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let v = peek_version(kind, bytes)?;
    if v != FORMAT_VERSION {
        return Err(DecodeError::Version(v));
    }
    let payload = keys.open(&bytes[..ENVELOPE_HEADER_LEN], &bytes[ENVELOPE_HEADER_LEN..])?;
    unpack_payload(&payload)
}
