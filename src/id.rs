//! 32-byte identifiers. Stored objects are named by the unkeyed BLAKE3 of their bytes; blobs by
//! the keyed BLAKE3 of their plaintext. Both print as 64 lowercase hex digits.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A 32-byte identifier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub [u8; 32]);

/// Id of a stored pack file (BLAKE3 of its bytes).
pub type PackId = Id;
/// Id of a blob (keyed BLAKE3 of its plaintext): file content chunks and trees.
pub type BlobId = Id;
/// Id of a tree blob.
pub type TreeId = Id;
/// Id of a snapshot file (BLAKE3 of its stored bytes).
pub type SnapshotId = Id;

impl Id {
    /// The unkeyed BLAKE3 hash of `data`: the name of a stored object.
    pub fn of_bytes(data: &[u8]) -> Id {
        Id(*blake3::hash(data).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, as shown in listings.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn random() -> Id {
        let mut b = [0u8; 32];
        getrandom::getrandom(&mut b).expect("operating system random source failed");
        Id(b)
    }
}

/// Hex in human-readable formats (JSON), 32 raw bytes in binary ones (trees).
impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Id(<[u8; 32]>::deserialize(d)?))
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)
            .map_err(|_| Error::Invalid(format!("{s:?} is not a 64-digit hex id")))?;
        Ok(Id(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trip(b in any::<[u8; 32]>()) {
            let id = Id(b);
            prop_assert_eq!(id.to_hex().parse::<Id>().unwrap(), id);
        }
    }

    #[test]
    fn rejects_bad_hex() {
        assert!("zz".parse::<Id>().is_err());
        assert!("00".parse::<Id>().is_err());
    }
}
