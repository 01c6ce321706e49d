//! Progress while a command runs: a bar on a terminal (indicatif), plain periodic lines on a
//! non-terminal with `-v`, restic's `status` lines with `--json`, nothing with `-q`. The
//! engine only counts (`cista::Progress`); this thread reads the counters and draws.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use cista::{Progress, ProgressReading};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{bytes, Cli};

/// The display of one command's progress; dropping it stops it and clears the bar.
pub(crate) struct Shown {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The bar, when there is one: lines printed while it shows go through it.
    bar: Option<ProgressBar>,
}

enum Mode {
    Bar(ProgressBar),
    Lines,
    Json,
}

/// Starts showing `p` for the command `what` (`backup`, `restore`, `check`, `prune`, `copy`,
/// `drill`), as `cli` asks.
pub(crate) fn show(cli: &Cli, what: &'static str, p: &Arc<Progress>) -> Option<Shown> {
    let mode = if cli.quiet {
        return None;
    } else if cli.json {
        Mode::Json
    } else if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        Mode::Bar(bar)
    } else if cli.verbose > 0 {
        Mode::Lines
    } else {
        return None;
    };
    let bar = match &mode {
        Mode::Bar(b) => Some(b.clone()),
        _ => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (s, p) = (stop.clone(), p.clone());
    let thread = std::thread::Builder::new()
        .name("cista-progress".into())
        .spawn(move || run(&mode, what, &p, &s))
        .ok()?;
    Some(Shown {
        stop,
        thread: Some(thread),
        bar,
    })
}

impl Shown {
    /// Runs `f` (which prints) with the bar hidden, so its output and the bar don't mix.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }
}

/// What the counted items are, in the display.
fn unit(what: &str) -> &'static str {
    match what {
        "check" | "prune" => "packs",
        _ => "files",
    }
}

fn run(mode: &Mode, what: &str, p: &Progress, stop: &AtomicBool) {
    let every = match mode {
        Mode::Bar(_) => Duration::from_millis(100),
        Mode::Json => Duration::from_secs(1),
        Mode::Lines => Duration::from_secs(10),
    };
    let tick = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        waited += tick;
        if waited < every {
            continue;
        }
        waited = Duration::ZERO;
        let r = p.read();
        match mode {
            Mode::Bar(bar) => draw(bar, what, &r),
            Mode::Json => println!("{}", status_json(&r)),
            Mode::Lines => eprintln!("{}", line(what, &r)),
        }
    }
    if let Mode::Bar(bar) = mode {
        // Leaves no partial line behind: the summary prints on a clean terminal.
        bar.finish_and_clear();
    }
}

fn draw(bar: &ProgressBar, what: &str, r: &ProgressReading) {
    if r.total_bytes > 0 && bar.length().is_none() {
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_length(r.total_bytes);
    } else if bar.length().is_none() {
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
    }
    bar.set_prefix(what.to_string());
    bar.set_position(r.bytes_done);
    let rate = r.bytes_done as f64 / r.seconds_elapsed.max(0.001);
    bar.set_message(format!(
        "{} {}, {} ({}/s) {}",
        r.files_done,
        unit(what),
        bytes(r.bytes_done),
        bytes(rate as u64),
        r.current
    ));
    bar.tick();
}

fn line(what: &str, r: &ProgressReading) -> String {
    let pct = r
        .percent_done
        .map_or(String::new(), |p| format!(" ({:.1}%)", p * 100.0));
    format!(
        "[{:.0}s] {what}: {} {}, {} done{pct}",
        r.seconds_elapsed,
        r.files_done,
        unit(what),
        bytes(r.bytes_done)
    )
}

/// restic's `--json` status message.
fn status_json(r: &ProgressReading) -> serde_json::Value {
    serde_json::json!({
        "message_type": "status",
        "percent_done": r.percent_done.unwrap_or(0.0),
        "total_files": r.total_files,
        "files_done": r.files_done,
        "total_bytes": r.total_bytes,
        "bytes_done": r.bytes_done,
        "seconds_elapsed": r.seconds_elapsed as u64,
        "seconds_remaining": r.seconds_remaining.map(|s| s as u64),
        "current_files": [r.current],
    })
}

impl Drop for Shown {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
