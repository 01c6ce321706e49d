//! `cista manifest SNAPSHOT [PATH]`: `b3sum` lines (`<hex>  <path>`), escaped as b3sum
//! escapes them; `--json` a `{"path", "digest", "size"}` line per file and a summary.

use std::io::Write;

use anyhow::{bail, Result};
use serde_json::json;

use cista::commands::{self, ManifestEntry};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, snapshot: &str, path: Option<&str>, filter: &Selection) -> Result<u8> {
    let repo = open(cli)?;
    let l = lock(cli, &repo)?;
    let sp = commands::resolve_snapshot_path(&repo, snapshot, &filter.to_lib())?;
    let path = match (path, sp.path.as_str()) {
        (Some(_), p) if !p.is_empty() => {
            bail!("give the path as SNAPSHOT:PATH or as PATH, not both")
        }
        (Some(p), _) => p.to_string(),
        (None, p) => p.to_string(),
    };
    let ix = l.indexed()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let r = commands::manifest(&ix, &sp.snapshot, &path, &mut |e| {
        if cli.json {
            let v = json!({"path": e.path, "digest": e.digest.to_hex(), "size": e.size});
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)
        } else {
            writeln!(out, "{}", b3sum_line(e))
        }
    })?;
    if cli.json {
        let v = json!({
            "message_type": "summary",
            "snapshot_id": sp.id.to_hex(),
            "files": r.files,
            "bytes": r.bytes,
            "digests_computed": r.computed,
            "lossy_paths": r.lossy,
        });
        serde_json::to_writer(&mut out, &v)?;
        writeln!(out)?;
    }
    out.flush()?;
    if r.lossy > 0 && !cli.quiet {
        eprintln!(
            "warning: {} paths are not UTF-8 and are shown with U+FFFD; `b3sum -c` refuses those lines",
            r.lossy
        );
    }
    if r.computed > 0 && cli.verbose > 0 {
        eprintln!(
            "{} digests computed from the data (the snapshot recorded none)",
            r.computed
        );
    }
    Ok(0)
}

/// One line as `b3sum` writes it: a path holding `\`, a newline or a carriage return is
/// escaped (`\\`, `\n`, `\r`) and its line starts with `\`.
fn b3sum_line(e: &ManifestEntry) -> String {
    let p = &e.path;
    if p.contains(['\\', '\n', '\r']) {
        let esc = p
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        format!("\\{}  {esc}", e.digest.to_hex())
    } else {
        format!("{}  {p}", e.digest.to_hex())
    }
}
