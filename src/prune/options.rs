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
        Ok(MaxUnused::Bytes(parse_size(s)?))
    }
}

/// Parses a size in bytes: `4096`, `10k`, `200M`, `1.5G`, `1GiB`, `1GB` (case-insensitive).
pub fn parse_size(s: &str) -> Result<u64> {
    parse_size_in(s, 1)
}

/// Parses a size whose bare numbers count `unit` bytes (`--pack-size 16` is 16 MiB).
///
/// A lone K, M, G, T, P or E is binary, as restic reads it (`1G` = 1 GiB); KiB, MiB, GiB
/// are binary and KB, MB, GB decimal, as their SI and IEC names say.
pub fn parse_size_in(s: &str, unit: u64) -> Result<u64> {
    let t = s.trim();
    let lone_prefix = t.chars().last().is_some_and(|c| "kmgtpeKMGTPE".contains(c))
        && t.chars()
            .nth_back(1)
            .is_some_and(|c| !c.is_ascii_alphabetic());
    let text = if lone_prefix {
        format!("{t}i")
    } else {
        t.to_string()
    };
    parse_size::Config::new()
        .with_default_factor(unit)
        .parse_size(&text)
        .map_err(|e| {
            Error::Invalid(format!(
                "size {s:?}: {e} (write e.g. 4096, 500M, 1.5G, 1GiB or 1GB)"
            ))
        })
}
