use super::*;
use crate::format::VerificationMethod::{Check, CheckReadData, Drill};

fn snap(original: Option<Id>) -> Snapshot {
    Snapshot {
        time: "2026-01-01T00:00:00Z".into(),
        tree: Id([7; 32]),
        paths: vec!["/a".into()],
        hostname: "h".into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        program_version: "cista".into(),
        summary: None,
        original,
    }
}

fn record(day: u8, method: VerificationMethod, passed: bool, snaps: &[u8]) -> (Id, Verification) {
    let v = Verification {
        time: format!("2026-01-{day:02}T00:00:00Z"),
        method,
        subset: None,
        fraction: None,
        result: VerificationResult::of(passed),
        snapshots: snaps.iter().map(|s| Id([*s; 32])).collect(),
        tree: None,
        bytes_read: 0,
        hostname: "h".into(),
        username: "u".into(),
        program_version: "cista".into(),
        detail: String::new(),
    };
    (Id([100 + day; 32]), v)
}

#[test]
fn the_newest_record_covering_a_snapshot_is_its_last_verification() {
    let log = VerificationLog::new(vec![
        record(3, Check, true, &[1, 2]),
        record(5, Drill, false, &[2]),
        record(1, CheckReadData, true, &[1, 2]),
    ]);
    let one = log.last(&Id([1; 32]), &snap(None)).unwrap();
    assert_eq!((one.id, one.method), (Id([103; 32]), Check));
    let two = log.last(&Id([2; 32]), &snap(None)).unwrap();
    assert_eq!(
        (two.method, two.result),
        (Drill, VerificationResult::Failed)
    );
    assert_eq!(log.last(&Id([9; 32]), &snap(None)), None);
    // A tagged snapshot keeps the verifications of the one it replaced.
    let tagged = log.last(&Id([9; 32]), &snap(Some(Id([1; 32])))).unwrap();
    assert_eq!(tagged.id, Id([103; 32]));
}

#[test]
fn freshness_is_the_newest_passed_record_of_the_newest_snapshot() {
    let log = VerificationLog::new(vec![
        record(3, Check, true, &[1, 2]),
        record(5, Drill, false, &[2]),
    ]);
    let mut older = snap(None);
    older.time = "2025-12-01T00:00:00Z".into();
    let snaps = vec![(Id([1; 32]), older), (Id([2; 32]), snap(None))];
    let f = log.freshness(&snaps);
    assert_eq!(f.latest_snapshot, Some((Id([2; 32]), snap(None).time)));
    assert_eq!(f.verified_at.as_deref(), Some("2026-01-03T00:00:00Z"));
    let f = log.freshness(&[(Id([3; 32]), snap(None))]);
    assert_eq!(f.verified_at, None);
    assert_eq!(log.freshness(&[]), Freshness::default());
}

#[test]
fn records_of_forgotten_or_superseded_verifications_are_dropped() {
    let log = VerificationLog::new(vec![
        record(1, Check, true, &[1]),          // only of a forgotten snapshot
        record(2, Check, true, &[2, 3]),       // superseded by day 4 for both
        record(3, Check, false, &[2]),         // superseded by day 4
        record(4, Check, true, &[2, 3]),       // newest check
        record(5, CheckReadData, true, &[3]),  // newest read-data check of 3
        record(6, Drill, true, &[3]),          // newest passed drill of 3
        record(7, Drill, false, &[3]),         // newest drill of 3
        record(8, CheckReadData, false, &[9]), // only of a forgotten snapshot
    ]);
    let left = vec![(Id([2; 32]), snap(None)), (Id([3; 32]), snap(None))];
    let mut gone = log.superseded(&left);
    gone.sort();
    let days = |d: &[u8]| d.iter().map(|d| Id([100 + d; 32])).collect::<Vec<_>>();
    assert_eq!(gone, days(&[1, 2, 3, 8]));
    assert_eq!(log.superseded(&[]).len(), log.len());
}
