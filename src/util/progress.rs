//! Progress of a running command, shared between the engine (which counts) and whoever shows
//! it (the CLI's bar, status lines). Counting is a relaxed atomic add: free on the hot path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

/// Counters a command updates as it goes; totals are 0 while unknown (a backup does not scan
/// its sources first).
#[derive(Debug)]
pub struct Progress {
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    current: Mutex<String>,
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            current: Mutex::new(String::new()),
            started: Instant::now(),
        }
    }
}

/// A reading of [`Progress`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ProgressReading {
    pub files_done: u64,
    pub bytes_done: u64,
    /// 0 while unknown.
    pub total_files: u64,
    pub total_bytes: u64,
    pub current: String,
    pub seconds_elapsed: f64,
    /// Bytes done of the total, 0..=1; `None` while the total is unknown.
    pub percent_done: Option<f64>,
    /// From the rate so far; `None` while the total is unknown or nothing is done.
    pub seconds_remaining: Option<f64>,
}

impl Progress {
    pub fn add_files(&self, n: u64) {
        self.files_done.fetch_add(n, Relaxed);
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Relaxed);
    }

    pub fn set_totals(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Relaxed);
        self.bytes_total.store(bytes, Relaxed);
    }

    /// The item being worked on (a path), for display.
    pub fn set_current(&self, what: &str) {
        if let Ok(mut c) = self.current.try_lock() {
            c.clear();
            c.push_str(what);
        }
    }

    pub fn read(&self) -> ProgressReading {
        let (files_done, bytes_done) =
            (self.files_done.load(Relaxed), self.bytes_done.load(Relaxed));
        let (total_files, total_bytes) = (
            self.files_total.load(Relaxed),
            self.bytes_total.load(Relaxed),
        );
        let secs = self.started.elapsed().as_secs_f64();
        let percent_done =
            (total_bytes > 0).then(|| (bytes_done as f64 / total_bytes as f64).min(1.0));
        let seconds_remaining = percent_done
            .filter(|p| *p > 0.0)
            .map(|p| secs * (1.0 - p) / p);
        ProgressReading {
            files_done,
            bytes_done,
            total_files,
            total_bytes,
            current: self.current.lock().map(|c| c.clone()).unwrap_or_default(),
            seconds_elapsed: secs,
            percent_done,
            seconds_remaining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_gives_percent_and_remaining_once_totals_are_known() {
        let p = Progress::default();
        p.add_files(2);
        p.add_bytes(50);
        let r = p.read();
        assert_eq!((r.files_done, r.bytes_done), (2, 50));
        assert_eq!(r.percent_done, None);
        p.set_totals(4, 100);
        p.set_current("/x");
        let r = p.read();
        assert_eq!(r.percent_done, Some(0.5));
        assert!(r.seconds_remaining.unwrap() >= 0.0);
        assert_eq!(r.current, "/x");
    }
}
