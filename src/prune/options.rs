//! Parsing of prune's sizes: `--max-unused` and `--max-repack-size` (and, through
//! `parse_size_in`, the CLI's other size options).

use crate::error::{Error, Result};

/// How much unused space may remain in partly used packs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// Percent of the repository's size after prune.
    Percent(f64),
    Bytes(u64),
    Unlimited,
}

impl std::str::FromStr for MaxUnused {
    type Err = Error;
    fn from_str(s: &str) -> Result<MaxUnused> {
        let s = s.trim();
        if s == "unlimited" {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .parse()
                .map_err(|_| Error::Invalid(format!("--max-unused {s:?}")))?;
            if !(0.0..100.0).contains(&p) {
                return Err(Error::Invalid(format!(
                    "--max-unused {s:?}: percent must be in 0..100"
                )));
            }
            return Ok(MaxUnused::Percent(p));
        }
        Ok(MaxUnused::Bytes(crate::util::parse_size(s)?))
    }
}
