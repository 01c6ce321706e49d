//! The nightly database job against a real PostgreSQL server (Debian's package): several
//! nights of `cista run` of a profile that dumps two databases (plain SQL and `pg_dump -Fc`)
//! beside a config directory into one snapshot, into a local repository and a copy on the S3
//! test server, with changes between nights and retention after each. Then the worst day:
//! restores with `cista dump | psql` and `cista dump > f; pg_restore`, compared table by
//! table; and a failing `pg_dump` that must save no snapshot, run the failure hook and count
//! in the failure metric.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::evidence::*;
use common::postgres::{server, Postgres};
use common::*;

/// A digest of a table's rows in key order: equal digests, equal tables.
fn table_digest(pg: &Postgres, db: &str, table: &str) -> String {
    pg.query(
        db,
        &format!(
            "select count(*) || ':' || md5(string_agg(t::text, '|' order by t.id)) from {table} t"
        ),
    )
}

fn fill(pg: &Postgres, app: &str, shop: &str) {
    pg.create_db(app);
    pg.create_db(shop);
    pg.query(
        app,
        "create table accounts (id int primary key, owner text not null, balance numeric not null);\
         insert into accounts select i, md5(i::text) || repeat(md5((i * 7)::text), 3), i * 1.25 \
         from generate_series(1, 480000) i",
    );
    pg.query(
        shop,
        "create table orders (id int primary key, item text, qty int, note text);\
         insert into orders select i, 'item-' || (i % 977), i % 13, repeat(md5(i::text), 4) \
         from generate_series(1, 100000) i",
    );
}

/// One night's changes, as an application makes them: new rows, and updates and deletes of a
/// few recent ones (changes spread over every page of a table would change every chunk of
/// its dump, in any deduplicating tool).
fn change(pg: &Postgres, app: &str, shop: &str, night: u32) {
    let lo = 250000 + night * 1000;
    pg.query(
        app,
        &format!(
            "update accounts set balance = balance + {night} where id between {lo} and {lo} + 40;\
             insert into accounts select i, 'new-' || i, 0 from generate_series({a}, {b}) i;\
             delete from accounts where id between {lo} + 500 and {lo} + 520",
            a = 600000 + night * 100,
            b = 600000 + night * 100 + 99
        ),
    );
    pg.query(
        shop,
        &format!(
            "update orders set qty = qty + 1 where id between {lo} - 200000 and {lo} - 199980"
        ),
    );
}

fn cista(env: &Env, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cista"));
    c.args(args);
    c.envs(s3::env_vars());
    c.env("CISTA_PASSWORD", PASSWORD)
        .env("CISTA_CACHE_DIR", env.path("cache"))
        .env_remove("CISTA_REPOSITORY")
        .stdin(Stdio::null());
    c
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    o
}

fn snapshot_count(env: &Env, repo: &str) -> usize {
    let o = ok(cista(env, &["--json", "-r", repo, "snapshots"])
        .output()
        .unwrap());
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
        .unwrap()
        .len()
}

#[test]
fn nightly_database_job_restores_with_psql_and_pg_restore_on_local_disk_and_s3() {
    let pg = server();
    let env = Env::new();
    let (app, shop) = ("nightly_app", "nightly_shop");
    fill(pg, app, shop);
    let local = env.repo().display().to_string();
    let offsite = format!("s3://{}/repo", s3::bucket("pg-nightly"));
    ok(cista(&env, &["-q", "-r", &offsite, "init"])
        .output()
        .unwrap());
    let etc = env.path("etc");
    write(&etc.join("postgresql.conf"), b"shared_buffers = 128MB\n");
    write(&etc.join("pg_hba.conf"), b"local all all peer\n");
    std::fs::write(env.path("pw"), PASSWORD).unwrap();
    std::fs::create_dir(env.path("receipts")).unwrap();
    let bin = pg.bin.display();
    let profile = format!(
        "[profiles.db]\n\
         repositories = [{local:?}, {offsite:?}]\n\
         password-file = {pw:?}\n\
         paths = [{etc:?}]\n\
         commands = [\n\
           {{ name = \"db/{app}.sql\", command = \"{bin}/pg_dump --no-password {app}\" }},\n\
           {{ name = \"db/{shop}.dump\", command = \"{bin}/pg_dump --no-password -Fc -Z0 {shop}\" }},\n\
         ]\n\
         tags = [\"postgres\"]\n\
         receipt-dir = {rd:?}\n\
         metrics-file = {m:?}\n\
         timeout = \"10m\"\n\
         [profiles.db.retention]\nkeep-last = 3\n\
         [profiles.db.check]\nread-data-subset = \"50%\"\n\
         [profiles.db.hooks]\nrun-on-failure = \"echo \\\"$CISTA_STATUS $CISTA_ERROR\\\" >> {fail}\"\n\
         [profiles.broken]\ninherit = \"db\"\n\
         commands = [{{ name = \"db/gone.sql\", command = \"{bin}/pg_dump --no-password no_such_db\" }}]\n",
        pw = env.path("pw").display().to_string(),
        etc = etc.display().to_string(),
        rd = env.path("receipts").display().to_string(),
        m = env.path("cista.prom").display().to_string(),
        fail = env.path("failed.log").display(),
    );
    let config = env.path("cista.toml");
    std::fs::write(&config, profile).unwrap();
    let config = config.to_str().unwrap();

    let mut added = Vec::new();
    for night in 1..=4 {
        if night > 1 {
            change(pg, app, shop, night);
            write(
                &etc.join("postgresql.conf"),
                format!("work_mem = {night}MB\n").as_bytes(),
            );
        }
        let run = env.path(&format!("night{night}.json"));
        ok(cista(
            &env,
            &[
                "--receipt",
                run.to_str().unwrap(),
                "run",
                "db",
                "-c",
                config,
            ],
        )
        .envs(pg.env())
        .output()
        .unwrap());
        let r = receipt(&run);
        assert_eq!(r["status"], "success");
        let names: Vec<&str> = r["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [format!("db/{app}.sql"), format!("db/{shop}.dump")]);
        added.push(r["counts"]["data_added"].as_u64().unwrap());
        assert_eq!(snapshot_count(&env, &local), night.min(3) as usize);
        assert_eq!(snapshot_count(&env, &offsite), night.min(3) as usize);
    }
    eprintln!("bytes added per night: {added:?}");
    // Deduplication across nights: each later night adds a small part of the first.
    for (n, a) in added.iter().enumerate().skip(1) {
        assert!(
            *a * 5 < added[0],
            "night {} added {a} bytes, the first {}",
            n + 1,
            added[0]
        );
    }

    // The worst day, from the local repository: a plain dump piped into psql ...
    pg.create_db("restored_app");
    let mut dump = cista(
        &env,
        &["-r", &local, "dump", "latest", &format!("/db/{app}.sql")],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let psql = pg
        .tool("psql")
        .args([
            "-X",
            "-q",
            "-1",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "restored_app",
        ])
        .stdin(dump.stdout.take().unwrap())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(dump.wait().unwrap().success());
    assert!(psql.status.success(), "psql: {}", stderr(&psql));
    assert_eq!(
        table_digest(pg, app, "accounts"),
        table_digest(pg, "restored_app", "accounts")
    );
    // ... and from the S3 copy: the custom-format dump through a file into pg_restore.
    let file = env.path("shop.dump");
    let o = ok(cista(
        &env,
        &[
            "-r",
            &offsite,
            "dump",
            "latest",
            &format!("/db/{shop}.dump"),
        ],
    )
    .output()
    .unwrap());
    std::fs::write(&file, &o.stdout).unwrap();
    pg.create_db("restored_shop");
    let o = pg
        .tool("pg_restore")
        .args(["--exit-on-error", "-d", "restored_shop"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "pg_restore: {}", stderr(&o));
    assert_eq!(
        table_digest(pg, shop, "orders"),
        table_digest(pg, "restored_shop", "orders")
    );
    let conf = ok(cista(
        &env,
        &[
            "-r",
            &offsite,
            "dump",
            "latest",
            &format!("{}/postgresql.conf", etc.display()),
        ],
    )
    .output()
    .unwrap());
    assert_eq!(conf.stdout, b"work_mem = 4MB\n");

    // A night whose pg_dump fails: no snapshot, the failure hook, the failure counter.
    let o = cista(&env, &["run", "broken", "-c", config])
        .envs(pg.env())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no_such_db"), "{}", stderr(&o));
    assert_eq!(snapshot_count(&env, &local), 3);
    assert_eq!(snapshot_count(&env, &offsite), 3);
    let failed = std::fs::read_to_string(env.path("failed.log")).unwrap();
    assert!(failed.starts_with("failure backup on "), "{failed}");
    let s = samples(&env.path("cista.prom"));
    let failures = s
        .iter()
        .find(|(k, _)| {
            k.starts_with("cista_backup_failure_total{") && k.contains("profile=\"broken\"")
        })
        .map(|x| x.1);
    assert_eq!(failures, Some(1.0));
    let successes = s
        .iter()
        .find(|(k, _)| k.starts_with("cista_backup_success_total{") && k.contains("profile=\"db\""))
        .map(|x| x.1);
    assert_eq!(successes, Some(4.0));
    // Nights given --receipt wrote theirs there; this one went to the profile's receipt-dir.
    let kept: Vec<_> = Path::new(&env.path("receipts"))
        .read_dir()
        .unwrap()
        .collect();
    assert_eq!(kept.len(), 1);
}
