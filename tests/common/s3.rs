//! A real S3-compatible server for tests: moto's server mode on a free loopback port, with one
//! bucket per test. `.ci/run` and `scripts/test.sh` install it (`pip install 'moto[server]'`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::sync::OnceLock;

pub use super::server::free_port;
use super::server::start_watched;

pub struct S3Server {
    pub port: u16,
    _child: Child,
}

/// Starts (once per test binary) the server.
pub fn server() -> &'static S3Server {
    static S: OnceLock<S3Server> = OnceLock::new();
    S.get_or_init(|| {
        let port = free_port();
        let child = start_watched(
            &format!("python3 -m moto.server -H 127.0.0.1 -p {port}"),
            port,
            "the S3 test server (moto; pip install 'moto[server]', as scripts/test.sh does)",
        );
        S3Server {
            port,
            _child: child,
        }
    })
}

/// Sends one unsigned HTTP request (moto does not check signatures) and returns the status.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    http_body(port, method, path, headers, body).0
}

/// Like `http`, also returning the response (headers and body) as text.
pub fn http_body(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, resp)
}

/// Multipart uploads started in `bucket` and neither completed nor aborted.
pub fn pending_uploads(bucket: &str) -> usize {
    let (code, body) = http_body(
        server().port,
        "GET",
        &format!("/{bucket}?uploads"),
        &[],
        b"",
    );
    assert_eq!(code, 200, "{body}");
    body.matches("<UploadId>").count()
}

/// An object_store client for a bucket of the test server, for tests that wrap the store.
pub fn store(bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{}", server().port))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_metadata_endpoint("http://127.0.0.1:9")
        .build()
        .unwrap()
}

/// Creates a fresh bucket and returns its name.
pub fn bucket(name: &str) -> String {
    let srv = server();
    let b = format!("{name}-{}", std::process::id());
    let code = http(srv.port, "PUT", &format!("/{b}"), &[], b"");
    assert!(code == 200, "creating bucket {b}: HTTP {code}");
    b
}

/// Creates a bucket with S3 Object Lock and a default retention.
pub fn locked_bucket(name: &str, days: u32) -> String {
    let srv = server();
    let b = format!("{name}-{}", std::process::id());
    let code = http(
        srv.port,
        "PUT",
        &format!("/{b}"),
        &[("x-amz-bucket-object-lock-enabled", "true")],
        b"",
    );
    assert!(code == 200, "creating bucket {b}: HTTP {code}");
    let cfg = format!(
        "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>{days}</Days></DefaultRetention></Rule></ObjectLockConfiguration>"
    );
    let code = http(
        srv.port,
        "PUT",
        &format!("/{b}?object-lock"),
        &[],
        cfg.as_bytes(),
    );
    assert!(code == 200, "setting object lock on {b}: HTTP {code}");
    b
}

/// Environment for the cista binary and object_store.
pub fn env_vars() -> Vec<(&'static str, String)> {
    let srv = server();
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", srv.port)),
        ("AWS_ALLOW_HTTP", "true".into()),
        // Never fall back to the cloud's instance metadata service: tests talk to loopback only.
        ("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9".into()),
    ]
}
