//! Sizes as users write them (`500M`, `1.5G`, `1GiB`, `1GB`), with parse-size.

use crate::error::{Error, Result};

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
