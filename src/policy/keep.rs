//! The `--keep-*` rules and the decision for one group: which snapshots are kept, and why.

use jiff::{tz::TimeZone, Timestamp, Zoned};
use serde::Serialize;

use super::group::GroupKey;
use super::within::Within;
use crate::error::{Error, Result};
use crate::format::Snapshot;
use crate::id::SnapshotId;

/// A count rule: `None` is off, `Some(-1)` unlimited.
pub type Count = Option<i64>;

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
        counts.iter().all(|c| c.unwrap_or(0) == 0)
            && self.withins().iter().all(|w| w.is_none())
            && self.tags.is_empty()
    }

    /// The six `--keep-within*` rules.
    fn withins(&self) -> [Option<Within>; 6] {
        [
            self.within,
            self.within_hourly,
            self.within_daily,
            self.within_weekly,
            self.within_monthly,
            self.within_yearly,
        ]
    }
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

/// A snapshot of the group with its time in the zone the calendar rules count in.
type Dated<'a> = (SnapshotId, &'a Snapshot, Zoned);

/// Applies `policy` to one group (any order). `now` and `tz` make the result reproducible.
pub fn apply(
    group_key: GroupKey,
    snaps: &[(SnapshotId, Snapshot)],
    policy: &KeepPolicy,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<GroupDecision> {
    let list = newest_first(snaps, tz)?;
    let reasons = reasons(&list, policy, now);
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

/// The snapshots with their times in `tz`, newest first; ties by id so results do not depend
/// on listing order.
fn newest_first<'a>(snaps: &'a [(SnapshotId, Snapshot)], tz: &TimeZone) -> Result<Vec<Dated<'a>>> {
    let mut list: Vec<Dated<'a>> = snaps
        .iter()
        .map(|(id, s)| {
            let t = s.timestamp().map_err(Error::Invalid)?;
            Ok((*id, s, t.to_zoned(tz.clone())))
        })
        .collect::<Result<_>>()?;
    list.sort_by(|a, b| b.2.timestamp().cmp(&a.2.timestamp()).then(b.0.cmp(&a.0)));
    Ok(list)
}

/// Why each snapshot of `list` (newest first) is kept, in the order the rules are applied;
/// a snapshot with no reason is removed.
fn reasons(list: &[Dated], policy: &KeepPolicy, now: Timestamp) -> Vec<Vec<String>> {
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
        if let Some(left) = count.filter(|&n| n != 0) {
            keep_buckets(list, &mut reasons, bucket, left);
        }
        if let (Some(w), Some(latest)) = (within, &latest) {
            keep_buckets_within(list, &mut reasons, bucket, w, latest);
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
    let any_within = policy.withins().iter().any(|w| w.is_some());
    for (i, (_, s, z)) in list.iter().enumerate() {
        if any_within && z.timestamp() > now {
            reasons[i].push("in the future".into());
        }
        for t in &policy.tags {
            if has_tags(s, t) {
                reasons[i].push(format!("tag {t:?}"));
            }
        }
    }
    reasons
}

/// A count rule (`--keep-daily 7`, `-1` for unlimited): the newest snapshot of each of the
/// newest `left` buckets; with fewer buckets than asked for, the oldest snapshot too (restic
/// does so).
fn keep_buckets(list: &[Dated], reasons: &mut [Vec<String>], bucket: Bucket, mut left: i64) {
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
    if left > 0 {
        if let Some(r) = reasons.last_mut() {
            let reason = format!("oldest {} snapshot", bucket.name());
            if !r.iter().any(|x| x.starts_with(bucket.name())) {
                r.push(reason);
            }
        }
    }
}

/// A `--keep-within-<bucket>` rule: the newest snapshot of each bucket newer than `w` before
/// the latest snapshot.
fn keep_buckets_within(
    list: &[Dated],
    reasons: &mut [Vec<String>],
    bucket: Bucket,
    w: Within,
    latest: &Zoned,
) {
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

/// Whether `s` has every tag of the comma-separated list `t`; an empty list matches an
/// untagged snapshot.
fn has_tags(s: &Snapshot, t: &str) -> bool {
    let want: Vec<&str> = crate::util::tag_list(t).collect();
    if want.is_empty() {
        s.tags.is_empty()
    } else {
        want.iter().all(|w| s.tags.iter().any(|x| x == w))
    }
}
