//! Receipts: one JSON document per run, for success and failure alike, saying what ran on which
//! repository, what it produced and which integrity checks it ran with their results. The
//! schema is `docs/receipt.schema.json`; a receipt never holds a password or a credential.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// The `schema` of every receipt.
pub const RECEIPT_SCHEMA: &str = "cista.receipt";
/// Bumped when a field changes meaning or goes; new optional fields keep it.
pub const RECEIPT_VERSION: u32 = 1;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Success,
    /// Done, with some inputs left out (backup's exit 3).
    Partial,
    Failure,
}

/// The repository a run worked on.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct RepositoryRef {
    /// `None` when the run failed before the repository opened.
    pub id: Option<String>,
    /// The location with any credentials removed (see [`redact_location`]).
    pub location: String,
}

impl RepositoryRef {
    /// `location` is stored without credentials.
    pub fn new(id: Option<String>, location: &str) -> RepositoryRef {
        RepositoryRef {
            id,
            location: redact_location(location),
        }
    }
}

/// One integrity check a run made, and what it found.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct CheckRun {
    /// `structure`, `read_data`, `read_data_subset`, `restore_verify`, `dump_digest`, …
    pub name: String,
    /// `passed` or `failed`.
    pub result: String,
    /// When the check finished (RFC 3339).
    pub validated_at: String,
    /// What it covered or found, in a few words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl CheckRun {
    pub fn new(name: &str, passed: bool, detail: Option<String>) -> CheckRun {
        CheckRun {
            name: name.into(),
            result: if passed { "passed" } else { "failed" }.into(),
            validated_at: crate::util::now_string(),
            detail,
        }
    }
}

/// What a check or drill recorded, and how fresh the newest snapshot's verification is:
/// the source of the `cista_latest_snapshot_*` metrics.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct VerificationNote {
    /// The verification record the run stored (`verifications/<id>`); `None` when it stored
    /// none.
    pub record: Option<String>,
    /// The repository's newest snapshot and its time.
    pub latest_snapshot_id: Option<String>,
    pub latest_snapshot_time: Option<String>,
    /// When a passed record last covered that snapshot; `None` when none did.
    pub latest_snapshot_verified_at: Option<String>,
}

/// A stream a backup stored (standard input, a command's output), with its digests.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Artifact {
    /// The file name it has in the snapshot.
    pub name: String,
    pub bytes: u64,
    /// Hex digests of the content.
    pub blake3: String,
    pub sha256: String,
}

impl Artifact {
    pub fn new(name: &str, bytes: u64, blake3: String, sha256: String) -> Artifact {
        Artifact {
            name: name.into(),
            bytes,
            blake3,
            sha256,
        }
    }
}

/// The receipt of one run.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Receipt {
    pub schema: &'static str,
    pub schema_version: u32,
    pub program_version: String,
    /// The subcommand (`backup`, `restore`, …).
    pub command: String,
    /// The command line with secrets replaced by `<redacted>`.
    pub arguments: Vec<String>,
    pub repository: Option<RepositoryRef>,
    pub snapshot_id: Option<String>,
    pub parent_id: Option<String>,
    /// The snapshot's root tree id: the Merkle root every stored byte hangs from.
    pub tree_id: Option<String>,
    pub started_at: String,
    pub completed_at: String,
    pub duration_seconds: f64,
    pub status: RunStatus,
    pub exit_code: u8,
    pub error: Option<String>,
    /// Files, bytes, blobs, packs: what the run counted, by name.
    pub counts: BTreeMap<String, u64>,
    pub checks: Vec<CheckRun>,
    /// Check and drill: their verification record and the newest snapshot's freshness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationNote>,
    pub artifacts: Vec<Artifact>,
    pub host: String,
    pub user: String,
    /// The profile of `cista run NAME` (in its receipt and its steps').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `cista run`: each step and hook, in the order they ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRecord>,
}

/// One step (a cista command) or hook of a `cista run`.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct StepRecord {
    /// `backup`, `copy`, `forget`, `check`, `drill`, or `hook:run-before` (…).
    pub name: String,
    /// The location it worked on, without credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub exit_code: u8,
    pub status: RunStatus,
    pub error: Option<String>,
    pub duration_seconds: f64,
    /// The step's own receipt, as it wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<serde_json::Value>,
}

impl StepRecord {
    pub fn new(
        name: &str,
        exit_code: u8,
        error: Option<String>,
        duration_seconds: f64,
    ) -> StepRecord {
        StepRecord {
            name: name.into(),
            repository: None,
            exit_code,
            status: RunStatus::of(exit_code, &error),
            error,
            duration_seconds,
            receipt: None,
        }
    }
}

impl RunStatus {
    /// 0 is success, 3 (some inputs left out) partial, anything else or an error failure.
    pub fn of(exit_code: u8, error: &Option<String>) -> RunStatus {
        match (exit_code, error) {
            (0, None) => RunStatus::Success,
            (3, None) => RunStatus::Partial,
            _ => RunStatus::Failure,
        }
    }
}

impl Receipt {
    /// An empty receipt for `command`, started now.
    pub fn start(command: &str, arguments: Vec<String>) -> Receipt {
        Receipt {
            schema: RECEIPT_SCHEMA,
            schema_version: RECEIPT_VERSION,
            program_version: format!("cista {}", env!("CARGO_PKG_VERSION")),
            command: command.into(),
            arguments,
            repository: None,
            snapshot_id: None,
            parent_id: None,
            tree_id: None,
            started_at: crate::util::now_string(),
            completed_at: String::new(),
            duration_seconds: 0.0,
            status: RunStatus::Failure,
            exit_code: 1,
            error: None,
            counts: BTreeMap::new(),
            checks: Vec::new(),
            verification: None,
            artifacts: Vec::new(),
            host: crate::util::hostname(),
            user: crate::util::username(),
            profile: None,
            steps: Vec::new(),
        }
    }

    /// Records how the run ended.
    pub fn finish(&mut self, exit_code: u8, error: Option<String>, duration_seconds: f64) {
        self.completed_at = crate::util::now_string();
        self.duration_seconds = duration_seconds;
        self.exit_code = exit_code;
        self.status = RunStatus::of(exit_code, &error);
        self.error = error;
    }

    /// Writes the receipt to `path` atomically (a temporary file beside it, synced, renamed),
    /// so a reader never sees half a receipt.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut doc =
            serde_json::to_vec_pretty(self).map_err(|e| Error::Invalid(format!("receipt: {e}")))?;
        doc.push(b'\n');
        write_atomic(path, &doc)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced, then
/// renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let r = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("write", path, e));
    }
    Ok(())
}

/// A repository location without credentials: `scheme://user:secret@host/…` loses its user
/// part, and a query string goes (object store URLs may carry signed tokens there).
pub fn redact_location(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if path.is_empty() && !rest.contains('/') {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}/{path}")
    }
}

/// Whether a setting's name says it holds a secret (`aws_secret_access_key`, a token, …).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "key",
        "credential",
        "sas",
        "signature",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// `argv` with secret values replaced: the password command's text (it may be
/// `echo hunter2`), secret `-o key=value` settings and credentials in locations.
pub fn redact_arguments(argv: &[String]) -> Vec<String> {
    const SECRET_FLAGS: [&str; 2] = ["--password-command", "--from-password-command"];
    const OPTION_FLAGS: [&str; 3] = ["-o", "--option", "--from-option"];
    const LOCATION_FLAGS: [&str; 3] = ["-r", "--repo", "--from-repo"];
    let mut out = Vec::with_capacity(argv.len());
    let mut next: Option<&str> = None;
    for a in argv {
        if let Some(flag) = next.take() {
            out.push(redact_value(flag, a));
            continue;
        }
        if let Some((flag, value)) = a.split_once('=').filter(|(f, _)| f.starts_with("--")) {
            out.push(format!("{flag}={}", redact_value(flag, value)));
            continue;
        }
        let takes_value = SECRET_FLAGS.contains(&a.as_str())
            || OPTION_FLAGS.contains(&a.as_str())
            || LOCATION_FLAGS.contains(&a.as_str());
        if takes_value {
            next = Some(match a.as_str() {
                f if SECRET_FLAGS.contains(&f) => "--password-command",
                f if OPTION_FLAGS.contains(&f) => "--option",
                _ => "--repo",
            });
        }
        out.push(a.clone());
    }
    out
}

fn redact_value(flag: &str, value: &str) -> String {
    match flag {
        "--password-command" | "--from-password-command" => "<redacted>".into(),
        "-o" | "--option" | "--from-option" => match value.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}=<redacted>"),
            _ => value.to_string(),
        },
        "-r" | "--repo" | "--from-repo" => redact_location(value),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let got = redact_arguments(&v(&[
            "cista",
            "-r",
            "s3://AKIA:hunter2@minio.local/bucket/repo?X-Amz-Signature=abc",
            "--password-command",
            "echo hunter2",
            "-o",
            "aws_secret_access_key=hunter2",
            "--option=aws_endpoint=http://127.0.0.1:9000",
            "--from-password-command=pass show x",
            "backup",
            "/etc",
        ]));
        let joined = got.join(" ");
        assert!(
            !joined.contains("hunter2") && !joined.contains("abc"),
            "{joined}"
        );
        assert!(!joined.contains("pass show"), "{joined}");
        assert!(joined.contains("s3://minio.local/bucket/repo"), "{joined}");
        assert!(
            joined.contains("aws_endpoint=http://127.0.0.1:9000"),
            "{joined}"
        );
        assert!(joined.ends_with("backup /etc"), "{joined}");
        assert_eq!(redact_location("/srv/repo"), "/srv/repo");
        assert_eq!(redact_location("s3://bucket/prefix"), "s3://bucket/prefix");
    }

    #[test]
    fn a_receipt_is_written_whole_and_says_how_the_run_ended() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        let mut r = Receipt::start("check", v(&["cista", "check"]));
        r.checks.push(CheckRun::new("structure", true, None));
        r.finish(0, None, 0.5);
        r.write(&p).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back["schema"], RECEIPT_SCHEMA);
        assert_eq!(back["status"], "success");
        assert_eq!(back["checks"][0]["result"], "passed");
        r.finish(3, None, 0.5);
        assert_eq!(r.status, RunStatus::Partial);
        r.finish(1, Some("boom".into()), 0.5);
        assert_eq!(r.status, RunStatus::Failure);
        // Only the receipt is left in the directory: no temporary file.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
