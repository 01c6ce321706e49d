//! Counts what a command asks of the store: requests by kind and bytes each way. Sits right
//! above the store (below the cache), so what it counts is what went over the wire; `-v`
//! prints it. Atomic counters only: nothing on the data path waits on it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::{Backend, FileType, Retention};
use crate::error::Result;

/// Requests made and bytes moved, by kind of request.
#[derive(Debug, Default)]
pub struct RequestStats {
    get: AtomicU64,
    range_get: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    head: AtomicU64,
    delete: AtomicU64,
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
}

/// A snapshot of `RequestStats`, for reports and `--json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    pub get: u64,
    pub range_get: u64,
    pub put: u64,
    pub list: u64,
    pub head: u64,
    pub delete: u64,
    pub bytes_down: u64,
    pub bytes_up: u64,
}

impl RequestStats {
    pub fn counts(&self) -> RequestCounts {
        RequestCounts {
            get: self.get.load(Relaxed),
            range_get: self.range_get.load(Relaxed),
            put: self.put.load(Relaxed),
            list: self.list.load(Relaxed),
            head: self.head.load(Relaxed),
            delete: self.delete.load(Relaxed),
            bytes_down: self.bytes_down.load(Relaxed),
            bytes_up: self.bytes_up.load(Relaxed),
        }
    }
}

impl std::fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        write!(
            f,
            "{} GET, {} range GET ({:.1} MiB down), {} PUT ({:.1} MiB up), {} LIST, {} HEAD, {} DELETE",
            self.get,
            self.range_get,
            mib(self.bytes_down),
            self.put,
            mib(self.bytes_up),
            self.list,
            self.head,
            self.delete
        )
    }
}

/// Counts the requests made to `inner`.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn Backend>,
    stats: Arc<RequestStats>,
}

impl Counting {
    pub fn new(inner: Arc<dyn Backend>) -> Counting {
        Counting {
            inner,
            stats: Default::default(),
        }
    }

    /// The counters, shared: read them after the command.
    pub fn stats(&self) -> Arc<RequestStats> {
        self.stats.clone()
    }

    fn got(&self, counter: &AtomicU64, bytes: usize) {
        counter.fetch_add(1, Relaxed);
        self.stats.bytes_down.fetch_add(bytes as u64, Relaxed);
    }
}

impl Backend for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn probe(&self) -> Result<()> {
        self.stats.list.fetch_add(1, Relaxed);
        self.inner.probe()
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let b = self.inner.read(t, name);
        self.got(&self.stats.get, b.as_ref().map_or(0, Vec::len));
        b
    }
    fn read_into(&self, t: FileType, name: &str, buf: &mut Vec<u8>) -> Result<()> {
        let r = self.inner.read_into(t, name, buf);
        self.got(&self.stats.get, if r.is_ok() { buf.len() } else { 0 });
        r
    }
    fn map(&self, t: FileType, name: &str) -> Result<Option<memmap2::Mmap>> {
        let m = self.inner.map(t, name)?;
        if let Some(m) = &m {
            self.got(&self.stats.get, m.len());
        }
        Ok(m)
    }
    fn read_range(&self, t: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let b = self.inner.read_range(t, name, offset, length);
        self.got(&self.stats.range_get, b.as_ref().map_or(0, Vec::len));
        b
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.stats.put.fetch_add(1, Relaxed);
        self.stats.bytes_up.fetch_add(data.len() as u64, Relaxed);
        self.inner.write(t, name, data)
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        self.stats.list.fetch_add(1, Relaxed);
        self.inner.list(t)
    }
    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.stats.delete.fetch_add(1, Relaxed);
        self.inner.remove(t, name)
    }
    fn replace_config(&self, data: &[u8]) -> Result<()> {
        self.stats.put.fetch_add(1, Relaxed);
        self.stats.bytes_up.fetch_add(data.len() as u64, Relaxed);
        self.inner.replace_config(data)
    }
    fn retention(&self, t: FileType, name: &str) -> Result<Option<Retention>> {
        self.stats.head.fetch_add(1, Relaxed);
        self.inner.retention(t, name)
    }
    fn connections(&self) -> usize {
        self.inner.connections()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_and_bytes_by_kind() {
        let c = Counting::new(Arc::new(super::super::MemBackend::new()));
        let name = "ab".repeat(32);
        c.write(FileType::Pack, &name, b"hello world").unwrap();
        c.read(FileType::Pack, &name).unwrap();
        c.read_range(FileType::Pack, &name, 0, 5).unwrap();
        assert!(c.read(FileType::Index, &name).is_err());
        c.list(FileType::Pack).unwrap();
        c.remove(FileType::Pack, &name).unwrap();
        let n = c.stats().counts();
        assert_eq!(
            n,
            RequestCounts {
                get: 2,
                range_get: 1,
                put: 1,
                list: 1,
                head: 0,
                delete: 1,
                bytes_down: 16,
                bytes_up: 11,
            }
        );
        assert!(n.to_string().starts_with("2 GET, 1 range GET"), "{n}");
    }
}
