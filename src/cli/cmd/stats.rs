//! `cista stats`.

use anyhow::Result;

use cista::commands;

use crate::cli::*;

pub(crate) fn run(cli: &Cli, ids: &[String], mode: &str, filter: &Selection) -> Result<u8> {
    let m: commands::StatsMode = mode.parse()?;
    let repo = open(cli)?;
    let ix = indexed(cli, &repo)?;
    let snaps = commands::select_snapshots(&repo, ids, &filter.to_lib())?;
    let v = serde_json::to_value(commands::stats(&ix, &snaps, m)?)?;
    if cli.json {
        print_json(&v)?;
    } else {
        println!("stats in {mode} mode:");
        for (k, val) in v.as_object().expect("object") {
            let shown = match (k.as_str(), val.as_u64()) {
                ("total_size" | "total_uncompressed_size", Some(b)) => bytes(b),
                _ => val.to_string(),
            };
            println!("  {k}: {shown}");
        }
    }
    Ok(0)
}
