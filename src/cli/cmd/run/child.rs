//! Running one step or hook as a child process in a process group of its own, so that a
//! timeout or a signal to `cista run` stops it with everything it started (a `pg_dump` under a
//! backup): SIGTERM to the group first, which makes a `cista` child remove its locks, then
//! SIGKILL for what is left.

use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a stopped group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);

/// Why a child stopped.
#[derive(Debug)]
pub(crate) enum Ended {
    /// It exited (or died of a signal nobody here sent).
    Exited(ExitStatus),
    /// The deadline passed and it was stopped.
    TimedOut,
    /// `cista run` got this signal and stopped it.
    Interrupted(i32),
}

impl Ended {
    /// The exit code to report: the child's, or ours for a stop.
    pub(crate) fn code(&self) -> u8 {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Ended::Exited(s) => match (s.code(), s.signal()) {
                (Some(c), _) => u8::try_from(c).unwrap_or(1),
                (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
                _ => 1,
            },
            Ended::TimedOut => 1,
            Ended::Interrupted(sig) => u8::try_from(128 + sig).unwrap_or(1),
        }
    }

    pub(crate) fn success(&self) -> bool {
        matches!(self, Ended::Exited(s) if s.success())
    }
}

/// The signal (SIGINT, SIGTERM) `cista run` received, 0 for none.
pub(crate) type StopFlag = Arc<AtomicI32>;

/// Records SIGINT and SIGTERM in the returned flag instead of exiting, so the run can stop
/// its child, run the failure hooks and write its receipt and metrics first.
pub(crate) fn stop_on_signals() -> Result<StopFlag> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag: StopFlag = Arc::new(AtomicI32::new(0));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let f = flag.clone();
    std::thread::Builder::new()
        .name("cista-run-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                f.store(sig, Ordering::SeqCst);
            }
        })?;
    Ok(flag)
}

/// Runs `cmd` to its end, or until `deadline` passes or `stop` is raised.
pub(crate) fn run(mut cmd: Command, deadline: Option<Instant>, stop: &StopFlag) -> Result<Ended> {
    use std::os::unix::process::CommandExt;
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let pgid = Pid::from_raw(child.id() as i32);
    let why = loop {
        if let Some(status) = child.try_wait()? {
            // Whatever it left running in its group goes with it.
            let _ = killpg(pgid, Signal::SIGKILL);
            return Ok(Ended::Exited(status));
        }
        let sig = stop.load(Ordering::SeqCst);
        if sig != 0 {
            break Ended::Interrupted(sig);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break Ended::TimedOut;
        }
        std::thread::sleep(POLL);
    };
    let _ = killpg(pgid, Signal::SIGTERM);
    let until = Instant::now() + GRACE;
    while child.try_wait()?.is_none() && Instant::now() < until {
        std::thread::sleep(POLL);
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.wait();
    Ok(why)
}
