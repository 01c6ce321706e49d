//! Which packs `--read-data` reads: all of them, a fixed group, or a random share.

use std::collections::HashMap;

use crate::error::Result;
use crate::id::PackId;

/// Which packs `--read-data` reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    All,
    /// Group `n` of `m` (1-based, `m` at most 256): packs whose first id byte modulo `m` is
    /// `n - 1`, as restic groups them. The groups are fixed by the pack ids, so reading 1/m to
    /// m/m (on different days, say) reads every pack exactly once.
    Part(u32, u32),
    /// This percentage of the packs (rounded, at least one), chosen at random.
    Percent(f64),
    /// Packs chosen at random until they add up to this many bytes (at least one pack).
    Bytes(u64),
}

/// The most `n/m` groups: packs are grouped by the first byte of their id.
pub const MAX_GROUPS: u32 = 256;

impl std::str::FromStr for Subset {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| crate::Error::Invalid(format!("--read-data-subset {s:?}: {why}"));
        let usage =
            || bad("use n/m (group n of m, e.g. 2/5), p% (e.g. 5%) or a size (e.g. 500M)".into());
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| usage())?;
            if p.is_nan() || p <= 0.0 {
                return Err(bad(
                    "reads no pack: give a percentage above 0 and at most 100".into(),
                ));
            }
            if p > 100.0 {
                return Err(bad(
                    "a percentage is at most 100 (100% reads every pack)".into()
                ));
            }
            return Ok(Subset::Percent(p));
        }
        if let Some((n, m)) = s.split_once('/') {
            let (n, m): (u32, u32) = (
                n.trim().parse().map_err(|_| usage())?,
                m.trim().parse().map_err(|_| usage())?,
            );
            if m == 0 || m > MAX_GROUPS {
                return Err(bad(format!(
                    "the number of groups m must be 1 to {MAX_GROUPS}"
                )));
            }
            if n == 0 || n > m {
                return Err(bad(format!(
                    "there is no group {n} of {m}: groups are numbered 1 to {m}"
                )));
            }
            return Ok(Subset::Part(n, m));
        }
        match crate::util::parse_size(s) {
            Ok(0) => Err(bad("reads no pack: give a size above 0".into())),
            Ok(b) => Ok(Subset::Bytes(b)),
            Err(_) => Err(usage()),
        }
    }
}

/// As `--read-data-subset` takes it: `all`, `n/m`, `p%`, or a number of bytes.
impl std::fmt::Display for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subset::All => f.write_str("all"),
            Subset::Part(n, m) => write!(f, "{n}/{m}"),
            Subset::Percent(p) => write!(f, "{p}%"),
            Subset::Bytes(b) => write!(f, "{b}"),
        }
    }
}

/// The packs `subset` reads out of `stored`, sorted by id.
pub fn select_packs(stored: &HashMap<PackId, u64>, subset: Subset) -> Vec<(PackId, u64)> {
    let mut packs: Vec<(PackId, u64)> = stored.iter().map(|(id, s)| (*id, *s)).collect();
    let take = match subset {
        Subset::All => packs.len(),
        Subset::Part(n, m) => {
            packs.retain(|(id, _)| id.0[0] as u32 % m == n - 1);
            packs.len()
        }
        Subset::Percent(p) => {
            shuffle(&mut packs);
            ((packs.len() as f64 * p / 100.0).round() as usize).clamp(1, packs.len().max(1))
        }
        Subset::Bytes(limit) => {
            shuffle(&mut packs);
            let mut total = 0u64;
            let within = packs
                .iter()
                .take_while(|(_, s)| {
                    total = total.saturating_add(*s);
                    total <= limit
                })
                .count();
            within.max(1)
        }
    };
    packs.truncate(take);
    packs.sort();
    packs
}

/// A random order: the packs sorted by a keyed hash of their id under a fresh random key.
fn shuffle(packs: &mut [(PackId, u64)]) {
    let key: [u8; 32] = crate::crypto::random_bytes();
    packs.sort_by_cached_key(|(id, _)| *blake3::keyed_hash(&key, &id.0).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    /// 256 packs of 10 bytes, one for each first id byte.
    fn stored() -> HashMap<PackId, u64> {
        (0..=255u8).map(|b| (Id([b; 32]), 10)).collect()
    }

    #[test]
    fn parses_groups_percentages_and_sizes() {
        assert_eq!("2/5".parse::<Subset>().unwrap(), Subset::Part(2, 5));
        assert_eq!(" 5% ".parse::<Subset>().unwrap(), Subset::Percent(5.0));
        assert_eq!("100%".parse::<Subset>().unwrap(), Subset::Percent(100.0));
        assert!(matches!("500M".parse::<Subset>().unwrap(), Subset::Bytes(b) if b >= 500_000_000));
        // Displayed as it is given, so a record's subset parses back.
        for s in [
            Subset::Part(2, 5),
            Subset::Percent(2.5),
            Subset::Bytes(1 << 20),
        ] {
            assert_eq!(s.to_string().parse::<Subset>().unwrap(), s);
        }
        for bad in [
            "0/5", "6/5", "1/0", "1/257", "0%", "101%", "NaN%", "0", "x", "1/x",
        ] {
            let e = bad.parse::<Subset>().unwrap_err().to_string();
            assert!(e.contains("--read-data-subset"), "{bad}: {e}");
        }
    }

    #[test]
    fn groups_read_every_pack_once() {
        let stored = stored();
        let mut seen = Vec::new();
        for n in 1..=7 {
            let part = select_packs(&stored, Subset::Part(n, 7));
            assert!(part.iter().all(|(id, _)| id.0[0] as u32 % 7 == n - 1));
            seen.extend(part);
        }
        seen.sort();
        assert_eq!(seen, select_packs(&stored, Subset::All));
        assert_eq!(seen.len(), 256);
    }

    #[test]
    fn random_shares_are_sized_and_at_least_one_pack() {
        let stored = stored();
        assert_eq!(select_packs(&stored, Subset::Percent(10.0)).len(), 26);
        assert_eq!(select_packs(&stored, Subset::Percent(0.01)).len(), 1);
        assert_eq!(select_packs(&stored, Subset::Bytes(95)).len(), 9);
        assert_eq!(select_packs(&stored, Subset::Bytes(1)).len(), 1);
        let some = select_packs(&stored, Subset::Percent(50.0));
        assert!(some.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(select_packs(&HashMap::new(), Subset::Bytes(1)).is_empty());
    }
}
