//! `cista diff FROM TO`: restic's lines (`+    /path`) and statistics; `--json` restic's
//! `change` lines and one `statistics` line.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use cista::commands::{self, DiffOptions, DiffStat};

use crate::cli::*;

pub(crate) fn run(
    cli: &Cli,
    from: &str,
    to: &str,
    metadata: bool,
    filter: &Selection,
) -> Result<u8> {
    let repo = open(cli)?;
    let l = lock(cli, &repo)?;
    let f = filter.to_lib();
    let a = commands::resolve_snapshot_path(&repo, from, &f)?;
    let b = commands::resolve_snapshot_path(&repo, to, &f)?;
    let ix = l.indexed()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !cli.json && !cli.quiet {
        writeln!(
            out,
            "comparing snapshot {} to {}:\n",
            a.id.short(),
            b.id.short()
        )?;
    }
    let mut o = DiffOptions::default();
    o.metadata = metadata;
    let r = commands::diff(&ix, &a, &b, &o, &mut |c| {
        if cli.json {
            let v = json!({"message_type": "change", "path": c.path, "modifier": c.modifier});
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)
        } else if !cli.quiet {
            writeln!(out, "{:<5}{}", c.modifier, c.path)
        } else {
            Ok(())
        }
    })?;
    if cli.json {
        let v = json!({
            "message_type": "statistics",
            "source_snapshot": from,
            "target_snapshot": to,
            "changed_files": r.changed_files,
            "added": r.added,
            "removed": r.removed,
            "trees_loaded": r.trees_loaded,
        });
        serde_json::to_writer(&mut out, &v)?;
        writeln!(out)?;
    } else {
        if !cli.quiet {
            writeln!(out)?;
        }
        let (ad, rm): (&DiffStat, &DiffStat) = (&r.added, &r.removed);
        let row = |what: &str, a: u64, b: u64| format!("{what:<12} {a:>5} new, {b:>5} removed");
        writeln!(
            out,
            "{}, {:>5} changed",
            row("Files:", ad.files, rm.files),
            r.changed_files
        )?;
        writeln!(out, "{}", row("Dirs:", ad.dirs, rm.dirs))?;
        writeln!(out, "{}", row("Others:", ad.others, rm.others))?;
        writeln!(out, "{}", row("Data Blobs:", ad.data_blobs, rm.data_blobs))?;
        writeln!(out, "{}", row("Tree Blobs:", ad.tree_blobs, rm.tree_blobs))?;
        writeln!(out, "  Added:   {}", bytes(ad.bytes))?;
        writeln!(out, "  Removed: {}", bytes(rm.bytes))?;
        if cli.verbose > 0 {
            writeln!(out, "  Trees read: {}", r.trees_loaded)?;
        }
    }
    out.flush()?;
    Ok(0)
}
