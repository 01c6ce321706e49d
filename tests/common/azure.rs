//! A real Azure Blob Storage emulator for tests: Azurite (npm package `azurite@3`) on a free
//! loopback port, in memory, with one container per test. `scripts/test.sh` installs it into
//! `target/test-tools` when it is missing.

use super::server::start_watched;
use std::path::PathBuf;
use std::process::Child;
use std::sync::OnceLock;

use base64::Engine;

use super::s3::{free_port, http};

/// Azurite's well-known development account and key (public: the emulator accepts nothing
/// else by default).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct AzureServer {
    pub port: u16,
    _child: Child,
}

/// Where `scripts/test.sh` installs Azurite, unless `AZURITE_BLOB` names the binary.
fn binary() -> PathBuf {
    std::env::var_os("AZURITE_BLOB").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/test-tools/node_modules/.bin/azurite-blob")
        },
        PathBuf::from,
    )
}

/// Starts (once per test binary) the emulator.
pub fn server() -> &'static AzureServer {
    static S: OnceLock<AzureServer> = OnceLock::new();
    S.get_or_init(|| {
        let bin = binary();
        assert!(
            bin.exists(),
            "the Azure test server (Azurite) is not installed at {}: run scripts/test.sh, or \
             npm install --prefix target/test-tools azurite@3 (or set AZURITE_BLOB to azurite-blob)",
            bin.display()
        );
        let port = free_port();
        // Data in memory (at most 1 GiB), no telemetry: tests talk to loopback only.
        let child = start_watched(
            &format!(
                "'{}' --blobHost 127.0.0.1 --blobPort {port} --inMemoryPersistence \
                 --extentMemoryLimit 1024 --skipApiVersionCheck --loose --silent --disableTelemetry",
                bin.display()
            ),
            port,
            &format!("the Azure test server (Azurite, {})", bin.display()),
        );
        AzureServer {
            port,
            _child: child,
        }
    })
}

/// Shared Key authorization for one request without a body (object_store creates no
/// containers, so the tests sign the one call they need themselves).
fn shared_key(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    ms_headers: &[(&str, &str)],
) -> String {
    let mut headers: Vec<_> = ms_headers.to_vec();
    headers.sort();
    let mut s = format!("{method}\n\n\n\n\n\n\n\n\n\n\n\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(&format!("/{ACCOUNT}{path}"));
    let mut query = query.to_vec();
    query.sort();
    for (k, v) in query {
        s.push_str(&format!("\n{k}:{v}"));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &b64.decode(KEY).unwrap());
    let sig = aws_lc_rs::hmac::sign(&key, s.as_bytes());
    format!("SharedKey {ACCOUNT}:{}", b64.encode(sig.as_ref()))
}

/// Creates a fresh container and returns its name.
pub fn container(name: &str) -> String {
    let port = server().port;
    let c = format!("{name}-{}", std::process::id());
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&jiff::Timestamp::now())
        .unwrap();
    let ms = [("x-ms-date", date.as_str()), ("x-ms-version", "2021-08-06")];
    let path = format!("/{ACCOUNT}/{c}");
    let auth = shared_key("PUT", &path, &[("restype", "container")], &ms);
    let mut headers = ms.to_vec();
    headers.push(("Authorization", &auth));
    let code = http(
        port,
        "PUT",
        &format!("{path}?restype=container"),
        &headers,
        b"",
    );
    assert_eq!(code, 201, "creating container {c}");
    c
}

/// Environment for the cista binary and object_store: the emulator's endpoint and an explicit
/// account key, so no other credential (managed identity, CLI) is ever tried.
pub fn env_vars() -> Vec<(&'static str, String)> {
    let srv = server();
    vec![
        ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
        (
            "AZURITE_BLOB_STORAGE_URL",
            format!("http://127.0.0.1:{}", srv.port),
        ),
        ("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT.into()),
        ("AZURE_STORAGE_ACCOUNT_KEY", KEY.into()),
    ]
}
