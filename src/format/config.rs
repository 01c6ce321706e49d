//! The repository configuration, sealed as `config`.

use serde::{Deserialize, Serialize};

use super::{bad, DecodeError, FORMAT_VERSION};
use crate::id::Id;

/// The repository configuration, sealed as `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub id: Id,
    pub chunker: ChunkerParams,
    /// Target size of a pack file in bytes.
    pub pack_size: u32,
    /// zstd level for blobs (for blobs of [`LARGE_BLOB`] bytes or more, see `large_blob_level`).
    pub compression_level: i32,
    /// zstd level for blobs of at least [`LARGE_BLOB`] bytes; absent means `compression_level`.
    /// Separate because zstd's parameters differ by input size: above 256 KiB level 4 keeps
    /// level 3's double-fast match finder with larger tables (+6% time, -1% size on the
    /// benchmark corpus), below it level 4 switches to a lazy one (+47% time for -2%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_blob_level: Option<i32>,
    /// Repository setting: clients delete nothing but their own locks (forget, prune and tag
    /// refuse). Changed only by `cista config --append-only`, which replaces this file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append_only: bool,
}

/// FastCDC sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: 512 * 1024,
            avg: 1024 * 1024,
            max: 8 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020 as f;
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&self.min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&self.avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&self.max)
            && self.min < self.avg
            && self.avg < self.max
            && self.avg.is_power_of_two();
        if ok {
            Ok(())
        } else {
            Err(format!(
                "chunker sizes min={} avg={} max={} are invalid: need {}<=min<avg<max<={}, avg a power of two between {} and {}",
                self.min, self.avg, self.max, f::MINIMUM_MIN, f::MAXIMUM_MAX, f::AVERAGE_MIN, f::AVERAGE_MAX
            ))
        }
    }
}

pub const MIN_PACK_SIZE: u32 = 1 << 20;
/// Blobs of this many plaintext bytes or more use `Config::large_blob_level`.
pub const LARGE_BLOB: usize = 256 * 1024;
pub const MAX_PACK_SIZE: u32 = 1 << 30;

impl Config {
    pub fn new(chunker: ChunkerParams, pack_size: u32) -> Config {
        Config {
            version: FORMAT_VERSION,
            id: Id::random(),
            chunker,
            pack_size,
            compression_level: 3,
            large_blob_level: Some(4),
            append_only: false,
        }
    }

    /// The zstd level a writer uses for a blob of `len` plaintext bytes.
    pub fn blob_level(&self, len: usize) -> i32 {
        match self.large_blob_level {
            Some(l) if len >= LARGE_BLOB => l,
            _ => self.compression_level,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.version != FORMAT_VERSION {
            return Err(format!("config version {} is not supported", self.version));
        }
        self.chunker.validate()?;
        if !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&self.pack_size) {
            return Err(format!(
                "pack size {} is outside {}..={}",
                self.pack_size, MIN_PACK_SIZE, MAX_PACK_SIZE
            ));
        }
        for (what, l) in [
            ("compression level", Some(self.compression_level)),
            ("large blob level", self.large_blob_level),
        ] {
            match l {
                Some(l) if !(-7..=22).contains(&l) => {
                    return Err(format!("{what} {l} is outside -7..=22"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("config serializes")
    }

    pub fn decode(raw: &[u8]) -> Result<Config, DecodeError> {
        let c: Config = serde_json::from_slice(raw).map_err(bad)?;
        if c.version != FORMAT_VERSION {
            return Err(DecodeError::Version(c.version));
        }
        c.validate().map_err(bad)?;
        Ok(c)
    }
}
