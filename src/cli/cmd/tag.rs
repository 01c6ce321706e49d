//! `cista tag`.

use anyhow::{bail, Result};

use cista::commands::{self, TagOptions};

use crate::cli::*;

pub(crate) fn run(
    cli: &Cli,
    ids: &[String],
    add: &[String],
    remove: &[String],
    set: &[String],
    filter: &Selection,
) -> Result<u8> {
    if add.is_empty() && remove.is_empty() && set.is_empty() {
        bail!("nothing to do: give --add, --remove or --set");
    }
    let repo = open(cli)?;
    let ex = exclusive_lock(cli, &repo)?;
    let targets = commands::select_snapshots(&repo, ids, &filter.to_lib())?;
    let mut opts = TagOptions::default();
    opts.add = add.to_vec();
    opts.remove = remove.to_vec();
    opts.set = (!set.is_empty()).then(|| set.to_vec());
    let changed = commands::tag(&ex, &targets, &opts)?.changed.len();
    outcome::note_counts([("changed_snapshots", changed as u64)]);
    if cli.json {
        print_json(&serde_json::json!({"message_type": "summary", "changed_snapshots": changed}))?;
    } else if !cli.quiet {
        println!("modified {changed} snapshots");
    }
    Ok(0)
}
