//! Output: JSON documents, tables, sizes and times, the `ls` lister.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;

use cista::{Id, Node, NodeKind, Snapshot};

use super::Cli;

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// A problem a command met and went on: `error: …` (or `warning:`, `note:`) on stderr, or
/// under `--json` restic's `{"message_type": "error", "error": {…}, "during": …, "item": …}`
/// line, with the typed problem's kind and object beside the message.
pub(crate) fn report_problem(cli: &Cli, level: &str, during: &str, p: &cista::Problem) {
    if cli.json {
        let v = serde_json::json!({
            "message_type": "error",
            "level": level,
            "error": {"message": p.message, "kind": p.kind, "object": p.object},
            "during": during,
            "item": p.path,
        });
        eprintln!("{v}");
    } else {
        eprintln!("{level}: {p}");
    }
}

/// The id of the verification record a check or drill stored, if it stored one.
pub(crate) fn record_id(r: &cista::Recorded) -> Option<String> {
    match r {
        cista::Recorded::Written(id) => Some(id.to_hex()),
        _ => None,
    }
}

/// Notes a check's or drill's record and freshness in the receipt (for the metrics), and
/// warns when the record could not be stored.
pub(crate) fn note_verification(
    cli: &Cli,
    during: &str,
    r: &cista::Recorded,
    f: Option<&cista::Freshness>,
) {
    if let cista::Recorded::Failed(p) = r {
        report_problem(cli, "warning", during, p);
    }
    let mut n = cista::commands::VerificationNote::default();
    n.record = record_id(r);
    if let Some(f) = f {
        n.latest_snapshot_id = f.latest_snapshot.as_ref().map(|(id, _)| id.to_hex());
        n.latest_snapshot_time = f.latest_snapshot.as_ref().map(|(_, t)| t.clone());
        n.latest_snapshot_verified_at = f.verified_at.clone();
    }
    super::outcome::note(|rec| rec.verification = Some(n));
}

pub(crate) fn snapshot_json(id: &Id, s: &Snapshot) -> serde_json::Value {
    let mut v = serde_json::to_value(s).expect("snapshot serializes");
    let o = v.as_object_mut().expect("object");
    o.insert("id".into(), id.to_hex().into());
    o.insert("short_id".into(), id.short().into());
    v
}

pub(crate) fn short_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|ts| {
            ts.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

pub(crate) fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = n as f64;
    let mut i = 0;
    while f >= 1024.0 && i < U.len() - 1 {
        f /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{f:.3} {}", U[i])
    }
}

/// Prints `ls` entries: a path per line, a long listing, or a JSON object per line.
pub(crate) struct Lister<'a, W: Write> {
    pub(crate) json: bool,
    pub(crate) long: bool,
    pub(crate) out: &'a mut W,
}

impl<W: Write> Lister<'_, W> {
    pub(crate) fn print(&mut self, path: &str, n: &Node) -> std::io::Result<()> {
        if self.json {
            let v = serde_json::json!({
                "struct_type": "node",
                "name": n.name_lossy(),
                "type": n.kind.name(),
                "path": path,
                "uid": n.uid,
                "gid": n.gid,
                "user": n.user,
                "group": n.group,
                "size": n.size,
                "mode": n.mode,
                "mtime": ns_time(n.mtime_ns),
                "inode": n.inode,
                "links": n.links,
                "link_target": String::from_utf8_lossy(&n.link_target),
                "digest": n.digest,
            });
            serde_json::to_writer(&mut *self.out, &v)?;
            writeln!(self.out)?;
        } else if self.long {
            let k = match n.kind {
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
                NodeKind::Fifo => 'p',
                NodeKind::Socket => 's',
                NodeKind::CharDevice => 'c',
                NodeKind::BlockDevice => 'b',
                NodeKind::File => '-',
            };
            let mut mode = String::new();
            for (i, c) in "rwxrwxrwx".chars().enumerate() {
                mode.push(if n.mode & (0o400 >> i) != 0 { c } else { '-' });
            }
            let target = if n.kind == NodeKind::Symlink {
                format!(" -> {}", String::from_utf8_lossy(&n.link_target))
            } else {
                String::new()
            };
            writeln!(
                self.out,
                "{k}{mode} {:>8} {:>8} {:>12} {} {path}{target}",
                if n.user.is_empty() {
                    n.uid.to_string()
                } else {
                    n.user.clone()
                },
                if n.group.is_empty() {
                    n.gid.to_string()
                } else {
                    n.group.clone()
                },
                n.size,
                short_time(&ns_time(n.mtime_ns)),
            )?;
        } else {
            writeln!(self.out, "{path}")?;
        }
        Ok(())
    }
}

pub(crate) fn ns_time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub(crate) fn print_snapshot_table(
    snaps: &[(Id, Snapshot)],
    reasons: Option<&HashMap<Id, Vec<String>>>,
) {
    let r = reasons.is_some();
    println!(
        "{:<10} {:<20} {:<14} {:<14}{} Paths",
        "ID",
        "Time",
        "Host",
        "Tags",
        if r {
            format!(" {:<28}", "Reasons")
        } else {
            String::new()
        }
    );
    println!("{}", "-".repeat(if r { 110 } else { 80 }));
    for (id, s) in snaps {
        let why = reasons
            .and_then(|m| m.get(id))
            .map(|v| format!(" {:<28}", v.join(", ")))
            .unwrap_or_default();
        println!(
            "{:<10} {:<20} {:<14} {:<14}{} {}",
            id.short(),
            short_time(&s.time),
            s.hostname,
            s.tags.join(","),
            why,
            s.paths.join(" ")
        );
    }
    println!("{}", "-".repeat(if r { 110 } else { 80 }));
    println!("{} snapshots", snaps.len());
}
