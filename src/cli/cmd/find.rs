//! `cista find PATTERN...`: restic's output, a path (or long line) per match under a line
//! naming each snapshot; `--json` one array of `{"matches", "hits", "snapshot"}`.

use std::io::Write;

use anyhow::Result;
use serde_json::{json, Value};

use cista::commands::{self, FindOptions, FoundObject};
use cista::{BlobType, Id, Node, NodeKind, Snapshot};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, a: &FindArgs) -> Result<u8> {
    let repo = open(cli)?;
    let l = lock(cli, &repo)?;
    let mut snaps = commands::select_snapshots(&repo, &a.snapshot, &a.filter.to_lib())?;
    // restic's order: newest first, oldest first with --reverse.
    snaps.sort_by_cached_key(|(_, s)| s.timestamp().ok());
    if !a.reverse {
        snaps.reverse();
    }
    let ix = l.indexed()?;
    if a.blob || a.tree {
        let kind = if a.tree {
            BlobType::Tree
        } else {
            BlobType::Data
        };
        return ids(cli, &ix, &snaps, kind, &a.patterns);
    }
    let mut o = FindOptions::default();
    o.patterns = a.patterns.clone();
    o.ignore_case = a.ignore_case;
    o.oldest = a.oldest;
    o.newest = a.newest;
    let time = |id: &Id| {
        snaps
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, s)| s.time.clone())
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Under --json the matches of one snapshot are gathered, then written as one object.
    let mut groups: Vec<Value> = Vec::new();
    let mut current: Option<(Id, Vec<Value>)> = None;
    let flush = |current: &mut Option<(Id, Vec<Value>)>, groups: &mut Vec<Value>| {
        if let Some((id, matches)) = current.take() {
            let hits = matches.len();
            groups.push(json!({"matches": matches, "hits": hits, "snapshot": id.to_hex()}));
        }
    };
    let mut headers = 0;
    let mut lister = Lister {
        json: false,
        long: a.long,
        out: &mut out,
    };
    commands::find(&ix, &snaps, &o, &mut |id, path, n| {
        let first = current.as_ref().is_none_or(|(c, _)| c != id);
        if first {
            flush(&mut current, &mut groups);
            current = Some((*id, Vec::new()));
            if !cli.json && !cli.quiet {
                let t = time(id).map(|t| short_time(&t)).unwrap_or_default();
                if headers > 0 {
                    writeln!(lister.out)?;
                }
                headers += 1;
                writeln!(
                    lister.out,
                    "Found matching entries in snapshot {} from {t}",
                    id.short()
                )?;
            }
        }
        if cli.json {
            current
                .as_mut()
                .expect("set above")
                .1
                .push(match_json(path, n));
            Ok(())
        } else {
            lister.print(path, n)
        }
    })?;
    flush(&mut current, &mut groups);
    if cli.json {
        serde_json::to_writer(&mut out, &groups)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(0)
}

/// `find --blob/--tree`: restic's lines, or one array of restic's blob objects.
fn ids(
    cli: &Cli,
    ix: &commands::Indexed,
    snaps: &[(Id, Snapshot)],
    kind: BlobType,
    prefixes: &[String],
) -> Result<u8> {
    let time = |id: &Id| {
        snaps
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, s)| s.time.clone())
            .unwrap_or_default()
    };
    let mut found: Vec<FoundObject> = Vec::new();
    commands::find_ids(ix, snaps, kind, prefixes, &mut |o| {
        found.push(o.clone());
        Ok(())
    })?;
    if cli.json {
        let v: Vec<Value> = found
            .iter()
            .map(|o| {
                json!({
                    "object_type": if o.kind == BlobType::Tree { "tree" } else { "blob" },
                    "id": o.id.to_hex(),
                    "path": o.path,
                    "parent_tree": o.parent_tree.map(|t| t.to_hex()),
                    "snapshot": o.snapshot.to_hex(),
                    "time": time(&o.snapshot),
                })
            })
            .collect();
        print_json(&v)?;
        return Ok(0);
    }
    for o in &found {
        println!("Found {} {}", kind.name(), o.id);
        match (kind, o.parent_tree) {
            (BlobType::Data, Some(t)) => println!(" ... in file {}\n     (tree {t})", o.path),
            _ => println!(" ... path {}", o.path),
        }
        let t = short_time(&time(&o.snapshot));
        println!(" ... in snapshot {} ({t})", o.snapshot.short());
    }
    Ok(0)
}

/// restic's match object: the node's fields beside its path and permissions.
fn match_json(path: &str, n: &Node) -> Value {
    json!({
        "path": path,
        "permissions": permissions(n),
        "type": n.kind.name(),
        "mode": n.mode,
        "mtime": ns_time(n.mtime_ns),
        "atime": (n.atime_ns != 0).then(|| ns_time(n.atime_ns)),
        "ctime": ns_time(n.ctime_ns),
        "uid": n.uid,
        "gid": n.gid,
        "user": n.user,
        "group": n.group,
        "inode": n.inode,
        "device_id": n.rdev,
        "size": n.size,
        "links": n.links,
        "link_target": String::from_utf8_lossy(&n.link_target),
        "digest": n.digest,
    })
}

/// The mode as Go's `FileMode.String` shows it (restic's `permissions`): type letters, then
/// `rwx` triples.
fn permissions(n: &Node) -> String {
    let mut s = String::new();
    s.push_str(match n.kind {
        NodeKind::Dir => "d",
        NodeKind::Symlink => "L",
        NodeKind::BlockDevice => "D",
        NodeKind::CharDevice => "Dc",
        NodeKind::Fifo => "p",
        NodeKind::Socket => "S",
        NodeKind::File => "",
    });
    for (bit, c) in [(0o4000, 'u'), (0o2000, 'g'), (0o1000, 't')] {
        if n.mode & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if n.mode & (0o400 >> i) != 0 { c } else { '-' });
    }
    s
}
