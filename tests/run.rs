//! `cista run NAME`: a profile's job end to end on real repositories: backup with command
//! sources, copy to a second repository, retention, check, drill, hooks with the outcome in
//! their environment, one receipt and the metrics; failures save nothing and run the failure
//! hooks; a timeout stops the step with its children and releases the lock; two runs of one
//! profile never overlap.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::evidence::*;
use common::*;

/// Two initialised repositories, a source tree and a password file in one directory.
struct Job {
    env: Env,
    second: PathBuf,
    src: PathBuf,
    pw: PathBuf,
}

impl Job {
    fn new() -> Job {
        let env = Env::new();
        let second = env.path("repo2");
        let o = Command::new(env!("CARGO_BIN_EXE_cista"))
            .args(["-q", "init", "-r"])
            .arg(&second)
            .env("CISTA_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let src = env.path("src");
        small_tree(&src);
        let pw = env.path("password");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        Job {
            env,
            second,
            src,
            pw,
        }
    }

    fn p(&self, name: &str) -> String {
        self.env.path(name).display().to_string()
    }

    /// A profile file with profile `t` made of `body` after the common settings.
    fn profile(&self, body: &str) -> PathBuf {
        let f = self.env.path("cista.toml");
        let text = format!(
            "[profiles.t]\nrepositories = [{:?}, {:?}]\npassword-file = {:?}\npaths = [{:?}]\n\
             tags = [\"nightly\"]\ncache-dir = {:?}\nmetrics-file = {:?}\n{body}",
            self.env.repo().display().to_string(),
            self.second.display().to_string(),
            self.pw.display().to_string(),
            self.src.display().to_string(),
            self.p("cache"),
            self.p("cista.prom"),
        );
        std::fs::write(&f, text).unwrap();
        f
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cista"));
        c.args(args).arg("-c").arg(self.env.path("cista.toml"));
        c.env_remove("CISTA_REPOSITORY")
            .env_remove("CISTA_PASSWORD");
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn snapshots(&self, repo: &Path) -> Vec<serde_json::Value> {
        let o = Command::new(env!("CARGO_BIN_EXE_cista"))
            .args(["--json", "snapshots", "-r"])
            .arg(repo)
            .env("CISTA_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.env.path(name)).unwrap_or_default()
    }
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
}

/// A hook line that appends the outcome variables to `file`.
fn record(which: &str, file: &str) -> String {
    format!(
        "echo \"{which} status=$CISTA_STATUS code=$CISTA_EXIT_CODE snap=$CISTA_SNAPSHOT_ID receipt=$CISTA_RECEIPT error=$CISTA_ERROR profile=$CISTA_PROFILE\" >> {file}"
    )
}

#[test]
fn a_profile_backs_up_copies_applies_retention_checks_drills_and_tells_the_hooks() {
    let j = Job::new();
    let log = j.p("hooks.log");
    j.profile(&format!(
        "commands = [{{ name = \"db/app.sql\", command = \"echo 'select 1;'; date +%s%N\" }}]\n\
         receipt-dir = {rd:?}\n\
         [profiles.t.retention]\nkeep-last = 2\n\
         [profiles.t.check]\nread-data = true\n\
         [profiles.t.drill]\nfraction = 1.0\nexec = \"test -s $CISTA_DRILL_DIR/db/app.sql\"\n\
         [profiles.t.hooks]\nrun-before = [{b:?}]\nrun-after = [{a:?}]\n\
         run-on-failure = [{f:?}]\nrun-finally = [{z:?}]\n",
        rd = j.p("receipts"),
        b = record("before", &log),
        a = record("after", &log),
        f = record("failure", &log),
        z = record("finally", &log),
    ));
    std::fs::create_dir(j.env.path("receipts")).unwrap();
    for night in 0..3 {
        write(&j.src.join(format!("night{night}")), &text(3000, night));
        ok(&j.run(&["run", "t"]));
    }
    // Retention ran on both repositories, scoped to the profile's host and tag.
    let (first, second) = (j.snapshots(&j.env.repo()), j.snapshots(&j.second));
    assert_eq!((first.len(), second.len()), (2, 2));
    assert!(first.iter().all(|s| s["tags"][0] == "nightly"));
    let latest = &first.last().unwrap()["id"];
    let paths = |s: &serde_json::Value| s["paths"].clone();
    assert_eq!(paths(first.last().unwrap()), paths(second.last().unwrap()));

    let hooks = j.read("hooks.log");
    let lines: Vec<&str> = hooks.lines().collect();
    assert_eq!(lines.len(), 9, "{hooks}");
    assert!(lines[0].starts_with("before status= "), "{hooks}");
    let after = lines[7];
    assert!(
        after.starts_with("after status=success code=0")
            && after.contains(&format!("snap={}", latest.as_str().unwrap()))
            && after.contains("profile=t"),
        "{hooks}"
    );
    assert!(lines[8].starts_with("finally status=success"), "{hooks}");
    assert!(!hooks.contains("failure"), "{hooks}");

    // One receipt per run, valid, naming the snapshot and every step in order.
    let mut receipts: Vec<_> = std::fs::read_dir(j.env.path("receipts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    receipts.sort();
    assert_eq!(receipts.len(), 3);
    let r = receipt(receipts.last().unwrap());
    assert_eq!(
        (r["command"].as_str(), r["status"].as_str()),
        (Some("run"), Some("success"))
    );
    assert_eq!(r["profile"], "t");
    assert_eq!(&r["snapshot_id"], latest);
    assert_eq!(r["artifacts"][0]["name"], "db/app.sql");
    let names: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "hook:run-before",
            "backup",
            "copy",
            "forget",
            "forget",
            "check",
            "check",
            "drill",
            "hook:run-after",
            "hook:run-finally"
        ]
    );
    assert_eq!(r["steps"][1]["receipt"]["command"], "backup");
    assert_eq!(r["steps"][1]["receipt"]["profile"], "t");
    // The receipt the after hook was given is the run's, already saying success.
    let given = after
        .split("receipt=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(Path::new(given), receipts.last().unwrap());

    // Metrics carry the profile, count three backups, and the run itself.
    let s = samples(&j.env.path("cista.prom"));
    let backups = s
        .iter()
        .find(|(k, _)| k.starts_with("cista_backup_success_total{") && k.contains("profile=\"t\""))
        .map(|x| x.1);
    assert_eq!(backups, Some(3.0));
    assert_eq!(sample(&s, "cista_last_exit_code", "run"), Some(0.0));
    assert_eq!(sample(&s, "cista_last_check_success", "drill"), Some(1.0));
}

#[test]
fn a_failing_command_source_saves_no_snapshot_and_runs_the_failure_hooks() {
    let j = Job::new();
    let log = j.p("hooks.log");
    j.profile(&format!(
        "commands = [{{ name = \"db/app.sql\", command = \"echo partial; exit 7\" }}]\n\
         [profiles.t.retention]\nkeep-last = 1\n\
         [profiles.t.hooks]\nrun-after = [{a:?}]\nrun-on-failure = [{f:?}]\nrun-finally = [{z:?}]\n",
        a = record("after", &log),
        f = record("failure", &log),
        z = record("finally", &log),
    ));
    let o = j.run(&["--receipt", &j.p("run.json"), "run", "t"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(j.snapshots(&j.env.repo()).is_empty());
    assert!(j.snapshots(&j.second).is_empty());
    let hooks = j.read("hooks.log");
    let lines: Vec<&str> = hooks.lines().collect();
    assert_eq!(lines.len(), 2, "{hooks}");
    assert!(
        lines[0].starts_with("failure status=failure code=1")
            && lines[0].contains("error=backup on"),
        "{hooks}"
    );
    assert!(lines[1].starts_with("finally status=failure"), "{hooks}");
    let r = receipt(&j.env.path("run.json"));
    assert_eq!(r["status"], "failure");
    assert_eq!(r["steps"][0]["name"], "backup");
    assert_eq!(r["steps"][0]["receipt"]["status"], "failure");
    // No copy or retention after a failed backup.
    assert_eq!(r["steps"].as_array().unwrap().len(), 3);
    let s = samples(&j.env.path("cista.prom"));
    assert_eq!(
        sample(&s, "cista_backup_failure_total", "backup"),
        Some(1.0)
    );
    assert_eq!(sample(&s, "cista_last_exit_code", "run"), Some(1.0));
}

#[test]
fn a_failing_before_hook_backs_up_nothing() {
    let j = Job::new();
    j.profile("[profiles.t.hooks]\nrun-before = \"exit 4\"\n");
    let o = j.run(&["run", "t"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("run-before hook failed"),
        "{}",
        stderr(&o)
    );
    assert!(j.snapshots(&j.env.repo()).is_empty());
}

fn alive(pid: i32) -> bool {
    // A zombie has ended; only its exit status is left for a parent to collect.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

fn wait_for(p: &Path) {
    let t0 = Instant::now();
    while !p.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_timeout_stops_the_step_and_its_children_releases_the_lock_and_runs_the_failure_hook() {
    let j = Job::new();
    let pidfile = j.p("dump.pid");
    j.profile(&format!(
        "timeout = \"3s\"\n\
         commands = [{{ name = \"db/app.sql\", command = \"echo $$ > {pidfile}; exec sleep 120\" }}]\n\
         [profiles.t.hooks]\nrun-on-failure = [{f:?}]\n",
        f = record("failure", &j.p("hooks.log")),
    ));
    let t0 = Instant::now();
    let o = j.run(&["--receipt", &j.p("run.json"), "run", "t"]);
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(stderr(&o).contains("timed out after 3s"), "{}", stderr(&o));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(pid), "the dump command {pid} outlived the timeout");
    // The stopped backup removed its lock: nothing is left in locks/ and a new lock is free.
    assert_eq!(j.env.count("locks"), 0);
    assert!(j.snapshots(&j.env.repo()).is_empty());
    assert!(j
        .read("hooks.log")
        .contains("failure status=failure code=1"));
    let r = receipt(&j.env.path("run.json"));
    assert!(r["error"].as_str().unwrap().contains("timed out"), "{r:#}");
    // The stopped backup wrote no receipt of its own: the run made one, and counted it.
    assert_eq!(r["steps"][0]["receipt"]["status"], "failure");
    let s = samples(&j.env.path("cista.prom"));
    assert_eq!(
        sample(&s, "cista_backup_failure_total", "backup"),
        Some(1.0)
    );
}

#[test]
fn two_runs_of_one_profile_never_overlap() {
    let j = Job::new();
    let started = j.env.path("started");
    j.profile(&format!(
        "[profiles.t.hooks]\nrun-before = \"touch {}; sleep 4\"\n",
        started.display()
    ));
    let mut first = j.cmd(&["run", "t"]).stdout(Stdio::null()).spawn().unwrap();
    wait_for(&started);
    let second = j.run(&["run", "t"]);
    assert_eq!(second.status.code(), Some(11), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("profile t is already running"),
        "{}",
        stderr(&second)
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(j.snapshots(&j.env.repo()).len(), 1);
    // Once the first has ended the profile runs again.
    ok(&j.run(&["run", "t"]));
}

#[test]
fn a_signal_stops_the_running_step_and_the_failure_hooks_still_run() {
    let j = Job::new();
    let pidfile = j.p("dump.pid");
    j.profile(&format!(
        "commands = [{{ name = \"x\", command = \"echo $$ > {pidfile}; exec sleep 120\" }}]\n\
         [profiles.t.hooks]\nrun-on-failure = [{f:?}]\n",
        f = record("failure", &j.p("hooks.log")),
    ));
    let mut c = j.cmd(&["run", "t"]).stderr(Stdio::piped()).spawn().unwrap();
    wait_for(Path::new(&pidfile));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = c.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(pid));
    assert_eq!(j.env.count("locks"), 0);
    assert!(j
        .read("hooks.log")
        .contains("failure status=failure code=143"));
}

#[test]
fn profiles_are_listed_planned_and_checked_before_anything_runs() {
    let j = Job::new();
    j.profile("[profiles.t.retention]\nkeep-daily = 7\n[profiles.other]\ninherit = \"t\"\n");
    let o = j.run(&["run", "--list"]);
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "other\nt\n");
    let o = j.run(&["run", "other", "--dry-run"]);
    ok(&o);
    let plan = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        plan.contains(" backup ") && plan.contains(" copy --from-repo "),
        "{plan}"
    );
    assert!(plan.contains("forget --keep-daily 7 --host "), "{plan}");
    assert!(
        j.snapshots(&j.env.repo()).is_empty(),
        "--dry-run ran something"
    );
    j.profile("[profiles.t.retention]\nkeep-daly = 7\n");
    let o = j.run(&["run", "t"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("keep-daly"), "{}", stderr(&o));
    let o = j.run(&["run", "nope"]);
    assert!(stderr(&o).contains("no profile \"nope\""), "{}", stderr(&o));
}

#[test]
fn the_example_profile_file_loads_and_plans() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cista.example.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_cista"))
        .args(["run", "nightly", "--dry-run", "-c", file])
        .output()
        .unwrap();
    ok(&o);
    let plan = String::from_utf8_lossy(&o.stdout).into_owned();
    for want in [
        "cista -r /srv/cista --password-file /etc/cista/password ",
        " backup /etc --tag nightly --exclude /etc/ssl/private --command db/app.sql=",
        "cista -r s3://backups-offsite/db1 --password-file /etc/cista/password-offsite -o aws_region=eu-central-1 ",
        " copy --from-repo /srv/cista --from-password-file /etc/cista/password SNAPSHOT",
        " forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --host ",
        " check --read-data-subset 5%",
        " drill SNAPSHOT --exec ",
        "hook run-on-failure: logger",
        "timeout: 4h",
    ] {
        assert!(plan.contains(want), "{want:?} not in\n{plan}");
    }
}
