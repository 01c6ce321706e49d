//! Object stores (S3, GCS, Azure Blob, and anything `object_store` speaks) behind the same
//! `Backend` trait as local disk.
//!
//! Writes use a conditional create (`If-None-Match: *`) so nothing is ever overwritten; where a
//! store does not implement it, a HEAD check precedes a plain put, which is harmless because
//! every name but `config` is the hash of its content. Objects larger than
//! `MULTIPART_THRESHOLD` go up as multipart uploads; a failed one is aborted, and an upload that
//! is never completed is invisible to listings, so a half-written object is never taken for
//! data. Transient errors are retried with jittered exponential backoff by `object_store`'s
//! client, for up to `RETRY_TIMEOUT`.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};

use super::{is_object_name, object_path, Backend, FileType};
use crate::error::{Error, Result};

/// Objects above this size are uploaded in parts (`-o multipart-threshold=BYTES` changes it).
pub const MULTIPART_THRESHOLD: usize = 64 << 20;
const PART_SIZE: usize = 16 << 20;
/// Uploads in flight during a backup unless `-o connections=N` says otherwise.
pub const DEFAULT_CONNECTIONS: usize = 4;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    /// The same store as S3, for the signed requests object_store has no call for.
    s3: Option<object_store::aws::AmazonS3>,
    http: std::sync::OnceLock<reqwest::Client>,
    prefix: String,
    location: String,
    rt: tokio::runtime::Runtime,
    connections: usize,
    multipart_threshold: usize,
}

/// Applies `-o key=value` options to a store builder; `K` is the store's configuration key type,
/// so an unknown key is refused by name.
fn configure<B, K>(
    mut b: B,
    options: &[(String, String)],
    bad: &dyn Fn(String) -> Error,
    set: impl Fn(B, K, &str) -> B,
) -> Result<B>
where
    K: std::str::FromStr,
    K::Err: std::fmt::Display,
{
    for (k, v) in options {
        let key = k.parse().map_err(|e| bad(format!("option {k}: {e}")))?;
        b = set(b, key, v);
    }
    Ok(b)
}

/// Settings of cista's own that `-o` accepts beside the store's configuration keys.
struct Tuning {
    connections: usize,
    multipart_threshold: usize,
}

fn split_tuning(
    options: &[(String, String)],
    bad: &dyn Fn(String) -> Error,
) -> Result<(Tuning, Vec<(String, String)>)> {
    let mut t = Tuning {
        connections: DEFAULT_CONNECTIONS,
        multipart_threshold: MULTIPART_THRESHOLD,
    };
    let mut rest = Vec::new();
    for (k, v) in options {
        let num = || {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(format!("option {k}={v}: expected a positive number")))
        };
        match k.as_str() {
            "connections" => t.connections = num()?,
            "multipart-threshold" => t.multipart_threshold = num()?.max(5 << 20),
            _ => rest.push((k.clone(), v.clone())),
        }
    }
    Ok((t, rest))
}

/// Whether a store's error says the bucket or container itself is missing (S3's
/// `NoSuchBucket`, Azure's `ContainerNotFound`, GCS's "bucket does not exist"), as opposed to
/// an object under it.
fn is_missing_container(e: &object_store::Error) -> bool {
    let t = e.to_string();
    ["NoSuchBucket", "ContainerNotFound", "bucket does not exist"]
        .iter()
        .any(|m| t.contains(m))
        || matches!(e, object_store::Error::NotFound { .. })
}

impl std::fmt::Debug for ObjectStoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStoreBackend({})", self.location)
    }
}

/// A request the store may or may not have carried out: the connection was cut, or timed
/// out, after it was sent. object_store retries only idempotent requests then, and a
/// create-only put is not one, so a store restarting mid-upload failed the backup at once.
fn cut_off(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(h) = x.downcast_ref::<HttpError>() {
            return matches!(
                h.kind(),
                HttpErrorKind::Interrupted | HttpErrorKind::Timeout | HttpErrorKind::Unknown
            );
        }
        cur = x.source();
    }
    false
}

fn io_err(e: object_store::Error) -> std::io::Error {
    let kind = io_err_kind(&e);
    std::io::Error::new(kind, e.to_string())
}

fn io_err_kind(e: &object_store::Error) -> std::io::ErrorKind {
    use std::io::ErrorKind;
    match e {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            ErrorKind::AlreadyExists
        }
        object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. } => {
            ErrorKind::Unsupported
        }
        _ => ErrorKind::Other,
    }
}

/// S3 asks puts into Object Lock buckets to name their checksum algorithm the way the AWS SDKs
/// do; the checksum itself is the `x-amz-checksum-sha256` header object_store sends.
fn checksum_headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-sdk-checksum-algorithm",
        http::HeaderValue::from_static("SHA256"),
    );
    h
}

/// How long a request is retried before the command fails with the store's error.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(180);

/// Retries bounded by time rather than by count: ten retries with object_store's jittered backoff
/// were spent in about 1.5 s, so a store restarting for a few seconds aborted a backup. The
/// backoff doubles (with jitter) from 100 ms up to 15 s between tries, so a 10-second outage
/// costs about one backoff step after it ends, and a dead store fails after `RETRY_TIMEOUT`.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        // The time bound comes first in practice (about 20 tries fit in 180 s once the
        // backoff reaches its cap); the count only keeps the log's "retry N of M" readable.
        max_retries: 100,
        retry_timeout: RETRY_TIMEOUT,
    }
}

impl ObjectStoreBackend {
    /// Opens `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`, configured
    /// from the store's standard environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`) and
    /// then from `options` (`key=value` pairs in `object_store`'s configuration key names).
    pub fn open(url: &str, options: &[(String, String)]) -> Result<ObjectStoreBackend> {
        let bad = |m: String| Error::Invalid(format!("repository location {url:?}: {m}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("no scheme".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket or container".into()));
        }
        let base = format!("{scheme}://{bucket}");
        let (tuning, options) = split_tuning(options, &bad)?;
        let options = &options[..];
        let mut s3 = None;
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => {
                // A SHA-256 checksum on every upload: the store verifies what arrived, and buckets
                // with Object Lock require one on every put.
                // Client options first: the AWS_* variables below then adjust them (allow_http…).
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_client_options(
                        object_store::ClientOptions::new().with_default_headers(checksum_headers()),
                    )
                    .with_retry(retry())
                    .with_checksum_algorithm(object_store::aws::Checksum::SHA256);
                for (k, v) in std::env::vars() {
                    if let Some(rest) = k.strip_prefix("AWS_") {
                        if let Ok(key) = format!("aws_{}", rest.to_ascii_lowercase()).parse() {
                            b = b.with_config(key, v);
                        }
                    }
                }
                let mut b = b.with_url(&base);
                // AWS_REGION is the ecosystem's usual name; object_store reads AWS_DEFAULT_REGION too.
                if let Ok(r) = std::env::var("AWS_REGION") {
                    b = b.with_region(r);
                }
                let b = configure(b, options, &bad, |b, k, v| b.with_config(k, v))?;
                let built = b.build().map_err(|e| bad(e.to_string()))?;
                s3 = Some(built.clone());
                Arc::new(built)
            }
            "gs" => {
                let b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(&base)
                    .with_retry(retry());
                let b = configure(b, options, &bad, |b, k, v| b.with_config(k, v))?;
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(&base)
                    .with_retry(retry());
                let b = configure(b, options, &bad, |b, k, v| b.with_config(k, v))?;
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            other => {
                return Err(bad(format!(
                    "unknown scheme {other}:// (use s3://, gs:// or az://)"
                )))
            }
        };
        let mut be = ObjectStoreBackend::from_store(store, prefix, url)?
            .with_connections(tuning.connections)
            .with_multipart_threshold(tuning.multipart_threshold);
        be.s3 = s3;
        Ok(be)
    }

    /// A backend over any `object_store` implementation, objects under `prefix`; `location`
    /// names it in messages. Used by `open` and by tests that wrap a store to inject faults.
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        location: &str,
    ) -> Result<ObjectStoreBackend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("cista-io")
            .build()
            .map_err(|e| Error::io("start I/O runtime", "", e))?;
        Ok(ObjectStoreBackend {
            store,
            s3: None,
            http: std::sync::OnceLock::new(),
            prefix: prefix.trim_matches('/').to_string(),
            location: location.to_string(),
            rt,
            connections: DEFAULT_CONNECTIONS,
            multipart_threshold: MULTIPART_THRESHOLD,
        })
    }

    /// Uploads in flight during a backup.
    pub fn with_connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// Objects above `n` bytes go up as multipart uploads.
    pub fn with_multipart_threshold(mut self, n: usize) -> Self {
        self.multipart_threshold = n;
        self
    }

    /// The bucket or container named by the location (`s3://bucket/prefix`).
    fn container(&self) -> &str {
        let rest = self.location.split_once("://").map_or("", |x| x.1);
        rest.split('/').next().unwrap_or(rest)
    }

    fn path(&self, t: FileType, name: &str) -> StorePath {
        self.join(&object_path(t, name))
    }

    fn join(&self, rel: &str) -> StorePath {
        if self.prefix.is_empty() {
            StorePath::from(rel)
        } else {
            StorePath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// One create-only put (multipart above the threshold), as object_store retries it:
    /// failures before the request was sent and 5xx answers, not a request cut off midway.
    async fn put_once(&self, p: &StorePath, data: &[u8]) -> object_store::Result<()> {
        if data.len() > self.multipart_threshold {
            return self.put_large(p, data).await;
        }
        let payload = PutPayload::from(bytes::Bytes::copy_from_slice(data));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(p, payload.clone(), opts).await {
            Err(object_store::Error::NotImplemented { .. })
            | Err(object_store::Error::NotSupported { .. }) => match self.store.head(p).await {
                Ok(_) => Err(object_store::Error::AlreadyExists {
                    path: p.to_string(),
                    source: "object exists".into(),
                }),
                Err(object_store::Error::NotFound { .. }) => {
                    self.store.put(p, payload).await.map(|_| ())
                }
                Err(e) => Err(e),
            },
            r => r.map(|_| ()),
        }
    }

    async fn put_large(&self, p: &StorePath, data: &[u8]) -> object_store::Result<()> {
        // Multipart uploads cannot be conditional everywhere: check first. The name is the
        // content's hash, so a racing writer stores the same bytes.
        match self.store.head(p).await {
            Ok(_) => {
                return Err(object_store::Error::AlreadyExists {
                    path: p.to_string(),
                    source: "object exists".into(),
                })
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut upload = self.store.put_multipart(p).await?;
        let parts = async {
            let mut in_flight = futures::stream::FuturesUnordered::new();
            for part in data.chunks(PART_SIZE) {
                if in_flight.len() >= PARTS_IN_FLIGHT {
                    in_flight.try_next().await?;
                }
                in_flight
                    .push(upload.put_part(PutPayload::from(bytes::Bytes::copy_from_slice(part))));
            }
            while in_flight.try_next().await?.is_some() {}
            Ok::<(), object_store::Error>(())
        }
        .await;
        let result = match parts {
            Ok(()) => upload.complete().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let Err(e) = result else { return Ok(()) };
        // The completion may have landed with only its answer lost: then the object is whole
        // (the store assembles it atomically) and there is nothing to abort.
        if let Ok(meta) = self.store.head(p).await {
            if meta.size == data.len() as u64 {
                return Ok(());
            }
        }
        // An upload left pending is invisible to listings but costs storage; abort it.
        if let Err(a) = upload.abort().await {
            tracing::warn!("aborting the multipart upload of {p} failed: {a}");
        }
        Err(e)
    }

    async fn head_lock(&self, p: &StorePath) -> Result<Option<super::Retention>> {
        use object_store::signer::Signer;
        let Some(s3) = &self.s3 else { return Ok(None) };
        let failed = |m: String| Error::Backend {
            op: "read retention of",
            path: p.to_string(),
            source: std::io::Error::other(m),
        };
        let url = s3
            .signed_url(http::Method::HEAD, p, Duration::from_secs(300))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let client = self.http.get_or_init(reqwest::Client::new);
        let resp = client
            .head(url)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(failed(format!("HTTP {}", resp.status())));
        }
        let h = resp.headers();
        let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
        if get("x-amz-object-lock-legal-hold") == Some("ON") {
            return Ok(Some(super::Retention {
                mode: "LEGAL HOLD".into(),
                until: None,
            }));
        }
        let until = get("x-amz-object-lock-retain-until-date")
            .and_then(|d| d.parse::<jiff::Timestamp>().ok());
        Ok(match (get("x-amz-object-lock-mode"), until) {
            (Some(mode), Some(until)) if until > jiff::Timestamp::now() => Some(super::Retention {
                mode: mode.to_string(),
                until: Some(until),
            }),
            _ => None,
        })
    }
}

impl Backend for ObjectStoreBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        Ok(())
    }

    fn probe(&self) -> Result<()> {
        let prefix = (!self.prefix.is_empty()).then(|| StorePath::from(self.prefix.as_str()));
        let r = self
            .rt
            .block_on(self.store.list_with_delimiter(prefix.as_ref()));
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_missing_container(&e) => Err(Error::ContainerNotFound {
                container: self.container().to_string(),
                location: self.location.clone(),
            }),
            Err(e) => Err(super::backend_err("list", FileType::Config, "", io_err(e))),
        }
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        let err = |e| super::backend_err("read", t, name, io_err(e));
        self.rt.block_on(async {
            let r = self.store.get(&p).await.map_err(err)?;
            // The size comes with the response headers: a planted giant object is refused
            // before its body is read.
            super::check_read_len(t, name, r.meta.size)?;
            let b = r.bytes().await.map_err(err)?;
            super::check_read_len(t, name, b.len() as u64)?;
            Ok(b.to_vec())
        })
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        let b = self
            .rt
            .block_on(self.store.get_range(&p, offset..offset + length))
            .map_err(|e| super::backend_err("read range", t, name, io_err(e)))?;
        if b.len() as u64 != length {
            return Err(super::backend_err(
                "read range",
                t,
                name,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("got {} of {length} bytes", b.len()),
                ),
            ));
        }
        Ok(b.to_vec())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let p = self.path(t, name);
        let start = std::time::Instant::now();
        let mut pause = Duration::from_millis(200);
        let mut retried = false;
        loop {
            let r = self.rt.block_on(self.put_once(&p, data));
            match r {
                Ok(()) => return Ok(()),
                // An attempt cut off earlier may have landed: the same bytes under the name
                // are this write, done (names are content hashes, or a lock's random id).
                Err(e) if retried && io_err_kind(&e) == std::io::ErrorKind::AlreadyExists => {
                    let same = self
                        .rt
                        .block_on(async { self.store.get(&p).await?.bytes().await })
                        .is_ok_and(|b| b.as_ref() == data);
                    if same {
                        return Ok(());
                    }
                    return Err(super::backend_err("write", t, name, io_err(e)));
                }
                Err(e) if cut_off(&e) && start.elapsed() + pause < RETRY_TIMEOUT => {
                    tracing::info!("write {name}: {e}; trying again in {pause:?}");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(15));
                    retried = true;
                }
                Err(e) => return Err(super::backend_err("write", t, name, io_err(e))),
            }
        }
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let dir = if t == FileType::Config {
            String::new()
        } else {
            t.dir().to_string()
        };
        let prefix = if dir.is_empty() && self.prefix.is_empty() {
            None
        } else {
            Some(self.join(&dir))
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(self.store.list(prefix.as_ref()).try_collect())
            .map_err(|e| super::backend_err("list", t, "", io_err(e)))?;
        let mut out: Vec<(String, u64)> = metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                let ok = match t {
                    FileType::Config => name == "config" && m.location == self.join("config"),
                    _ => is_object_name(&name) && m.location == self.path(t, &name),
                };
                ok.then_some((name, m.size))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn replace_config(&self, data: &[u8]) -> Result<()> {
        // A single put is atomic on every object store: readers get the old or new object.
        let p = self.path(FileType::Config, "config");
        let payload = PutPayload::from(bytes::Bytes::copy_from_slice(data));
        self.rt
            .block_on(self.store.put(&p, payload))
            .map(|_| ())
            .map_err(|e| super::backend_err("replace", FileType::Config, "config", io_err(e)))
    }

    fn retention(&self, t: FileType, name: &str) -> Result<Option<super::Retention>> {
        self.rt.block_on(self.head_lock(&self.path(t, name)))
    }

    fn connections(&self) -> usize {
        self.connections
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        let p = self.path(t, name);
        match self.rt.block_on(self.store.delete(&p)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(super::backend_err("delete", t, name, io_err(e))),
        }
    }
}
