//! A lock file's content (JSON).

use serde::{Deserialize, Serialize};

use super::{bad, DecodeError};

/// A lock file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub time: String,
    pub exclusive: bool,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
}

impl LockInfo {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("lock serializes")
    }
    pub fn decode(raw: &[u8]) -> Result<LockInfo, DecodeError> {
        serde_json::from_slice(raw).map_err(bad)
    }
}
