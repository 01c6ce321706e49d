//! Dispatch: each subcommand parsed, run, rendered.

use std::io::Write;

use anyhow::{bail, Result};

use cista::check::{self, CheckOptions, Subset};
use cista::commands;
use cista::format::{NodeKind, Snapshot};
use cista::index::Index;
use cista::lock;
use cista::policy;
use cista::restore::{self, RestoreOptions};
use cista::tree::find_node;
use cista::{Id, InitOptions, Repository};

use super::*;

pub(crate) fn run(cli: &Cli) -> Result<u8> {
    match &cli.cmd {
        Cmd::Init { pack_size } => {
            let be = backend(cli)?;
            let pw = password(cli, true)?;
            let opts = InitOptions {
                // --append-only (or CISTA_APPEND_ONLY) at init makes it the repository's setting.
                append_only: cli.append_only,
                pack_size: *pack_size,
                ..Default::default()
            };
            let repo = Repository::init(be.clone(), &pw, opts)?;
            if cli.json {
                print_json(&serde_json::json!({
                    "message_type": "initialized",
                    "id": repo.config().id,
                    "repository": be.location(),
                }))?;
            } else if !cli.quiet {
                println!(
                    "created cista repository {} at {}",
                    repo.config().id.short(),
                    be.location()
                );
                println!("Keep the password safe: without it the data cannot be recovered.");
            }
            Ok(0)
        }
        Cmd::Backup(a) => backup(cli, a),
        Cmd::Snapshots { filter, group_by } => {
            let repo = open(cli)?;
            let f = filter.to_lib();
            let snaps: Vec<(Id, Snapshot)> = repo
                .snapshots()?
                .into_iter()
                .filter(|(_, s)| f.matches(s))
                .collect();
            match group_by {
                None if cli.json => {
                    let v: Vec<_> = snaps.iter().map(|(id, s)| snapshot_json(id, s)).collect();
                    print_json(&v)?;
                }
                None => print_snapshot_table(&snaps, None),
                Some(g) => {
                    let groups = policy::group(snaps, g.parse()?);
                    if cli.json {
                        let v: Vec<_> = groups
                            .iter()
                            .map(|(k, v)| {
                                serde_json::json!({
                                    "group_key": k,
                                    "snapshots": v.iter().map(|(id, s)| snapshot_json(id, s)).collect::<Vec<_>>(),
                                })
                            })
                            .collect();
                        print_json(&v)?;
                    } else {
                        for (k, v) in &groups {
                            println!("snapshots for {k}:");
                            print_snapshot_table(v, None);
                            println!();
                        }
                    }
                }
            }
            Ok(0)
        }
        Cmd::Forget(a) => forget_cmd(cli, a),
        Cmd::Config { key, value } => config_cmd(cli, key.as_deref(), value.as_deref()),
        Cmd::Prune(a) => {
            let repo = open(cli)?;
            let l = exclusive_lock(cli, &repo)?;
            run_prune(cli, &repo, a, &l)
        }
        Cmd::Tag {
            ids,
            add,
            remove,
            set,
            filter,
        } => {
            if add.is_empty() && remove.is_empty() && set.is_empty() {
                bail!("nothing to do: give --add, --remove or --set");
            }
            let repo = open(cli)?;
            let l = exclusive_lock(cli, &repo)?;
            let targets = select_snapshots(&repo, ids, filter)?;
            let mut opts = commands::TagOptions::default();
            opts.add = add.clone();
            opts.remove = remove.clone();
            opts.set = (!set.is_empty()).then(|| set.clone());
            let changed = commands::tag(&repo, &targets, &opts, &l)?.changed.len();
            if cli.json {
                print_json(
                    &serde_json::json!({"message_type": "summary", "changed_snapshots": changed}),
                )?;
            } else if !cli.quiet {
                println!("modified {changed} snapshots");
            }
            Ok(0)
        }
        Cmd::Stats { ids, mode, filter } => stats_cmd(cli, ids, mode, filter),
        Cmd::Copy {
            ids,
            from_repo,
            from_password_file,
            from_password_command,
            from_insecure_no_password,
            from_option,
            filter,
        } => {
            let src_cli = Cli {
                repo: Some(from_repo.clone()),
                option: from_option.clone(),
                password_file: from_password_file.clone(),
                password_command: from_password_command.clone(),
                insecure_no_password: *from_insecure_no_password,
                json: cli.json,
                quiet: cli.quiet,
                verbose: cli.verbose,
                no_lock: cli.no_lock,
                cache_dir: cli.cache_dir.clone(),
                key_hint: None,
                no_cache: cli.no_cache,
                append_only: true,
                retry_lock: cli.retry_lock,
                limit_upload: None,
                limit_download: cli.limit_download,
                cmd: Cmd::Unlock { remove_all: false },
            };
            let be = backend(&src_cli)?;
            let pw = password_with(&src_cli, false, "CISTA_FROM_PASSWORD")?;
            let src = Repository::open(be, &pw)?;
            // Both passwords before the first lock: a prompt interrupted by a signal would
            // leave the terminal without echo.
            let dst = open(cli)?;
            let _sl = lock(cli, &src, false)?;
            let dl = lock(cli, &dst, false)?;
            let snaps = select_snapshots(&src, ids, filter)?;
            let (quiet, json, verbose) = (cli.quiet, cli.json, cli.verbose);
            let report =
                commands::copy(&dst, &src, &snaps, dl.as_ref(), &mut |id, s, c| match c {
                    commands::Copied::As(new) if !quiet && !json => println!(
                        "snapshot {} of {} copied as {}",
                        id.short(),
                        short_time(&s.time),
                        new.short()
                    ),
                    commands::Copied::Present if verbose > 0 => {
                        println!("snapshot {} is already in the destination", id.short())
                    }
                    _ => {}
                })?;
            let (copied, skipped) = (report.copied(), report.skipped());
            if cli.json {
                print_json(
                    &serde_json::json!({"message_type": "summary", "copied": copied, "skipped": skipped}),
                )?;
            } else if !cli.quiet {
                println!("copied {copied} snapshots, {skipped} already present");
            }
            Ok(0)
        }
        Cmd::Restore {
            snapshot,
            target,
            include,
            exclude,
            sparse,
            verify,
            filter,
        } => {
            let repo = open(cli)?;
            let _l = lock(cli, &repo, false)?;
            let (spec, sub) = snapshot.split_once(':').unwrap_or((snapshot, ""));
            let (id, snap) = repo.resolve_snapshot(spec, &filter.to_lib())?;
            let index = Index::load(&repo)?;
            let opts = RestoreOptions {
                target: target.clone(),
                includes: include.clone(),
                excludes: exclude.clone(),
                sparse: *sparse,
                verify: *verify,
                owner: None,
            };
            if !cli.quiet && !cli.json {
                eprintln!(
                    "restoring snapshot {} of {} to {}",
                    id.short(),
                    short_time(&snap.time),
                    target.display()
                );
            }
            let sum = restore::restore(&repo, &index, &snap, sub, &opts)?;
            for e in &sum.errors {
                eprintln!("error: {e}");
            }
            if cli.json {
                print_json(&serde_json::json!({
                    "message_type": "summary",
                    "requests": store_requests(),
                    "snapshot_id": id,
                    "files_restored": sum.files,
                    "dirs_restored": sum.dirs,
                    "special_restored": sum.others,
                    "bytes_restored": sum.bytes,
                    "files_verified": sum.verified_files,
                    "errors": sum.errors,
                }))?;
            } else if !cli.quiet {
                println!(
                    "restored {} files, {} directories, {} other entries, {}{}",
                    sum.files,
                    sum.dirs,
                    sum.others,
                    bytes(sum.bytes),
                    if *verify {
                        format!("; verified {} files", sum.verified_files)
                    } else {
                        String::new()
                    }
                );
            }
            if !sum.errors.is_empty() {
                bail!("{} paths could not be restored", sum.errors.len());
            }
            Ok(0)
        }
        Cmd::Dump {
            snapshot,
            path,
            filter,
        } => {
            let repo = open(cli)?;
            let _l = lock(cli, &repo, false)?;
            let (_, snap) = repo.resolve_snapshot(snapshot, &filter.to_lib())?;
            let index = Index::load(&repo)?;
            let node = find_node(&repo, &index, &snap.tree, path)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            restore::dump(&repo, &index, &node, &mut out)?;
            Ok(0)
        }
        Cmd::Ls {
            snapshot,
            path,
            long,
            filter,
        } => {
            let repo = open(cli)?;
            let (id, snap) = repo.resolve_snapshot(snapshot, &filter.to_lib())?;
            let index = Index::load(&repo)?;
            let base = path.clone().unwrap_or_default();
            let node = find_node(&repo, &index, &snap.tree, &base)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if cli.json {
                serde_json::to_writer(&mut out, &snapshot_json(&id, &snap))?;
                writeln!(out)?;
            }
            let base = format!("/{}", base.trim_matches('/'));
            let base = if base == "/" { String::new() } else { base };
            let mut lister = Lister {
                repo: &repo,
                index: &index,
                json: cli.json,
                long: *long,
                out: &mut out,
            };
            if node.kind == NodeKind::Dir && node.name != b"/" {
                lister.print(&base, &node)?;
            }
            match node.kind {
                NodeKind::Dir => lister.walk(&node.subtree.expect("dir"), &base)?,
                _ => lister.print(&base, &node)?,
            }
            out.flush()?;
            Ok(0)
        }
        Cmd::Cat { kind, id } => cat(cli, kind, id.as_deref()),
        Cmd::Check {
            read_data,
            read_data_subset,
        } => {
            let repo = open(cli)?;
            let _l = lock(cli, &repo, false)?;
            let subset = match (read_data, read_data_subset) {
                (_, Some(s)) => Some(s.parse::<Subset>()?),
                (true, None) => Some(Subset::All),
                (false, None) => None,
            };
            let rep = check::check(&repo, &CheckOptions { read_data: subset })?;
            for n in &rep.notes {
                if cli.verbose > 0 || !cli.quiet {
                    eprintln!("note: {n}");
                }
            }
            for e in &rep.errors {
                eprintln!("error: {e}");
            }
            if cli.json {
                print_json(&serde_json::json!({
                    "message_type": "summary",
                    "requests": store_requests(),
                    "ok": rep.ok(),
                    "errors": rep.errors,
                    "notes": rep.notes,
                    "snapshots": rep.snapshots,
                    "trees": rep.trees,
                    "packs": rep.packs,
                    "packs_read": rep.packs_read,
                    "blobs_read": rep.blobs_read,
                    "bytes_read": rep.bytes_read,
                }))?;
            } else if !cli.quiet {
                println!(
                    "checked {} snapshots, {} trees, {} packs{}",
                    rep.snapshots,
                    rep.trees,
                    rep.packs,
                    if subset.is_some() {
                        format!(
                            "; read {} packs, {} blobs, {}",
                            rep.packs_read,
                            rep.blobs_read,
                            bytes(rep.bytes_read)
                        )
                    } else {
                        String::new()
                    }
                );
            }
            if !rep.ok() {
                bail!("repository has {} errors", rep.errors.len());
            }
            if !cli.quiet && !cli.json {
                println!("no errors were found");
            }
            Ok(0)
        }
        Cmd::Cache {
            cleanup,
            max_age,
            no_size,
        } => cache_cmd(cli, *cleanup, *max_age, *no_size),
        Cmd::Unlock { remove_all } => {
            let repo = open(cli)?;
            let n = lock::unlock(&repo, *remove_all)?;
            if !cli.quiet {
                println!("removed {n} locks");
            }
            Ok(0)
        }
    }
}
