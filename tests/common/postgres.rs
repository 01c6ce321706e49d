//! A real PostgreSQL server for tests: Debian's package (`scripts/test.sh` installs it), a
//! fresh cluster in a temporary directory, listening on a free loopback port with trust
//! authentication, stopped and removed when the test process exits. As root the server runs
//! as the `postgres` user the package creates (PostgreSQL refuses to run as root).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::server::free_port;

pub struct Postgres {
    pub port: u16,
    /// The directory of initdb, postgres, psql, pg_dump and pg_restore.
    pub bin: PathBuf,
    _watchdog: std::process::Child,
}

/// The newest installed server's binaries.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|x| x.1).expect(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
         apt-get install postgresql, as scripts/test.sh does",
    )
}

/// `program` run as the server's user: `postgres` when we are root.
fn as_server_user(program: &Path) -> Command {
    if super::is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--clear-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Starts (once per test binary) the server.
pub fn server() -> &'static Postgres {
    static S: OnceLock<Postgres> = OnceLock::new();
    S.get_or_init(|| {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("cista-pg")
            .tempdir()
            .unwrap()
            .keep();
        let data = dir.join("data");
        if super::is_root() {
            let o = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(o.status.success(), "chown: {}", super::stderr(&o));
        }
        let o = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(o.status.success(), "initdb: {}", super::stderr(&o));
        let port = free_port();
        let prefix = if super::is_root() {
            "setpriv --reuid=postgres --regid=postgres --clear-groups "
        } else {
            ""
        };
        let line = format!(
            "{prefix}'{}' -D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off",
            bin.join("postgres").display(),
            data.display(),
            dir.display()
        );
        // Stops the server when this process exits, then removes the cluster.
        let script = format!(
            "{line} >'{log}' 2>&1 & s=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 1; done; \
             kill -INT $s 2>/dev/null; wait $s; rm -rf '{dir}'",
            dir = dir.display(),
            log = dir.join("server.log").display(),
            parent = std::process::id(),
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "PostgreSQL did not start: {log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let pg = Postgres {
            port,
            bin,
            _watchdog: watchdog,
        };
        // Accepting connections is not ready for queries yet during startup.
        while !pg.psql("postgres", "select 1").status.success() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "PostgreSQL is not ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    })
}

impl Postgres {
    /// The client environment: every `psql`, `pg_dump` (and a cista command source) run with
    /// it reaches this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", "127.0.0.1".into()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", "postgres".into()),
            ("PGCONNECT_TIMEOUT", "10".into()),
        ]
    }

    pub fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        c.envs(self.env());
        c
    }

    pub fn psql(&self, db: &str, sql: &str) -> Output {
        self.tool("psql")
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap()
    }

    /// Runs `sql` and returns its output; panics with psql's message on failure.
    pub fn query(&self, db: &str, sql: &str) -> String {
        let o = self.psql(db, sql);
        assert!(
            o.status.success(),
            "psql {db} {sql:?}: {}",
            super::stderr(&o)
        );
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    pub fn create_db(&self, db: &str) {
        self.query("postgres", &format!("create database {db}"));
    }
}
