//! `--limit-upload` / `--limit-download`: a token bucket per direction, shared by all threads,
//! so the total rate stays under the limit however many transfers run at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Backend, FileType};
use crate::error::Result;

#[derive(Debug)]
struct Bucket {
    bytes_per_sec: f64,
    /// When the link is next free.
    next: Mutex<Instant>,
}

impl Bucket {
    fn new(kib_per_sec: u64) -> Bucket {
        Bucket {
            bytes_per_sec: (kib_per_sec.max(1) * 1024) as f64,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Reserves time for `n` bytes and sleeps until the reservation starts being honoured.
    fn take(&self, n: usize) {
        let wait = {
            let mut next = self.next.lock().unwrap();
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
            *next - now
        };
        std::thread::sleep(wait);
    }
}

/// Limits the rate of bytes written to (`upload`) and read from (`download`) a backend, in KiB/s.
#[derive(Debug)]
pub struct Limited {
    inner: Arc<dyn Backend>,
    up: Option<Bucket>,
    down: Option<Bucket>,
}

impl Limited {
    pub fn new(
        inner: Arc<dyn Backend>,
        upload_kib: Option<u64>,
        download_kib: Option<u64>,
    ) -> Limited {
        Limited {
            inner,
            up: upload_kib.map(Bucket::new),
            down: download_kib.map(Bucket::new),
        }
    }
}

impl Backend for Limited {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn probe(&self) -> Result<()> {
        self.inner.probe()
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let b = self.inner.read(t, name)?;
        if let Some(d) = &self.down {
            d.take(b.len());
        }
        Ok(b)
    }
    fn read_range(&self, t: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let b = self.inner.read_range(t, name, offset, length)?;
        if let Some(d) = &self.down {
            d.take(b.len());
        }
        Ok(b)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        if let Some(u) = &self.up {
            u.take(data.len());
        }
        self.inner.write(t, name, data)
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        self.inner.list(t)
    }
    fn replace_config(&self, data: &[u8]) -> Result<()> {
        self.inner.replace_config(data)
    }
    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.inner.remove(t, name)
    }
    fn retention(&self, t: FileType, name: &str) -> Result<Option<super::Retention>> {
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
    fn limits_throughput() {
        let be = Limited::new(Arc::new(super::super::MemBackend::new()), Some(1024), None);
        let t0 = Instant::now();
        for i in 0..4u8 {
            be.write(
                FileType::Pack,
                &hex::encode([i; 32]),
                &vec![0u8; 256 * 1024],
            )
            .unwrap();
        }
        // 1 MiB at 1 MiB/s: the last write waits until about 0.75 s.
        assert!(
            t0.elapsed() >= Duration::from_millis(700),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(be.list(FileType::Pack).unwrap().len(), 4);
    }
}
