//! `cista key list|add|remove|passwd`: restic's `key` command.

use anyhow::Result;

use cista::commands::{self, KeyAddOptions, KeyRemoveOptions};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, cmd: &KeyCmd) -> Result<u8> {
    match cmd {
        KeyCmd::List => list(cli),
        KeyCmd::Add(a) => add(cli, a),
        KeyCmd::Remove { id, force } => remove(cli, id, *force),
        KeyCmd::Passwd(a) => passwd(cli, a),
    }
}

/// One key in restic's `key list --json` shape (its fields, in its order), with the creation
/// time as stored (RFC 3339) where restic prints local time.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyJson<'a> {
    current: bool,
    id: cista::Id,
    user_name: &'a str,
    host_name: &'a str,
    created: &'a str,
    /// When this host last opened the repository with it (not in restic's shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used: Option<&'a str>,
}

fn list(cli: &Cli) -> Result<u8> {
    let repo = open(cli)?;
    let r = commands::key_list(&repo)?;
    for (name, e) in &r.damaged {
        eprintln!("cista: warning: key file {name} cannot be read: {e}");
    }
    if cli.json {
        let v: Vec<_> = r
            .keys
            .iter()
            .map(|k| KeyJson {
                current: k.current,
                id: k.id,
                user_name: &k.username,
                host_name: &k.hostname,
                created: &k.created,
                last_used: k.last_used.as_deref(),
            })
            .collect();
        return print_json(&v).map(|_| 0);
    }
    println!(" {:<10} {:<14} {:<20} Created", "ID", "User", "Host");
    println!("{}", "-".repeat(68));
    for k in &r.keys {
        println!(
            "{}{:<10} {:<14} {:<20} {}",
            if k.current { '*' } else { ' ' },
            k.id.short(),
            k.username,
            k.hostname,
            short_time(&k.created)
        );
    }
    println!("{}", "-".repeat(68));
    if !cli.quiet {
        println!("{} key(s); * marks the key in use", r.keys.len());
    }
    Ok(0)
}

/// The new key's password (`--new-password-file`, else `CISTA_NEW_PASSWORD`, else a prompt
/// asked twice) and what its key file records.
fn new_key(a: &NewKeyArgs) -> Result<(Vec<u8>, KeyAddOptions)> {
    let src = PasswordSource {
        file: a.new_password_file.clone(),
        command: None,
        insecure_no_password: a.new_insecure_no_password,
        var: "CISTA_NEW_PASSWORD",
        flag_prefix: "new-",
        has_command: false,
        prompt: "enter new password: ",
    };
    let pw = src.read(true)?;
    let mut o = KeyAddOptions::default();
    o.hostname = a.host.clone();
    o.username = a.user.clone();
    Ok((pw, o))
}

fn add(cli: &Cli, a: &NewKeyArgs) -> Result<u8> {
    let repo = open(cli)?;
    let (pw, opts) = new_key(a)?;
    let locked = lock(cli, &repo)?;
    let id = commands::key_add(&locked, &pw, &opts)?;
    if cli.json {
        print_json(&serde_json::json!({"message_type": "key_added", "id": id}))?;
    } else if !cli.quiet {
        println!("saved new key {id}");
    }
    Ok(0)
}

fn remove(cli: &Cli, id: &str, force: bool) -> Result<u8> {
    let repo = open(cli)?;
    let ex = exclusive_lock(cli, &repo)?;
    let mut opts = KeyRemoveOptions::default();
    opts.force = force;
    let r = commands::key_remove(&ex, id, &opts)?;
    if cli.json {
        print_json(&serde_json::json!({
            "message_type": "key_removed",
            "id": r.removed,
            "current": r.was_current,
        }))?;
    } else if !cli.quiet {
        println!(
            "removed key {}{}",
            r.removed,
            if r.was_current {
                " (the key in use)"
            } else {
                ""
            }
        );
    }
    Ok(0)
}

fn passwd(cli: &Cli, a: &NewKeyArgs) -> Result<u8> {
    let repo = open(cli)?;
    let old = repo.current_key();
    let (pw, opts) = new_key(a)?;
    let ex = exclusive_lock(cli, &repo)?;
    let new = commands::key_passwd(&ex, &pw, &opts)?;
    if cli.json {
        print_json(&serde_json::json!({
            "message_type": "password_changed",
            "id": new,
            "removed": old,
        }))?;
    } else if !cli.quiet {
        println!("saved new key {new}");
        if let Some(old) = old {
            println!("removed key {old}");
        }
        println!("password changed");
    }
    Ok(0)
}
