//! `cista unlock`.

use anyhow::Result;

use cista::commands::{self, UnlockOptions};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, remove_all: bool) -> Result<u8> {
    let repo = open(cli)?;
    let mut o = UnlockOptions::default();
    o.remove_all = remove_all;
    let r = commands::unlock(&repo, &o)?;
    if cli.json {
        print_json(&serde_json::json!({"message_type": "summary", "removed_locks": r.removed}))?;
    } else if !cli.quiet {
        println!("removed {} locks", r.removed);
    }
    Ok(0)
}
