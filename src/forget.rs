//! Retention policies: which snapshots `forget` keeps, with restic's semantics.
//!
//! Snapshots are grouped (by host and paths unless told otherwise) and each group is handled
//! on its own, newest first. A calendar rule (`--keep-daily 7`) keeps the newest snapshot of each
//! of the last N hours/days/ISO weeks/months/years that have one, in the local time zone; the
//! rules are ORed. A group in which nothing is kept is refused unless explicitly allowed: a
//! mistyped `--keep-tag` must not empty a repository (restic #4568).

use std::collections::BTreeMap;

use jiff::{tz::TimeZone, Timestamp, Zoned};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::Snapshot;
use crate::id::SnapshotId;

/// A count rule: `None` is off, `Some(-1)` unlimited.
pub type Count = Option<i64>;

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
                "duration {s:?}: use e.g. 2y5m7d3h (years, months, days, hours)"
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
    fn before(&self, t: &Zoned) -> Option<Zoned> {
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

/// The `--keep-*` options.
#[derive(Clone, Debug, Default)]
pub struct KeepPolicy {
    pub last: Count,
    pub hourly: Count,
    pub daily: Count,
    pub weekly: Count,
    pub monthly: Count,
    pub yearly: Count,
    pub within: Option<Within>,
    pub within_hourly: Option<Within>,
    pub within_daily: Option<Within>,
    pub within_weekly: Option<Within>,
    pub within_monthly: Option<Within>,
    pub within_yearly: Option<Within>,
    /// Tag lists; a snapshot with all tags of any list is kept. `""` matches untagged snapshots.
    pub tags: Vec<String>,
}

impl KeepPolicy {
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ];
        let withins = [
            self.within,
            self.within_hourly,
            self.within_daily,
            self.within_weekly,
            self.within_monthly,
            self.within_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0)
            && withins.iter().all(|w| w.is_none())
            && self.tags.is_empty()
    }
}

/// How snapshots are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<GroupBy> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                _ => {
                    return Err(Error::Invalid(format!(
                        "--group-by {part:?}: use host, paths and/or tags"
                    )))
                }
            }
        }
        Ok(g)
    }
}

/// The key of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    pub host: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

/// `host [h], paths [a, b], tags [t]`, or `all snapshots` for the one group of `--group-by ''`.
impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host [{h}]"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

impl GroupBy {
    pub fn key(&self, s: &Snapshot) -> GroupKey {
        let mut paths = s.paths.clone();
        paths.sort();
        let mut tags = s.tags.clone();
        tags.sort();
        GroupKey {
            host: self.host.then(|| s.hostname.clone()),
            paths: self.paths.then_some(paths),
            tags: self.tags.then_some(tags),
        }
    }
}

/// Groups snapshots, each group oldest first.
pub fn group(
    snaps: Vec<(SnapshotId, Snapshot)>,
    by: GroupBy,
) -> BTreeMap<GroupKey, Vec<(SnapshotId, Snapshot)>> {
    let mut out: BTreeMap<GroupKey, Vec<(SnapshotId, Snapshot)>> = BTreeMap::new();
    for (id, s) in snaps {
        out.entry(by.key(&s)).or_default().push((id, s));
    }
    for v in out.values_mut() {
        crate::repository::sort_snapshots(v);
    }
    out
}

/// A kept snapshot and the rules that kept it.
#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    pub id: SnapshotId,
    pub time: String,
    pub reasons: Vec<String>,
}

/// The decision for one group.
#[derive(Clone, Debug, Serialize)]
pub struct GroupDecision {
    pub group: GroupKey,
    pub keep: Vec<Kept>,
    pub remove: Vec<SnapshotId>,
}

#[derive(Clone, Copy)]
enum Bucket {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::Hour => "hourly",
            Bucket::Day => "daily",
            Bucket::Week => "weekly",
            Bucket::Month => "monthly",
            Bucket::Year => "yearly",
        }
    }

    fn key(self, z: &Zoned) -> i64 {
        let (y, m, d, h) = (
            z.year() as i64,
            z.month() as i64,
            z.day() as i64,
            z.hour() as i64,
        );
        match self {
            Bucket::Hour => ((y * 100 + m) * 100 + d) * 100 + h,
            Bucket::Day => (y * 100 + m) * 100 + d,
            Bucket::Week => {
                let w = z.date().iso_week_date();
                w.year() as i64 * 100 + w.week() as i64
            }
            Bucket::Month => y * 100 + m,
            Bucket::Year => y,
        }
    }
}

/// Applies `policy` to one group (any order). `now` and `tz` make the result reproducible.
pub fn apply(
    group_key: GroupKey,
    snaps: &[(SnapshotId, Snapshot)],
    policy: &KeepPolicy,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<GroupDecision> {
    let mut list: Vec<(SnapshotId, &Snapshot, Zoned)> = snaps
        .iter()
        .map(|(id, s)| {
            let t = s.timestamp().map_err(Error::Invalid)?;
            Ok((*id, s, t.to_zoned(tz.clone())))
        })
        .collect::<Result<_>>()?;
    // Newest first; ties by id so results do not depend on listing order.
    list.sort_by(|a, b| b.2.timestamp().cmp(&a.2.timestamp()).then(b.0.cmp(&a.0)));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); list.len()];
    let latest = list.first().map(|x| x.2.clone());

    if let Some(n) = policy.last.filter(|&n| n != 0) {
        for (i, r) in reasons.iter_mut().enumerate() {
            if n < 0 || (i as i64) < n {
                r.push("last snapshot".into());
            }
        }
    }
    let rules = [
        (Bucket::Hour, policy.hourly, policy.within_hourly),
        (Bucket::Day, policy.daily, policy.within_daily),
        (Bucket::Week, policy.weekly, policy.within_weekly),
        (Bucket::Month, policy.monthly, policy.within_monthly),
        (Bucket::Year, policy.yearly, policy.within_yearly),
    ];
    for (bucket, count, within) in rules {
        if let Some(mut left) = count.filter(|&n| n != 0) {
            let mut last_key = None;
            for (i, (_, _, z)) in list.iter().enumerate() {
                if left == 0 {
                    break;
                }
                let k = bucket.key(z);
                if last_key != Some(k) {
                    last_key = Some(k);
                    reasons[i].push(format!("{} snapshot", bucket.name()));
                    if left > 0 {
                        left -= 1;
                    }
                }
            }
            // Fewer buckets than asked for: the oldest snapshot is kept too (restic does so).
            if left > 0 {
                if let Some(r) = reasons.last_mut() {
                    let reason = format!("oldest {} snapshot", bucket.name());
                    if !r.iter().any(|x| x.starts_with(bucket.name())) {
                        r.push(reason);
                    }
                }
            }
        }
        if let (Some(w), Some(latest)) = (within, &latest) {
            let from = w.before(latest);
            let mut last_key = None;
            for (i, (_, _, z)) in list.iter().enumerate() {
                if from
                    .as_ref()
                    .is_some_and(|f| z.timestamp() <= f.timestamp())
                {
                    break;
                }
                let k = bucket.key(z);
                if last_key != Some(k) {
                    last_key = Some(k);
                    reasons[i].push(format!("{} within {w}", bucket.name()));
                }
            }
        }
    }
    if let (Some(w), Some(latest)) = (policy.within, &latest) {
        let from = w.before(latest);
        for (i, (_, _, z)) in list.iter().enumerate() {
            if from.as_ref().is_none_or(|f| z.timestamp() > f.timestamp()) {
                reasons[i].push(format!("within {w}"));
            }
        }
    }
    let any_within = [
        policy.within,
        policy.within_hourly,
        policy.within_daily,
        policy.within_weekly,
        policy.within_monthly,
        policy.within_yearly,
    ]
    .iter()
    .any(|w| w.is_some());
    for (i, (_, s, z)) in list.iter().enumerate() {
        if any_within && z.timestamp() > now {
            reasons[i].push("in the future".into());
        }
        for t in &policy.tags {
            let want: Vec<&str> = t.split(',').filter(|x| !x.is_empty()).collect();
            let m = if want.is_empty() {
                s.tags.is_empty()
            } else {
                want.iter().all(|w| s.tags.iter().any(|x| x == w))
            };
            if m {
                reasons[i].push(format!("tag {t:?}"));
            }
        }
    }

    let mut keep = Vec::new();
    let mut remove = Vec::new();
    for ((id, s, _), r) in list.iter().zip(reasons).rev() {
        if r.is_empty() {
            remove.push(*id);
        } else {
            keep.push(Kept {
                id: *id,
                time: s.time.clone(),
                reasons: r,
            });
        }
    }
    Ok(GroupDecision {
        group: group_key,
        keep,
        remove,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    fn snap(i: u8, time: &str, tags: &[&str]) -> (SnapshotId, Snapshot) {
        (
            Id([i; 32]),
            Snapshot {
                time: time.into(),
                tree: Id([0; 32]),
                paths: vec!["/home/user/work".into()],
                hostname: "mopped".into(),
                username: "u".into(),
                uid: 0,
                gid: 0,
                tags: tags.iter().map(|s| s.to_string()).collect(),
                parent: None,
                program_version: String::new(),
                summary: None,
                original: None,
            },
        )
    }

    fn kept(snaps: &[(SnapshotId, Snapshot)], p: &KeepPolicy) -> Vec<String> {
        let d = apply(
            GroupKey::default(),
            snaps,
            p,
            "2030-01-01T00:00:00Z".parse().unwrap(),
            &TimeZone::UTC,
        )
        .unwrap();
        let mut v: Vec<String> = d.keep.iter().map(|k| k.time[..10].to_string()).collect();
        v.sort();
        v
    }

    /// restic's documented example: a backup every Sunday for 12 weeks.
    fn sundays() -> Vec<(SnapshotId, Snapshot)> {
        let days = [
            "2019-09-01",
            "2019-09-08",
            "2019-09-15",
            "2019-09-22",
            "2019-09-29",
            "2019-10-06",
            "2019-10-13",
            "2019-10-20",
            "2019-10-27",
            "2019-11-03",
            "2019-11-10",
            "2019-11-17",
        ];
        days.iter()
            .enumerate()
            .map(|(i, d)| snap(i as u8, &format!("{d}T11:00:00Z"), &[]))
            .collect()
    }

    #[test]
    fn restic_doc_keep_daily_4() {
        let p = KeepPolicy {
            daily: Some(4),
            ..Default::default()
        };
        assert_eq!(
            kept(&sundays(), &p),
            ["2019-10-27", "2019-11-03", "2019-11-10", "2019-11-17"]
        );
    }

    #[test]
    fn table() {
        let daily: Vec<_> = (0..40u8)
            .map(|i| {
                let d = jiff::civil::date(2020, 12, 1)
                    .checked_add(jiff::Span::new().days(i as i64))
                    .unwrap();
                snap(
                    i,
                    &format!("{d}T10:00:00Z"),
                    if i == 3 { &["keep"] } else { &[] },
                )
            })
            .collect();
        let cases: Vec<(KeepPolicy, Vec<&str>)> = vec![
            (
                KeepPolicy {
                    last: Some(2),
                    ..Default::default()
                },
                vec!["2021-01-08", "2021-01-09"],
            ),
            // ISO weeks: 2020-W53 runs Mon 2020-12-28 .. Sun 2021-01-03; its newest is the Sunday.
            (
                KeepPolicy {
                    weekly: Some(3),
                    ..Default::default()
                },
                vec!["2020-12-27", "2021-01-03", "2021-01-09"],
            ),
            // Months and years at the turn of the year.
            (
                KeepPolicy {
                    monthly: Some(2),
                    ..Default::default()
                },
                vec!["2020-12-31", "2021-01-09"],
            ),
            (
                KeepPolicy {
                    yearly: Some(5),
                    ..Default::default()
                },
                vec!["2020-12-01", "2020-12-31", "2021-01-09"],
            ),
            (
                KeepPolicy {
                    tags: vec!["keep".into()],
                    ..Default::default()
                },
                vec!["2020-12-04"],
            ),
            (
                KeepPolicy {
                    within: Some("3d".parse().unwrap()),
                    ..Default::default()
                },
                vec!["2021-01-07", "2021-01-08", "2021-01-09"],
            ),
            (
                // 14 days before the latest (01-09 10:00) is 12-26 10:00: weeks 52, 53 and 01.
                KeepPolicy {
                    within_weekly: Some("14d".parse().unwrap()),
                    ..Default::default()
                },
                vec!["2020-12-27", "2021-01-03", "2021-01-09"],
            ),
            (
                KeepPolicy {
                    daily: Some(2),
                    weekly: Some(2),
                    last: Some(1),
                    ..Default::default()
                },
                vec!["2021-01-03", "2021-01-08", "2021-01-09"],
            ),
            (
                KeepPolicy {
                    daily: Some(-1),
                    ..Default::default()
                },
                daily.iter().map(|_| "").collect(),
            ),
        ];
        for (i, (p, want)) in cases.into_iter().enumerate() {
            let got = kept(&daily, &p);
            if want.iter().all(|w| w.is_empty()) {
                assert_eq!(got.len(), daily.len(), "case {i}");
            } else {
                assert_eq!(got, want, "case {i}: {p:?}");
            }
        }
    }

    #[test]
    fn iso_week_year_boundary() {
        // 2021-01-01 (Fri) belongs to ISO week 2020-W53, as does 2020-12-28; 2021-01-04 starts W01.
        let s = vec![
            snap(1, "2020-12-28T08:00:00Z", &[]),
            snap(2, "2021-01-01T08:00:00Z", &[]),
            snap(3, "2021-01-04T08:00:00Z", &[]),
        ];
        let p = KeepPolicy {
            weekly: Some(2),
            ..Default::default()
        };
        assert_eq!(kept(&s, &p), ["2021-01-01", "2021-01-04"]);
        let p = KeepPolicy {
            yearly: Some(2),
            ..Default::default()
        };
        assert_eq!(kept(&s, &p), ["2020-12-28", "2021-01-04"]);
    }

    #[test]
    fn local_time_zone_decides_the_day() {
        // 23:30 UTC on the 1st is the 2nd in Berlin: with Berlin time both are on the 2nd.
        let s = vec![
            snap(1, "2021-03-01T23:30:00Z", &[]),
            snap(2, "2021-03-02T08:00:00Z", &[]),
        ];
        let p = KeepPolicy {
            daily: Some(5),
            ..Default::default()
        };
        let now = "2030-01-01T00:00:00Z".parse().unwrap();
        let utc = apply(GroupKey::default(), &s, &p, now, &TimeZone::UTC).unwrap();
        assert_eq!(utc.keep.len(), 2);
        let berlin = apply(
            GroupKey::default(),
            &s,
            &p,
            now,
            &TimeZone::get("Europe/Berlin").unwrap(),
        )
        .unwrap();
        assert_eq!(berlin.keep.len(), 2, "the oldest is kept as 'oldest daily'");
        assert!(berlin.keep[0]
            .reasons
            .iter()
            .any(|r| r.starts_with("oldest")));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            "2y5m7d3h".parse::<Within>().unwrap(),
            Within {
                years: 2,
                months: 5,
                days: 7,
                hours: 3
            }
        );
        assert!("7w".parse::<Within>().is_err());
        assert!("".parse::<Within>().is_err());
        assert!("5".parse::<Within>().is_err());
    }

    #[test]
    fn grouping() {
        let mut a = snap(1, "2021-01-01T00:00:00Z", &["x"]);
        a.1.hostname = "a".into();
        let b = snap(2, "2021-01-02T00:00:00Z", &[]);
        let g = group(vec![a.clone(), b.clone()], GroupBy::default());
        assert_eq!(g.len(), 2);
        let g = group(vec![a, b], "".parse().unwrap());
        assert_eq!(g.len(), 1);
    }
}
