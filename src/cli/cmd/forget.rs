//! `cista forget`, and `--prune` after it.

use std::collections::HashMap;

use anyhow::Result;

use cista::commands;
use cista::{Id, KeepPolicy, Snapshot};

use crate::cli::*;

/// `forget`: the library decides and removes (`commands::forget`); this renders restic's
/// output. A damaged snapshot named by id is removed too, and said so.
pub(crate) fn run(cli: &Cli, a: &ForgetArgs) -> Result<u8> {
    let mut opts = commands::ForgetOptions::default();
    opts.ids = a.ids.clone();
    opts.policy = KeepPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within,
        within_hourly: a.keep_within_hourly,
        within_daily: a.keep_within_daily,
        within_weekly: a.keep_within_weekly,
        within_monthly: a.keep_within_monthly,
        within_yearly: a.keep_within_yearly,
        tags: a.keep_tag.clone(),
    };
    opts.group_by = a.group_by.parse()?;
    opts.filter = a.filter.to_lib();
    opts.unsafe_allow_remove_all = a.unsafe_allow_remove_all;
    opts.dry_run = a.prune_args.dry_run;
    let repo = open(cli)?;
    let ex = exclusive_lock(cli, &repo)?;
    let r = commands::forget(&ex, &opts)?;
    outcome::note_counts([
        (
            "snapshots_removed",
            if r.dry_run { 0 } else { r.remove.len() as u64 },
        ),
        ("snapshots_to_remove", r.remove.len() as u64),
        ("damaged_removed", r.damaged.len() as u64),
    ]);
    if r.no_policy {
        if !cli.quiet {
            eprintln!("no policy was given: no snapshots will be removed");
        }
        return Ok(0);
    }
    if !cli.quiet {
        for (id, e) in &r.damaged {
            eprintln!("removing damaged snapshot {id}: {e}");
        }
    }
    if cli.json {
        if a.ids.is_empty() {
            let v: Vec<_> = r.groups.iter().map(group_json).collect();
            print_json(&v)?;
        } else {
            print_json(&serde_json::json!({"remove": r.remove}))?;
        }
    } else if !cli.quiet {
        for g in &r.groups {
            print_forget_group(g);
        }
    }
    if r.dry_run {
        if !cli.quiet && !cli.json {
            println!("dry run: would remove {} snapshots", r.remove.len());
        }
        return Ok(0);
    }
    if !cli.quiet && !cli.json {
        println!("removed {} snapshots", r.remove.len());
    }
    if a.prune && !r.remove.is_empty() {
        return super::prune::run_locked(cli, &ex, &a.prune_args);
    }
    Ok(0)
}

/// One group as restic's `forget --json` prints it: the group's host, paths and tags, the
/// snapshots kept and removed (whole snapshot objects), and why each kept one is kept.
fn group_json(g: &commands::ForgetGroup) -> serde_json::Value {
    let d = &g.decision;
    let snap = |id: &Id| {
        g.snapshots
            .iter()
            .find(|(i, _)| i == id)
            .map(|(i, s)| snapshot_json(i, s))
            .unwrap_or_else(|| serde_json::json!({"id": id}))
    };
    let remove: Vec<_> = d.remove.iter().map(snap).collect();
    serde_json::json!({
        "group_key": d.group,
        "host": d.group.host,
        "paths": d.group.paths,
        "tags": d.group.tags,
        "keep": d.keep.iter().map(|k| snap(&k.id)).collect::<Vec<_>>(),
        "remove": (!remove.is_empty()).then_some(remove),
        "reasons": d.keep.iter().map(|k| serde_json::json!({
            "snapshot": snap(&k.id),
            "time": k.time,
            "matches": k.reasons,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn print_forget_group(g: &commands::ForgetGroup) {
    let d = &g.decision;
    println!("snapshots for {}:", d.group);
    let reasons: HashMap<Id, Vec<String>> =
        d.keep.iter().map(|k| (k.id, k.reasons.clone())).collect();
    let kept: Vec<(Id, Snapshot)> = g
        .snapshots
        .iter()
        .filter(|(id, _)| reasons.contains_key(id))
        .cloned()
        .collect();
    let gone: Vec<(Id, Snapshot)> = g
        .snapshots
        .iter()
        .filter(|(id, _)| !reasons.contains_key(id))
        .cloned()
        .collect();
    println!("keep {} snapshots:", kept.len());
    print_snapshot_table(&kept, Some(&reasons));
    if !gone.is_empty() {
        println!("remove {} snapshots:", gone.len());
        print_snapshot_table(&gone, None);
    }
    println!();
}
