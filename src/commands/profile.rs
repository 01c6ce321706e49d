//! Profiles for `cista run NAME`: one TOML file naming the nightly jobs (repositories, sources,
//! retention, checks, hooks, a timeout), read and checked here into a [`Profile`] before
//! anything runs, so a typo in a setting fails the job at once, naming the setting, instead of
//! at 3 a.m. halfway through it. The file format is in docs/profiles.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::policy::Within;

/// One job: what `cista run NAME` backs up, where to, and what it does around the backup.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Profile {
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// The first gets the backup; each other one a `copy` of the new snapshot.
    pub repositories: Vec<ProfileRepository>,
    /// Recorded in the snapshot and used to scope retention (default: this machine's name).
    pub host: Option<String>,
    pub tags: Vec<String>,
    pub paths: Vec<PathBuf>,
    pub exclude: Vec<String>,
    pub exclude_file: Vec<PathBuf>,
    pub iexclude: Vec<String>,
    pub exclude_caches: bool,
    pub exclude_if_present: Vec<String>,
    pub exclude_larger_than: Option<String>,
    pub files_from: Vec<PathBuf>,
    pub one_file_system: bool,
    /// Named command outputs stored beside `paths` in the same snapshot (`db/app.sql`).
    pub commands: Vec<CommandSource>,
    pub allow_empty: bool,
    /// Forget (and prune) on every repository after a successful backup.
    pub retention: Option<Retention>,
    /// `check` on every repository after the backup.
    pub check: Option<CheckSpec>,
    /// A drill of the new snapshot on the first repository, on a fraction of the runs.
    pub drill: Option<DrillSpec>,
    pub hooks: Hooks,
    /// For the whole run; when it passes the running step is killed with its children.
    pub timeout: Option<Duration>,
    /// For each failure and finally hook (they still run after a timeout).
    pub hook_timeout: Duration,
    /// A receipt of every run is written here (`NAME-TIME.json`).
    pub receipt_dir: Option<PathBuf>,
    pub metrics_file: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

/// A repository of a profile and how to open it.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ProfileRepository {
    pub location: String,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    /// Object store settings (`aws_endpoint`, ...), as `-o key=value`.
    pub options: BTreeMap<String, String>,
}

/// A command whose standard output is stored as the file `name` of the snapshot.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CommandSource {
    pub name: String,
    pub command: String,
}

/// forget's policy (restic's flags, as settings) and whether to prune afterwards.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct Retention {
    pub keep_last: Option<i64>,
    pub keep_hourly: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub keep_yearly: Option<i64>,
    pub keep_within: Option<String>,
    pub keep_within_hourly: Option<String>,
    pub keep_within_daily: Option<String>,
    pub keep_within_weekly: Option<String>,
    pub keep_within_monthly: Option<String>,
    pub keep_within_yearly: Option<String>,
    #[serde(default)]
    pub keep_tag: Vec<String>,
    pub group_by: Option<String>,
    /// Prune after forgetting (default true).
    #[serde(default = "yes")]
    pub prune: bool,
    pub max_unused: Option<String>,
}

/// What `check` reads after the backup.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct CheckSpec {
    #[serde(default)]
    pub read_data: bool,
    /// A fraction of the packs, as `check --read-data-subset` takes it (`5%`, `1/7`).
    pub read_data_subset: Option<String>,
}

/// A drill after the backup: on `fraction` of the runs (1: every run).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct DrillSpec {
    #[serde(default = "one")]
    pub fraction: f64,
    /// Run on the restored tree (its path in `CISTA_DRILL_DIR`), e.g. a `pg_restore`.
    pub exec: Option<String>,
}

/// Shell commands run around the job, each with `sh -c`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Hooks {
    /// Before the backup; one failing fails the run (nothing is backed up).
    #[serde(deserialize_with = "one_or_many")]
    pub run_before: Vec<String>,
    /// After every step succeeded.
    #[serde(deserialize_with = "one_or_many")]
    pub run_after: Vec<String>,
    /// After a failed step or hook, or a timeout.
    #[serde(deserialize_with = "one_or_many")]
    pub run_on_failure: Vec<String>,
    /// Last, whatever happened.
    #[serde(deserialize_with = "one_or_many")]
    pub run_finally: Vec<String>,
}

fn yes() -> bool {
    true
}

fn one() -> f64 {
    1.0
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A profile as written, before inheritance is resolved and settings are checked.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
struct RawProfile {
    inherit: Option<String>,
    repository: Option<RawRepository>,
    repositories: Vec<RawRepository>,
    password_file: Option<PathBuf>,
    password_command: Option<String>,
    options: BTreeMap<String, String>,
    host: Option<String>,
    tags: Vec<String>,
    paths: Vec<PathBuf>,
    exclude: Vec<String>,
    exclude_file: Vec<PathBuf>,
    iexclude: Vec<String>,
    exclude_caches: bool,
    exclude_if_present: Vec<String>,
    exclude_larger_than: Option<String>,
    files_from: Vec<PathBuf>,
    one_file_system: bool,
    commands: Vec<CommandSource>,
    allow_empty: bool,
    retention: Option<Retention>,
    check: Option<CheckSpec>,
    drill: Option<DrillSpec>,
    hooks: Hooks,
    timeout: Option<String>,
    hook_timeout: Option<String>,
    receipt_dir: Option<PathBuf>,
    metrics_file: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRepository {
    Location(String),
    Full(RawRepositoryTable),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRepositoryTable {
    location: String,
    password_file: Option<PathBuf>,
    password_command: Option<String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

/// Where `cista run` looks for profiles when no `--config` is given, in order:
/// `$XDG_CONFIG_HOME/cista/cista.toml` (or `~/.config/...`), then `/etc/cista/cista.toml`.
pub fn default_profile_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(d) = config_home {
        v.push(d.join("cista/cista.toml"));
    }
    v.push(PathBuf::from("/etc/cista/cista.toml"));
    v
}

/// The profile file: `given`, else the first of [`default_profile_files`] that exists.
pub fn profile_file(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let candidates = default_profile_files();
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| {
            let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            Error::Invalid(format!(
                "no profile file: give --config FILE, or create one of {}",
                list.join(", ")
            ))
        })
}

/// The profiles a file defines, by name.
pub fn list_profiles(file: &Path) -> Result<Vec<String>> {
    Ok(read_profiles(file)?.keys().cloned().collect())
}

/// Reads profile `name` from `file`, resolving `inherit` and checking every setting.
pub fn load_profile(file: &Path, name: &str) -> Result<Profile> {
    let all = read_profiles(file)?;
    let bad = |message: String| Error::Profile {
        file: file.to_path_buf(),
        message,
    };
    let table = resolve(&all, name, &mut Vec::new()).map_err(bad)?;
    let raw: RawProfile = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| bad(format!("profiles.{name}: {}", e.message())))?;
    raw.check(name, file).map_err(bad)
}

fn read_profiles(file: &Path) -> Result<toml::Table> {
    let bad = |message: String| Error::Profile {
        file: file.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| Error::io("read", file, e))?;
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.to_string()))?;
    for key in doc.keys() {
        if key != "profiles" && key != "version" {
            return Err(bad(format!(
                "unknown top-level setting {key:?} (profiles go in [profiles.NAME] tables)"
            )));
        }
    }
    match doc.get("version") {
        None => {}
        Some(toml::Value::Integer(1)) => {}
        Some(v) => {
            return Err(bad(format!(
                "version {v} is not supported (this cista reads 1)"
            )))
        }
    }
    match doc.remove("profiles") {
        Some(toml::Value::Table(t)) => Ok(t),
        None => Ok(toml::Table::new()),
        Some(_) => Err(bad(
            "`profiles` must be a table of [profiles.NAME] tables".into()
        )),
    }
}

/// Profile `name`'s settings over those it inherits (tables merged key by key, anything
/// else replaced).
fn resolve(
    all: &toml::Table,
    name: &str,
    seen: &mut Vec<String>,
) -> std::result::Result<toml::Table, String> {
    if seen.iter().any(|s| s == name) {
        seen.push(name.into());
        return Err(format!(
            "profiles inherit in a cycle: {}",
            seen.join(" -> ")
        ));
    }
    seen.push(name.into());
    let Some(v) = all.get(name) else {
        let names: Vec<&str> = all.keys().map(String::as_str).collect();
        return Err(match seen.len() {
            1 => format!("no profile {name:?} (it has: {})", names.join(", ")),
            _ => format!(
                "profile {:?} inherits {name:?}, which does not exist",
                seen[0]
            ),
        });
    };
    let toml::Value::Table(own) = v else {
        return Err(format!("profiles.{name} must be a table"));
    };
    let mut out = match own.get("inherit") {
        Some(toml::Value::String(parent)) => resolve(all, parent, seen)?,
        Some(_) => return Err(format!("profiles.{name}.inherit must be a profile name")),
        None => toml::Table::new(),
    };
    merge(&mut out, own.clone());
    Ok(out)
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl RawProfile {
    fn check(self, name: &str, file: &Path) -> std::result::Result<Profile, String> {
        let at = |key: &str| format!("profiles.{name}.{key}");
        let repositories = self.repositories_checked(name)?;
        if self.paths.is_empty() && self.commands.is_empty() && self.files_from.is_empty() {
            return Err(format!(
                "profile {name:?} backs up nothing: give `paths`, `files-from` or `commands`"
            ));
        }
        if let Some(s) = &self.exclude_larger_than {
            crate::util::parse_size(s)
                .map_err(|e| format!("{}: {e}", at("exclude-larger-than")))?;
        }
        let mut names = std::collections::HashSet::new();
        for c in &self.commands {
            let p = Path::new(&c.name);
            let plain = p
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if c.name.is_empty() || !plain {
                return Err(format!(
                    "{}: name {:?} must be a relative path without `..` (e.g. db/app.sql)",
                    at("commands"),
                    c.name
                ));
            }
            if !names.insert(&c.name) {
                return Err(format!(
                    "{}: name {:?} is given twice",
                    at("commands"),
                    c.name
                ));
            }
        }
        if let Some(r) = &self.retention {
            r.check(&at("retention"))?;
        }
        if let Some(d) = &self.drill {
            if !(0.0..=1.0).contains(&d.fraction) {
                return Err(format!(
                    "{}: {} is not between 0 and 1",
                    at("drill.fraction"),
                    d.fraction
                ));
            }
        }
        let duration =
            |key: &str, v: &Option<String>| -> std::result::Result<Option<Duration>, String> {
                v.as_deref()
                    .map(|s| {
                        humantime::parse_duration(s).map_err(|e| format!("{}: {s:?}: {e}", at(key)))
                    })
                    .transpose()
            };
        let timeout = duration("timeout", &self.timeout)?;
        let hook_timeout =
            duration("hook-timeout", &self.hook_timeout)?.unwrap_or(Duration::from_secs(300));
        Ok(Profile {
            name: name.into(),
            file: file.to_path_buf(),
            repositories,
            host: self.host,
            tags: self.tags,
            paths: self.paths,
            exclude: self.exclude,
            exclude_file: self.exclude_file,
            iexclude: self.iexclude,
            exclude_caches: self.exclude_caches,
            exclude_if_present: self.exclude_if_present,
            exclude_larger_than: self.exclude_larger_than,
            files_from: self.files_from,
            one_file_system: self.one_file_system,
            commands: self.commands,
            allow_empty: self.allow_empty,
            retention: self.retention,
            check: self.check,
            drill: self.drill,
            hooks: self.hooks,
            timeout,
            hook_timeout,
            receipt_dir: self.receipt_dir,
            metrics_file: self.metrics_file,
            cache_dir: self.cache_dir,
        })
    }

    /// `repository` and `repositories` as one list; a repository without a password source
    /// of its own takes the profile's.
    fn repositories_checked(
        &self,
        name: &str,
    ) -> std::result::Result<Vec<ProfileRepository>, String> {
        let raw: Vec<&RawRepository> = self.repository.iter().chain(&self.repositories).collect();
        if raw.is_empty() {
            return Err(format!(
                "profile {name:?} names no repository: give `repository` or `repositories`"
            ));
        }
        let mut out = Vec::new();
        for r in raw {
            let mut p = match r {
                RawRepository::Location(l) => ProfileRepository {
                    location: l.clone(),
                    ..Default::default()
                },
                RawRepository::Full(t) => ProfileRepository {
                    location: t.location.clone(),
                    password_file: t.password_file.clone(),
                    password_command: t.password_command.clone(),
                    options: t.options.clone(),
                },
            };
            if p.password_file.is_none() && p.password_command.is_none() {
                p.password_file = self.password_file.clone();
                p.password_command = self.password_command.clone();
            }
            for (k, v) in &self.options {
                p.options.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if out
                .iter()
                .any(|o: &ProfileRepository| o.location == p.location)
            {
                return Err(format!(
                    "profiles.{name}: repository {} is named twice",
                    crate::commands::redact_location(&p.location)
                ));
            }
            out.push(p);
        }
        Ok(out)
    }
}

impl Retention {
    /// The count rules by setting name (`keep-last`, ... , also forget's flag names).
    pub fn counts(&self) -> [(&'static str, Option<i64>); 6] {
        [
            ("keep-last", self.keep_last),
            ("keep-hourly", self.keep_hourly),
            ("keep-daily", self.keep_daily),
            ("keep-weekly", self.keep_weekly),
            ("keep-monthly", self.keep_monthly),
            ("keep-yearly", self.keep_yearly),
        ]
    }

    /// The span rules by setting name (`keep-within`, `keep-within-hourly`, ...).
    pub fn spans(&self) -> [(&'static str, Option<&str>); 6] {
        [
            ("keep-within", self.keep_within.as_deref()),
            ("keep-within-hourly", self.keep_within_hourly.as_deref()),
            ("keep-within-daily", self.keep_within_daily.as_deref()),
            ("keep-within-weekly", self.keep_within_weekly.as_deref()),
            ("keep-within-monthly", self.keep_within_monthly.as_deref()),
            ("keep-within-yearly", self.keep_within_yearly.as_deref()),
        ]
    }

    fn check(&self, at: &str) -> std::result::Result<(), String> {
        let counts = self.counts();
        for (k, v) in counts {
            if v.is_some_and(|n| n < -1) {
                return Err(format!("{at}.{k}: a count is -1 (unlimited) or more"));
            }
        }
        let spans = self.spans();
        for (k, v) in spans {
            if let Some(s) = v {
                s.parse::<Within>().map_err(|e| format!("{at}.{k}: {e}"))?;
            }
        }
        let keeps_something = counts.iter().any(|(_, v)| v.is_some())
            || spans.iter().any(|(_, v)| v.is_some())
            || !self.keep_tag.is_empty();
        if !keeps_something {
            return Err(format!("{at}: no keep-* rule: it would keep nothing"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
