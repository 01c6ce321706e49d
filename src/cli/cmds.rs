//! Subcommands with enough rendering to deserve their own function.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{anyhow, bail, Result};

use cista::backend::FileType;
use cista::backup::{self, BackupOptions, Source};
use cista::commands;
use cista::format::{BlobType, FileKind, IndexFile, Snapshot, Tree};
use cista::index::Index;
use cista::lock::LockGuard;
use cista::policy::KeepPolicy;
use cista::prune::{self, PruneOptions};
use cista::tree::load_tree;
use cista::{Id, Repository, SnapshotFilter};

use super::*;

pub(crate) fn backup(cli: &Cli, a: &BackupArgs) -> Result<u8> {
    let source = if a.stdin_from_command {
        if a.paths.is_empty() {
            bail!("--stdin-from-command needs a command after --");
        }
        Source::Command {
            name: a.stdin_filename.clone(),
            argv: a
                .paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        }
    } else if a.stdin {
        if !a.paths.is_empty() {
            bail!("--stdin takes no paths");
        }
        Source::Reader {
            name: a.stdin_filename.clone(),
            reader: Box::new(std::io::stdin()),
        }
    } else {
        if a.paths.is_empty() {
            bail!("nothing to back up: give paths, --stdin or --stdin-from-command");
        }
        Source::Paths(a.paths.clone())
    };
    let repo = open(cli)?;
    let l = lock(cli, &repo, false)?;
    let index = Index::load(&repo)?;
    let tags = commands::split_tags(&a.tag);
    let opts = BackupOptions {
        tags,
        host: a.host.clone(),
        excludes: a.exclude.clone(),
        exclude_files: a.exclude_file.clone(),
        one_file_system: a.one_file_system,
        time: a.time.clone(),
        parent: a.parent.clone(),
        force: a.force,
        ignore_inode: a.ignore_inode,
        ignore_ctime: a.ignore_ctime,
        with_atime: a.with_atime,
        dry_run: a.dry_run,
    };
    let res = backup::backup(&repo, &index, source, &opts, l.as_ref())?;
    for w in &res.warnings {
        eprintln!("error: {w}");
    }
    // Repository damage the backup worked around: the snapshot is complete, so no exit 3.
    for n in &res.notices {
        eprintln!("warning: {n}");
    }
    let s = &res.summary;
    if cli.json {
        print_json(&serde_json::json!({
            "message_type": "summary",
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unmodified": s.files_unmodified,
            "dirs_new": s.dirs_new,
            "dirs_changed": s.dirs_changed,
            "dirs_unmodified": s.dirs_unmodified,
            "data_blobs": s.data_blobs,
            "tree_blobs": s.tree_blobs,
            "data_added": s.data_added,
            "data_added_packed": s.data_added_packed,
            "total_files_processed": s.total_files_processed,
            "total_bytes_processed": s.total_bytes_processed,
            "total_duration": s.duration_secs,
            "snapshot_id": res.snapshot_id,
            "parent": res.snapshot.parent,
            "errors": res.warnings.len(),
            "dry_run": a.dry_run,
            "requests": store_requests(),
        }))?;
    } else if !cli.quiet {
        println!(
            "Files: {} new, {} changed, {} unmodified",
            s.files_new, s.files_changed, s.files_unmodified
        );
        println!(
            "Dirs:  {} new, {} changed, {} unmodified",
            s.dirs_new, s.dirs_changed, s.dirs_unmodified
        );
        println!(
            "Added to the repository: {} ({} stored)",
            bytes(s.data_added),
            bytes(s.data_added_packed)
        );
        println!(
            "processed {} files, {} in {:.2}s",
            s.total_files_processed,
            bytes(s.total_bytes_processed),
            s.duration_secs
        );
        match res.snapshot_id {
            Some(id) => println!("snapshot {} saved", id.short()),
            None => println!("dry run: no snapshot saved"),
        }
    }
    if !res.warnings.is_empty() {
        eprintln!(
            "warning: {} source files could not be read; the snapshot is incomplete",
            res.warnings.len()
        );
        return Ok(EXIT_PARTIAL);
    }
    Ok(0)
}

pub(crate) fn cat(cli: &Cli, kind: &str, id: Option<&str>) -> Result<u8> {
    let repo = open(cli)?;
    let need = || id.ok_or_else(|| anyhow!("cat {kind} needs an id"));
    let mut out = std::io::stdout().lock();
    match kind {
        "config" => {
            serde_json::to_writer_pretty(&mut out, repo.config())?;
        }
        "key" => {
            let id = repo.find_id(FileType::Key, need()?)?;
            out.write_all(&repo.backend().read(FileType::Key, &id.to_hex())?)?;
            return Ok(0);
        }
        "snapshot" => {
            let (id, s) = repo.resolve_snapshot(need()?, &SnapshotFilter::default())?;
            serde_json::to_writer_pretty(&mut out, &snapshot_json(&id, &s))?;
        }
        "index" => {
            let id = repo.find_id(FileType::Index, need()?)?;
            let raw = repo.load_file(FileKind::Index, FileType::Index, &id)?;
            let f = IndexFile::decode(&raw).map_err(|e| anyhow!("index {id}: {e}"))?;
            let v = serde_json::json!({
                "supersedes": f.supersedes,
                "packs": f.packs.iter().map(|p| serde_json::json!({
                    "id": p.id,
                    "blobs": p.blobs.iter().map(|b| serde_json::json!({
                        "type": b.ty.name(), "id": b.id, "offset": b.offset,
                        "length": b.length, "uncompressed_length": b.raw_len,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            serde_json::to_writer_pretty(&mut out, &v)?;
        }
        "tree" => {
            let id: Id = need()?.parse()?;
            let index = Index::load(&repo)?;
            let t: Tree = load_tree(&repo, &index, &id)?;
            serde_json::to_writer_pretty(&mut out, &t)?;
        }
        "blob" => {
            let id: Id = need()?.parse()?;
            let index = Index::load(&repo)?;
            let ty = if index.contains(BlobType::Data, &id) {
                BlobType::Data
            } else {
                BlobType::Tree
            };
            out.write_all(&cista::pack::read_blob(&repo, &index, ty, &id)?)?;
            return Ok(0);
        }
        "pack" => {
            let id = repo.find_id(FileType::Pack, need()?)?;
            let bytes = repo.backend().read(FileType::Pack, &id.to_hex())?;
            let entries = cista::pack::parse_pack(&repo, &id, &bytes)?;
            let v: Vec<_> = entries
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "type": b.ty.name(), "id": b.id, "offset": b.offset,
                        "length": b.length, "uncompressed_length": b.raw_len,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &v)?;
        }
        other => {
            bail!("cannot cat {other:?}: use config, key, snapshot, index, tree, blob or pack")
        }
    }
    writeln!(out)?;
    Ok(0)
}

/// The snapshots named by `ids` (ids, prefixes or `latest`), or all matching `filter`.
pub(crate) fn select_snapshots(
    repo: &Repository,
    ids: &[String],
    filter: &Filter,
) -> Result<Vec<(Id, Snapshot)>> {
    let f = filter.to_lib();
    if ids.is_empty() {
        return Ok(repo
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| f.matches(s))
            .collect());
    }
    let mut out = Vec::new();
    for i in ids {
        let r = repo.resolve_snapshot(i, &f)?;
        if !out.iter().any(|(id, _): &(Id, Snapshot)| *id == r.0) {
            out.push(r);
        }
    }
    Ok(out)
}

/// `cista cache`: restic's command of the same name. Needs no repository.
pub(crate) fn cache_cmd(cli: &Cli, cleanup: bool, max_age_days: u64, no_size: bool) -> Result<u8> {
    let base = cache_base(cli)
        .ok_or_else(|| anyhow!("no cache directory: set CISTA_CACHE_DIR or --cache-dir"))?;
    let max_age = std::time::Duration::from_secs(max_age_days.saturating_mul(86_400));
    if cleanup {
        let removed = cista::backend::remove_old_caches(&base, max_age)?;
        if cli.json {
            print_json(&serde_json::json!({"message_type": "cache_cleanup", "removed": removed}))?;
        } else if !cli.quiet {
            for c in &removed {
                println!(
                    "removed {} (last used {} days ago)",
                    c.path.display(),
                    c.age().as_secs() / 86_400
                );
            }
            println!(
                "removed {} old cache(s) from {}",
                removed.len(),
                base.display()
            );
        }
        return Ok(0);
    }
    let caches = cista::backend::list_caches(&base, !no_size)?;
    if cli.json {
        return print_json(&caches).map(|_| 0);
    }
    println!(
        "{:<12} {:>10} {:>4} {:>12}",
        "repo id", "last used", "old", "size"
    );
    for c in &caches {
        let days = c.age().as_secs() / 86_400;
        let size = c.size.map_or(String::new(), |b| {
            format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
        });
        println!(
            "{:<12} {:>8} d {:>4} {:>12}",
            &c.id[..8],
            days,
            if c.age() > max_age { "yes" } else { "" },
            size
        );
    }
    println!("{} cache(s) in {}", caches.len(), base.display());
    Ok(0)
}

/// `forget`: the library decides and removes (`commands::forget`); this renders restic's
/// output. A damaged snapshot named by id is removed too, and said so.
pub(crate) fn forget_cmd(cli: &Cli, a: &ForgetArgs) -> Result<u8> {
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
    let l = exclusive_lock(cli, &repo)?;
    let r = commands::forget(&repo, &opts, &l)?;
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
        let v: Vec<_> = r
            .groups
            .iter()
            .map(|g| {
                let d = &g.decision;
                serde_json::json!({
                    "group_key": d.group,
                    "keep": d.keep.iter().map(|k| k.id).collect::<Vec<_>>(),
                    "remove": d.remove,
                    "reasons": d.keep.iter().map(|k| serde_json::json!({"snapshot": k.id, "time": k.time, "matches": k.reasons})).collect::<Vec<_>>(),
                })
            })
            .collect();
        if a.ids.is_empty() {
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
        return run_prune(cli, &repo, &a.prune_args, &l);
    }
    Ok(0)
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

pub(crate) fn run_prune(cli: &Cli, repo: &Repository, a: &PruneArgs, l: &LockGuard) -> Result<u8> {
    let opts = PruneOptions {
        dry_run: a.dry_run,
        max_unused: a.max_unused.parse()?,
        max_repack_size: a
            .max_repack_size
            .as_deref()
            .map(cista::util::parse_size)
            .transpose()?,
        repack_uncompressed: a.repack_uncompressed,
    };
    let r = prune::prune(repo, &opts, Some(l))?;
    if cli.json {
        let mut v = serde_json::to_value(&r)?;
        v["message_type"] = "summary".into();
        print_json(&v)?;
    } else if !cli.quiet {
        println!(
            "{}snapshots: {}",
            if r.dry_run { "dry run; " } else { "" },
            r.snapshots
        );
        println!("used:   {} blobs, {}", r.blobs_used, bytes(r.bytes_used));
        println!(
            "unused: {} blobs, {}",
            r.blobs_unused,
            bytes(r.bytes_unused)
        );
        println!(
            "packs kept:     {:>6}, {}",
            r.packs_kept,
            bytes(r.bytes_kept)
        );
        println!(
            "packs repacked: {:>6}, {}",
            r.packs_repacked,
            bytes(r.bytes_repacked)
        );
        println!(
            "packs to delete:{:>6}, {} ({} not in any index)",
            r.packs_deleted + r.packs_unindexed_deleted,
            bytes(r.bytes_deleted),
            r.packs_unindexed_deleted
        );
        println!("unused space left: {}", bytes(r.unused_after));
        if !r.dry_run {
            println!(
                "wrote {} packs ({}) and {} index files; deleted {} packs ({}) and {} index files",
                r.packs_written,
                bytes(r.bytes_written),
                r.index_files_written,
                r.packs_removed,
                bytes(r.bytes_removed),
                r.index_files_deleted
            );
        }
        if !r.retained.is_empty() {
            let modes: std::collections::BTreeSet<&str> = r
                .retained
                .iter()
                .map(|o| o.retention.mode.as_str())
                .collect();
            let latest = r.retained.iter().filter_map(|o| o.retention.until).max();
            println!(
                "retained by the store ({}): {} objects, {}, held until {}; left in place \
                 (no longer needed), a prune after that date deletes them",
                modes.into_iter().collect::<Vec<_>>().join(", "),
                r.retained.len(),
                bytes(r.bytes_retained),
                latest.map_or("the hold is lifted".to_string(), |t| t.to_string()),
            );
            for o in r.retained.iter().filter(|_| cli.verbose > 0) {
                println!(
                    "  retained: {} ({}, {})",
                    o.path,
                    o.retention.mode,
                    o.retention
                        .until
                        .map_or("no end".to_string(), |t| t.to_string())
                );
            }
        }
    }
    if !r.delete_failed.is_empty() {
        for e in &r.delete_failed {
            eprintln!("warning: {e}");
        }
        eprintln!(
            "prune finished, but {} objects could not be deleted; the repository is consistent \
             without them and the next prune retries",
            r.delete_failed.len()
        );
        return Ok(1);
    }
    Ok(0)
}

pub(crate) fn config_cmd(cli: &Cli, key: Option<&str>, value: Option<&str>) -> Result<u8> {
    let mut repo = open(cli)?;
    if let Some(key) = key {
        let on = match value {
            Some("on" | "true" | "yes" | "1") => true,
            Some("off" | "false" | "no" | "0") => false,
            Some(v) => bail!("{key}: expected on or off, not {v:?}"),
            None => bail!("{key}: give a value (on or off)"),
        };
        match key {
            "append-only" => {
                if cli.append_only && !on {
                    bail!("append-only mode: a client run with --append-only cannot lift the repository's setting");
                }
                // Settings change under an exclusive lock, so no running command sees two.
                let _l = if repo.config().append_only == on {
                    None
                } else {
                    lock(cli, &repo, true)?
                };
                if repo.config().append_only != on {
                    repo.set_append_only(on)?;
                }
            }
            other => bail!("unknown setting {other:?} (settings: append-only)"),
        }
    }
    let c = repo.config();
    if cli.json {
        print_json(&serde_json::json!({
            "id": c.id,
            "version": c.version,
            "chunker": c.chunker,
            "pack_size": c.pack_size,
            "compression_level": c.compression_level,
            "large_blob_level": c.blob_level(cista::format::LARGE_BLOB),
            "append_only": c.append_only,
        }))?;
    } else if !cli.quiet {
        println!("repository {}", c.id);
        println!("format version     {}", c.version);
        println!(
            "chunk sizes        min {} / avg {} / max {}",
            bytes(c.chunker.min as u64),
            bytes(c.chunker.avg as u64),
            bytes(c.chunker.max as u64)
        );
        println!("pack size          {}", bytes(c.pack_size as u64));
        println!(
            "compression level  {} (blobs from {}: {})",
            c.compression_level,
            bytes(cista::format::LARGE_BLOB as u64),
            c.blob_level(cista::format::LARGE_BLOB)
        );
        println!(
            "append-only        {}",
            if c.append_only { "on" } else { "off" }
        );
    }
    Ok(0)
}

pub(crate) fn stats_cmd(cli: &Cli, ids: &[String], mode: &str, filter: &Filter) -> Result<u8> {
    let m: commands::StatsMode = mode.parse()?;
    let repo = open(cli)?;
    let _l = lock(cli, &repo, false)?;
    let snaps = select_snapshots(&repo, ids, filter)?;
    let index = Index::load(&repo)?;
    let v = serde_json::to_value(commands::stats(&repo, &index, &snaps, m)?)?;
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
