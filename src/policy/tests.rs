//! The retention rules against restic's documented examples and the calendar's edges.

use jiff::tz::TimeZone;

use super::*;
use crate::format::Snapshot;
use crate::id::{Id, SnapshotId};

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
    // A week is seven days (restic has no week unit; cista takes one everywhere durations are).
    assert_eq!(
        "8w".parse::<Within>().unwrap(),
        Within {
            days: 56,
            ..Within::default()
        }
    );
    assert_eq!("1y2w3d".parse::<Within>().unwrap().days, 17);
    assert!("".parse::<Within>().is_err());
    assert!("5".parse::<Within>().is_err());
    assert!("7x".parse::<Within>().is_err());
}

/// The CLI's other duration flags (`drill --newer-than`, `--newer-than`, `--retry-lock`)
/// are parsed by humantime: a week there is the same seven days.
#[test]
fn weeks_agree_with_the_humantime_flags() {
    let w: Within = "8w".parse().unwrap();
    let h = humantime::parse_duration("8w").unwrap();
    assert_eq!(h.as_secs(), w.days as u64 * 86_400);
}

#[test]
fn keep_within_weeks_spans_seven_days_each() {
    // The Sunday backups: 2 weeks before the latest (11-17) is 11-03 exactly, which lies on
    // the edge and so outside, as with 14d.
    let p = KeepPolicy {
        within: Some("2w".parse().unwrap()),
        ..Default::default()
    };
    assert_eq!(kept(&sundays(), &p), vec!["2019-11-10", "2019-11-17"]);
    let days = KeepPolicy {
        within: Some("14d".parse().unwrap()),
        ..Default::default()
    };
    assert_eq!(kept(&sundays(), &p), kept(&sundays(), &days));
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
