//! Metrics for Prometheus' node-exporter textfile collector: one file, rewritten atomically
//! after every run, keeping what earlier runs wrote (other commands' gauges, the counters).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Result;

use super::receipt::{write_atomic, Receipt, RunStatus};

/// Labels every sample carries besides `command`.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct MetricLabels {
    /// The repository's id (or its location, when it never opened).
    pub repository: String,
    /// The profile that ran (`cista run NAME`); empty otherwise.
    pub profile: String,
    pub host: String,
}

impl MetricLabels {
    pub fn new(repository: String, profile: String, host: String) -> MetricLabels {
        MetricLabels {
            repository,
            profile,
            host,
        }
    }
}

/// Counters: kept across runs, incremented by one run each.
const COUNTERS: [(&str, &str); 4] = [
    (
        "cista_backup_success_total",
        "Backups that saved a snapshot.",
    ),
    ("cista_backup_failure_total", "Backups that failed."),
    ("cista_runs_total", "Runs of each command."),
    ("cista_failures_total", "Failed runs of each command."),
];

/// Gauges, with their help text.
const GAUGES: [(&str, &str); 13] = [
    (
        "cista_last_run_timestamp_seconds",
        "When the command last ran (end), Unix time.",
    ),
    (
        "cista_last_success_timestamp_seconds",
        "When the command last succeeded, Unix time.",
    ),
    ("cista_run_duration_seconds", "How long the last run took."),
    ("cista_last_exit_code", "The last run's exit code."),
    ("cista_files_processed", "Files the last run read or wrote."),
    ("cista_bytes_processed", "Bytes the last run read or wrote."),
    (
        "cista_bytes_added",
        "Bytes the last backup added to the repository (before compression).",
    ),
    ("cista_snapshots", "Snapshots the last check saw."),
    (
        "cista_last_check_timestamp_seconds",
        "When a check or drill last verified the repository.",
    ),
    (
        "cista_last_check_success",
        "1 when that check or drill passed, 0 when it failed.",
    ),
    (
        "cista_last_check_read_bytes",
        "Bytes of packs that check or drill read and verified.",
    ),
    (
        "cista_latest_snapshot_timestamp_seconds",
        "Time of the repository's newest snapshot when a check or drill last ran, Unix time.",
    ),
    (
        "cista_latest_snapshot_verified_timestamp_seconds",
        "When a passed check or drill last verified that snapshot, Unix time (0: never).",
    ),
];

/// One sample's identity: metric name and its labels, rendered.
type Key = (String, String);

/// Reads the samples of an existing metrics file (a missing or unreadable one has none).
fn read_samples(path: &Path) -> BTreeMap<Key, f64> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, l)) => (n.to_string(), format!("{{{l}")),
            None => (name_labels.to_string(), String::new()),
        };
        out.insert((name, labels), v);
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(l: &MetricLabels, command: &str) -> String {
    format!(
        "{{command=\"{}\",repository=\"{}\",profile=\"{}\",host=\"{}\"}}",
        escape(command),
        escape(&l.repository),
        escape(&l.profile),
        escape(&l.host)
    )
}

fn unix(rfc3339: &str) -> f64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map_or(0.0, |t| t.as_millisecond() as f64 / 1000.0)
}

/// Updates the metrics file at `path` with the run `r` describes.
pub fn write_metrics(path: &Path, r: &Receipt, l: &MetricLabels) -> Result<()> {
    let mut s = read_samples(path);
    let lb = labels(l, &r.command);
    let mut set = |name: &str, v: f64| {
        s.insert((name.to_string(), lb.clone()), v);
    };
    let ok = r.status != RunStatus::Failure;
    let end = unix(&r.completed_at);
    set("cista_last_run_timestamp_seconds", end);
    if ok {
        set("cista_last_success_timestamp_seconds", end);
    }
    set("cista_run_duration_seconds", r.duration_seconds);
    set("cista_last_exit_code", r.exit_code as f64);
    let count = |k: &str| r.counts.get(k).map(|v| *v as f64);
    let files = count("total_files_processed").or(count("files_restored"));
    let bytes = count("total_bytes_processed")
        .or(count("bytes_restored"))
        .or(count("bytes_read"));
    for (name, v) in [
        ("cista_files_processed", files),
        ("cista_bytes_processed", bytes),
        ("cista_bytes_added", count("data_added")),
        ("cista_snapshots", count("snapshots")),
    ] {
        if let Some(v) = v {
            set(name, v);
        }
    }
    if let Some(last) = r.checks.last() {
        set(
            "cista_last_check_timestamp_seconds",
            unix(&last.validated_at),
        );
        let passed = r.checks.iter().all(|c| c.result == "passed");
        set("cista_last_check_success", if passed { 1.0 } else { 0.0 });
        if let Some(b) = count("bytes_read") {
            set("cista_last_check_read_bytes", b);
        }
    }
    if let Some(v) = &r.verification {
        if let Some(t) = &v.latest_snapshot_time {
            set("cista_latest_snapshot_timestamp_seconds", unix(t));
            let verified = v.latest_snapshot_verified_at.as_deref().map_or(0.0, unix);
            set("cista_latest_snapshot_verified_timestamp_seconds", verified);
        }
    }
    let mut bump = |name: &str| {
        *s.entry((name.to_string(), lb.clone())).or_insert(0.0) += 1.0;
    };
    bump("cista_runs_total");
    if !ok {
        bump("cista_failures_total");
    }
    if r.command == "backup" {
        bump(if ok {
            "cista_backup_success_total"
        } else {
            "cista_backup_failure_total"
        });
    }
    write_atomic(path, render(&s).as_bytes())
}

fn render(s: &BTreeMap<Key, f64>) -> String {
    let mut out = String::new();
    let kinds = COUNTERS
        .iter()
        .map(|(n, h)| (*n, *h, "counter"))
        .chain(GAUGES.iter().map(|(n, h)| (*n, *h, "gauge")));
    for (name, help, kind) in kinds {
        let mut samples = s.iter().filter(|((n, _), _)| n == name).peekable();
        if samples.peek().is_none() {
            continue;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for ((n, l), v) in samples {
            out.push_str(&format!("{n}{l} {v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_survive_runs_and_gauges_of_other_commands_stay() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cista.prom");
        let l = MetricLabels {
            repository: "abc".into(),
            profile: String::new(),
            host: "h\"1".into(),
        };
        let mut b = Receipt::start("backup", vec![]);
        b.counts.insert("data_added".into(), 42);
        b.finish(0, None, 1.5);
        write_metrics(&p, &b, &l).unwrap();
        write_metrics(&p, &b, &l).unwrap();
        let mut c = Receipt::start("check", vec![]);
        c.checks.push(super::super::receipt::CheckRun::new(
            "structure",
            false,
            None,
        ));
        c.verification = Some(super::super::receipt::VerificationNote {
            latest_snapshot_time: Some("2026-01-02T00:00:00Z".into()),
            ..Default::default()
        });
        c.finish(1, Some("damage".into()), 0.2);
        write_metrics(&p, &c, &l).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let s = read_samples(&p);
        let get = |n: &str, cmd: &str| s[&(n.to_string(), labels(&l, cmd))];
        assert_eq!(get("cista_backup_success_total", "backup"), 2.0, "{text}");
        assert_eq!(get("cista_bytes_added", "backup"), 42.0);
        assert_eq!(get("cista_last_check_success", "check"), 0.0);
        assert_eq!(get("cista_failures_total", "check"), 1.0);
        assert_eq!(
            get("cista_latest_snapshot_timestamp_seconds", "check"),
            1_767_312_000.0
        );
        // Never verified: 0, so an alert on its age fires.
        assert_eq!(
            get("cista_latest_snapshot_verified_timestamp_seconds", "check"),
            0.0
        );
        assert!(text.contains("host=\"h\\\"1\""), "{text}");
        assert!(
            text.contains("# TYPE cista_backup_success_total counter"),
            "{text}"
        );
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<f64>().unwrap();
            assert!(line.starts_with("cista_") && line.contains('{'), "{line}");
        }
    }
}
