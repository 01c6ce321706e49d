use super::*;

fn load(text: &str, name: &str) -> Result<Profile> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cista.toml");
    std::fs::write(&f, text).unwrap();
    load_profile(&f, name)
}

fn err(text: &str, name: &str) -> String {
    load(text, name).unwrap_err().to_string()
}

const FULL: &str = r#"
version = 1
[profiles.base]
password-file = "/etc/cista/password"
host = "db1"
tags = ["nightly"]
timeout = "2h"
[profiles.base.retention]
keep-daily = 7
keep-weekly = 4
[profiles.base.hooks]
run-on-failure = "notify failed"

[profiles.nightly]
inherit = "base"
repositories = ["/srv/cista", { location = "s3://b/cista", password-file = "/etc/cista/s3", options = { aws_region = "eu-west-1" } }]
paths = ["/etc/postgresql"]
exclude-caches = true
exclude-if-present = [".nobackup"]
exclude-larger-than = "2G"
commands = [{ name = "db/app.sql", command = "pg_dump app" }]
[profiles.nightly.retention]
keep-daily = 14
[profiles.nightly.drill]
fraction = 0.25
exec = "pg_restore -l $CISTA_DRILL_DIR/db/app.dump"
"#;

#[test]
fn inherits_and_merges_tables_key_by_key() {
    let p = load(FULL, "nightly").unwrap();
    assert_eq!(p.name, "nightly");
    assert_eq!(p.host.as_deref(), Some("db1"));
    assert_eq!(p.timeout, Some(Duration::from_secs(7200)));
    let r = p.retention.unwrap();
    assert_eq!(
        (r.keep_daily, r.keep_weekly, r.prune),
        (Some(14), Some(4), true)
    );
    assert_eq!(p.hooks.run_on_failure, vec!["notify failed".to_string()]);
    assert_eq!(p.repositories.len(), 2);
    // The profile's password file for the repository without one, its own for the other.
    assert_eq!(
        p.repositories[0].password_file.as_deref(),
        Some(Path::new("/etc/cista/password"))
    );
    assert_eq!(
        p.repositories[1].password_file.as_deref(),
        Some(Path::new("/etc/cista/s3"))
    );
    assert_eq!(p.repositories[1].options["aws_region"], "eu-west-1");
    assert_eq!(p.commands[0].name, "db/app.sql");
    assert_eq!(p.drill.unwrap().fraction, 0.25);
    assert_eq!(p.hook_timeout, Duration::from_secs(300));
    assert!(p.exclude_caches);
    assert_eq!(p.exclude_if_present, vec![".nobackup".to_string()]);
    assert_eq!(p.exclude_larger_than.as_deref(), Some("2G"));
}

#[test]
fn names_the_setting_at_fault() {
    let t = "[profiles.a]\nrepository = \"/r\"\npaths = [\"/x\"]\n[profiles.a.retention]\nkeep-dayly = 3\n";
    let e = err(t, "a");
    assert!(e.contains("keep-dayly") && e.contains("profiles.a"), "{e}");
    let t = "[profiles.a]\nrepository = \"/r\"\npaths = [\"/x\"]\ntimeout = \"soon\"\n";
    assert!(err(t, "a").contains("profiles.a.timeout"));
    let t = "[profiles.a]\nrepository = \"/r\"\npaths = [\"/x\"]\n[profiles.a.retention]\nkeep-within = \"3q\"\n";
    assert!(err(t, "a").contains("profiles.a.retention.keep-within"));
    let t = "[profiles.a]\nrepository = \"/r\"\npaths = [\"/x\"]\n[profiles.a.retention]\nprune = true\n";
    assert!(err(t, "a").contains("no keep-* rule"));
    let t =
        "[profiles.a]\nrepository = \"/r\"\npaths = [\"/x\"]\n[profiles.a.drill]\nfraction = 2.0\n";
    assert!(err(t, "a").contains("drill.fraction"));
    let t = "[profiles.a]\nrepository = \"/r\"\npaths = [\"/x\"]\nexclude-larger-than = \"big\"\n";
    assert!(err(t, "a").contains("profiles.a.exclude-larger-than"));
}

#[test]
fn refuses_jobs_that_cannot_be_right() {
    assert!(err("[profiles.a]\npaths = [\"/x\"]\n", "a").contains("names no repository"));
    assert!(err("[profiles.a]\nrepository = \"/r\"\n", "a").contains("backs up nothing"));
    let t =
        "[profiles.a]\nrepository = \"/r\"\ncommands = [{name = \"../x\", command = \"true\"}]\n";
    assert!(err(t, "a").contains("relative path"));
    let t = "[profiles.a]\nrepository = \"/r\"\ncommands = [{name = \"x\", command = \"a\"}, {name = \"x\", command = \"b\"}]\n";
    assert!(err(t, "a").contains("given twice"));
    let t = "[profiles.a]\nrepositories = [\"/r\", \"/r\"]\npaths = [\"/x\"]\n";
    assert!(err(t, "a").contains("named twice"));
    assert!(err(FULL, "nope").contains("no profile \"nope\""));
    assert!(err("[profile.a]\n", "a").contains("unknown top-level setting"));
    assert!(err("version = 2\n", "a").contains("version 2"));
}

#[test]
fn inheritance_cycles_and_missing_parents_are_errors() {
    let t = "[profiles.a]\ninherit = \"b\"\n[profiles.b]\ninherit = \"a\"\n";
    assert!(err(t, "a").contains("cycle: a -> b -> a"));
    let t = "[profiles.a]\ninherit = \"zz\"\n";
    assert!(err(t, "a").contains("inherits \"zz\""));
}

#[test]
fn lists_profiles_and_reports_syntax_errors_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cista.toml");
    std::fs::write(&f, FULL).unwrap();
    assert_eq!(list_profiles(&f).unwrap(), vec!["base", "nightly"]);
    std::fs::write(&f, "[profiles.a\n").unwrap();
    let e = list_profiles(&f).unwrap_err().to_string();
    assert!(e.contains("cista.toml"), "{e}");
}
