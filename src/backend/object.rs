//! Object stores (S3, GCS, Azure Blob, and anything `object_store` speaks) behind the same
//! `Backend` trait as local disk.
//!
//! Writes use a conditional create (`If-None-Match: *`) so nothing is ever overwritten; where a
//! store does not implement it, a HEAD check precedes a plain put, which is harmless because
//! every name but `config` is the hash of its content. Objects larger than
//! `MULTIPART_THRESHOLD` go up as multipart uploads; a failed one is aborted, and an upload that
//! is never completed is invisible to listings, so a half-written object is never taken for
//! data. Transient errors are retried with exponential backoff by `object_store`'s client.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use super::{is_object_name, object_path, Backend, FileType};
use crate::error::{Error, Result};

/// Objects above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 64 << 20;
const PART_SIZE: usize = 16 << 20;

pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ObjectStoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStoreBackend({})", self.location)
    }
}

fn io_err(e: object_store::Error) -> std::io::Error {
    use std::io::ErrorKind;
    let kind =
        match &e {
            object_store::Error::NotFound { .. } => ErrorKind::NotFound,
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => ErrorKind::AlreadyExists,
            object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. } => ErrorKind::Unsupported,
            _ => ErrorKind::Other,
        };
    std::io::Error::new(kind, e.to_string())
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

fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 10,
        retry_timeout: Duration::from_secs(180),
        ..Default::default()
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
                for (k, v) in options {
                    let key = k.parse().map_err(|e| bad(format!("option {k}: {e}")))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "gs" => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(&base)
                    .with_retry(retry());
                for (k, v) in options {
                    let key = k.parse().map_err(|e| bad(format!("option {k}: {e}")))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(&base)
                    .with_retry(retry());
                for (k, v) in options {
                    let key = k.parse().map_err(|e| bad(format!("option {k}: {e}")))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            other => {
                return Err(bad(format!(
                    "unknown scheme {other}:// (use s3://, gs:// or az://)"
                )))
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("cista-io")
            .build()
            .map_err(|e| Error::io("start I/O runtime", "", e))?;
        Ok(ObjectStoreBackend {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            location: url.to_string(),
            rt,
        })
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
        let upload = self.store.put_multipart(p).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for part in data.chunks(PART_SIZE) {
            if let Err(e) = w.wait_for_capacity(4).await {
                let _ = w.abort().await;
                return Err(e);
            }
            w.write(part);
        }
        match w.finish().await {
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Backend for ObjectStoreBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        Ok(())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        self.rt
            .block_on(async {
                let r = self.store.get(&p).await?;
                r.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(|e| super::backend_err("read", t, name, io_err(e)))
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
        let r = self.rt.block_on(async {
            if data.len() > MULTIPART_THRESHOLD {
                return self.put_large(&p, data).await;
            }
            let payload = PutPayload::from(bytes::Bytes::copy_from_slice(data));
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self.store.put_opts(&p, payload.clone(), opts).await {
                Err(object_store::Error::NotImplemented { .. })
                | Err(object_store::Error::NotSupported { .. }) => {
                    match self.store.head(&p).await {
                        Ok(_) => Err(object_store::Error::AlreadyExists {
                            path: p.to_string(),
                            source: "object exists".into(),
                        }),
                        Err(object_store::Error::NotFound { .. }) => {
                            self.store.put(&p, payload).await.map(|_| ())
                        }
                        Err(e) => Err(e),
                    }
                }
                r => r.map(|_| ()),
            }
        });
        r.map_err(|e| super::backend_err("write", t, name, io_err(e)))
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

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        let p = self.path(t, name);
        match self.rt.block_on(self.store.delete(&p)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(super::backend_err("delete", t, name, io_err(e))),
        }
    }
}
