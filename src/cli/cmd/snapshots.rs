//! `cista snapshots`.

use anyhow::Result;

use cista::commands::{self, SnapshotsOptions};

use crate::cli::*;

pub(crate) fn run(
    cli: &Cli,
    filter: &Selection,
    group_by: Option<&str>,
    latest: Option<usize>,
) -> Result<u8> {
    let repo = open(cli)?;
    let mut o = SnapshotsOptions::default();
    o.filter = filter.to_lib();
    o.group_by = group_by.map(str::parse).transpose()?;
    o.latest = latest;
    o.verified = cli.json;
    let r = commands::snapshots(&repo, &o)?;
    let grouped = o.group_by.is_some();
    if cli.json {
        let list = |v: &[(cista::Id, cista::Snapshot)]| -> Vec<_> {
            v.iter()
                .map(|(id, s)| {
                    let mut j = snapshot_json(id, s);
                    j["verified"] = serde_json::to_value(r.verified.get(id)).expect("serializes");
                    j
                })
                .collect()
        };
        if grouped {
            let v: Vec<_> = r
                .groups
                .iter()
                .map(|g| serde_json::json!({"group_key": g.key, "snapshots": list(&g.snapshots)}))
                .collect();
            print_json(&v)?;
        } else {
            print_json(&list(&r.groups[0].snapshots))?;
        }
        return Ok(0);
    }
    for g in &r.groups {
        match &g.key {
            Some(k) => {
                println!("snapshots for {k}:");
                print_snapshot_table(&g.snapshots, None);
                println!();
            }
            None => print_snapshot_table(&g.snapshots, None),
        }
    }
    Ok(0)
}
