//! Repository locks.
//!
//! A lock is a sealed file under `locks/`. Backup, restore and check take a shared lock;
//! commands that delete take an exclusive one. A holder refreshes its lock every five minutes by
//! writing a new lock file and deleting the old one; a lock not refreshed for thirty minutes,
//! or whose process is gone on this host, is stale and ignored. A holder that could not refresh
//! in time must assume others treated it as stale and stops before it writes a snapshot or
//! deletes anything (`LockGuard::check`).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::{FileKind, LockInfo};
use crate::id::Id;
use crate::repository::Repository;
use crate::util::{hostname, now_string, username};

/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

struct Shared {
    current: Id,
    last_refresh: Instant,
    error: Option<String>,
    stop: bool,
}

struct Held {
    repo: Repository,
    state: Mutex<Shared>,
    wake: Condvar,
    /// Taken while the lock file is replaced by a fresh one, so a release waits for a refresh
    /// in flight instead of removing the old file and leaving the new one behind.
    swap: Mutex<()>,
}

/// The locks this process holds, for `release_all` (a signal handler about to exit).
static HELD: Mutex<Vec<Arc<Held>>> = Mutex::new(Vec::new());

/// A poisoned mutex still guards consistent data here (every update is one assignment), and
/// a release must work even after a panic elsewhere.
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Held {
    /// Stops refreshing and removes the current lock file. Idempotent.
    fn release(&self) {
        let _swap = locked(&self.swap);
        let cur = {
            let mut g = locked(&self.state);
            g.stop = true;
            self.wake.notify_all();
            g.current
        };
        let _ = self.repo.backend().remove(FileType::Lock, &cur.to_hex());
    }
}

/// Removes every lock this process holds and makes their `LockGuard::check` fail, so work
/// still running stops before it writes a snapshot or deletes anything. For a process about
/// to exit on a signal: without it the lock would block other hosts for thirty minutes.
/// Returns how many locks were removed.
pub fn release_all() -> usize {
    let held: Vec<Arc<Held>> = locked(&HELD).clone();
    for h in &held {
        locked(&h.state)
            .error
            .get_or_insert_with(|| "the process was interrupted and removed its lock".into());
        h.release();
    }
    held.len()
}

/// A held lock; dropping it removes the lock file.
pub struct LockGuard {
    held: Arc<Held>,
    thread: Option<JoinHandle<()>>,
}

fn write_lock(repo: &Repository, exclusive: bool) -> Result<Id> {
    let info = LockInfo {
        time: now_string(),
        exclusive,
        hostname: hostname(),
        username: username(),
        pid: std::process::id(),
    };
    repo.save_file(FileKind::Lock, FileType::Lock, &info.encode())
}

/// Reads one lock file.
pub fn load_lock(repo: &Repository, id: &Id) -> Result<LockInfo> {
    let raw = repo.load_file(FileKind::Lock, FileType::Lock, id)?;
    LockInfo::decode(&raw).map_err(|e| Error::corrupt("lock", id, e))
}

/// True when a lock's owner can no longer be holding it.
pub fn is_stale(info: &LockInfo) -> bool {
    let age = info
        .time
        .parse::<jiff::Timestamp>()
        .map(|t| jiff::Timestamp::now().duration_since(t))
        .unwrap_or(jiff::SignedDuration::MAX);
    if age > jiff::SignedDuration::try_from(STALE_AFTER).unwrap() {
        return true;
    }
    if info.hostname == hostname() && info.pid != 0 {
        let pid = nix::unistd::Pid::from_raw(info.pid as i32);
        if let Err(nix::errno::Errno::ESRCH) = nix::sys::signal::kill(pid, None) {
            return true;
        }
    }
    false
}

fn describe(id: &Id, l: &LockInfo) -> String {
    format!(
        "{} lock {} held by {}@{} (pid {}) since {}",
        if l.exclusive { "exclusive" } else { "shared" },
        id.short(),
        l.username,
        l.hostname,
        l.pid,
        l.time
    )
}

impl LockGuard {
    /// Takes a lock, failing with `Error::Locked` when a live conflicting lock exists.
    pub fn acquire(repo: &Repository, exclusive: bool) -> Result<LockGuard> {
        let mine = write_lock(repo, exclusive)?;
        // Registered before the (possibly slow) conflict scan, so that `release_all` removes
        // the file if a signal comes meanwhile; on a conflict dropping the guard removes it.
        let held = Arc::new(Held {
            repo: repo.clone(),
            state: Mutex::new(Shared {
                current: mine,
                last_refresh: Instant::now(),
                error: None,
                stop: false,
            }),
            wake: Condvar::new(),
            swap: Mutex::new(()),
        });
        locked(&HELD).push(held.clone());
        let mut guard = LockGuard { held, thread: None };
        // Written first, checked second: of two racing processes at least one sees the other.
        for id in repo.list_ids(FileType::Lock)? {
            if id == mine {
                continue;
            }
            let Ok(info) = load_lock(repo, &id) else {
                continue;
            };
            if (exclusive || info.exclusive) && !is_stale(&info) {
                return Err(Error::Locked(describe(&id, &info)));
            }
        }
        let h = guard.held.clone();
        let thread = std::thread::Builder::new()
            .name("cista-lock".into())
            .spawn(move || refresh_loop(&h, exclusive))
            .map_err(|e| Error::io("spawn lock refresher", "", e))?;
        guard.thread = Some(thread);
        Ok(guard)
    }

    /// Like `acquire`, but retries for up to `wait` while the repository is locked.
    pub fn acquire_retry(repo: &Repository, exclusive: bool, wait: Duration) -> Result<LockGuard> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            match LockGuard::acquire(repo, exclusive) {
                Err(Error::Locked(msg)) if start.elapsed() + pause <= wait => {
                    let _ = msg;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                r => return r,
            }
        }
    }

    /// Fails when the lock may have been taken for stale: a refresh failed, or the last
    /// successful one is too long ago (the host slept, say).
    pub fn check(&self) -> Result<()> {
        let g = locked(&self.held.state);
        if let Some(e) = &g.error {
            return Err(Error::LockLost(e.clone()));
        }
        if g.last_refresh.elapsed() + REFRESH_EVERY >= STALE_AFTER {
            return Err(Error::LockLost(format!(
                "lock last refreshed {}s ago; another process may have removed it",
                g.last_refresh.elapsed().as_secs()
            )));
        }
        Ok(())
    }
}

fn refresh_loop(h: &Held, exclusive: bool) {
    loop {
        let g = locked(&h.state);
        let (g, _) = h
            .wake
            .wait_timeout_while(g, REFRESH_EVERY, |s| !s.stop)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.stop {
            return;
        }
        drop(g);
        let _swap = locked(&h.swap);
        if locked(&h.state).stop {
            return;
        }
        let r = write_lock(&h.repo, exclusive);
        let mut g = locked(&h.state);
        match r {
            Ok(new) => {
                let old = std::mem::replace(&mut g.current, new);
                g.last_refresh = Instant::now();
                drop(g);
                let _ = h.repo.backend().remove(FileType::Lock, &old.to_hex());
            }
            Err(e) => {
                g.error
                    .get_or_insert_with(|| format!("refreshing the lock failed: {e}"));
            }
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.held.release();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        locked(&HELD).retain(|h| !Arc::ptr_eq(h, &self.held));
    }
}

/// Removes stale locks, or all locks with `all`. Returns how many were removed.
pub fn unlock(repo: &Repository, all: bool) -> Result<usize> {
    let mut n = 0;
    for id in repo.list_ids(FileType::Lock)? {
        let stale = match load_lock(repo, &id) {
            Ok(info) => is_stale(&info),
            // A lock nobody can read protects nothing.
            Err(_) => true,
        };
        if all || stale {
            repo.backend().remove(FileType::Lock, &id.to_hex())?;
            n += 1;
        }
    }
    Ok(n)
}
