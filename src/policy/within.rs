//! `--keep-within*` spans: years, months, days and hours, parsed from restic's `2y5m7d3h`
//! (and weeks, `8w`, as seven days each).

use jiff::Zoned;

use crate::error::{Error, Result};

/// A calendar span for `--keep-within*`: years, months, days, hours (restic's `2y5m7d3h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Within {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl std::str::FromStr for Within {
    type Err = Error;
    fn from_str(s: &str) -> Result<Within> {
        let bad = || {
            Error::Invalid(format!(
                "duration {s:?}: use e.g. 2y5m7d3h or 8w (years, months, weeks, days, hours)"
            ))
        };
        let mut w = Within::default();
        let mut num = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => w.years += n,
                'm' => w.months += n,
                'w' => w.days += n.checked_mul(7).ok_or_else(bad)?,
                'd' => w.days += n,
                'h' => w.hours += n,
                _ => return Err(bad()),
            }
        }
        if !num.is_empty() || s.trim().is_empty() {
            return Err(bad());
        }
        Ok(w)
    }
}

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}y{}m{}d{}h",
            self.years, self.months, self.days, self.hours
        )
    }
}

impl Within {
    /// The instant this span before `t`, by calendar arithmetic in `t`'s zone.
    pub(super) fn before(&self, t: &Zoned) -> Option<Zoned> {
        let span = jiff::Span::new()
            .try_years(self.years)
            .ok()?
            .try_months(self.months)
            .ok()?
            .try_days(self.days)
            .ok()?
            .try_hours(self.hours)
            .ok()?;
        t.checked_sub(span).ok()
    }
}
