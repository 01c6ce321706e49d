//! The `cista` command-line tool: a thin layer over the library. Parses arguments, gets the
//! password, prints results, and maps errors to exit codes:
//! 0 ok; 1 fatal; 3 snapshot saved but some source files could not be read;
//! 10 repository does not exist; 11 repository locked; 12 wrong password;
//! 130 interrupted by SIGINT, 143 by SIGTERM (after removing this process's locks).

use std::process::ExitCode;

use clap::Parser;

use cista::Error;

mod cli;

use cli::*;

const EXIT_PARTIAL: u8 = 3;
const EXIT_NO_REPO: u8 = 10;
const EXIT_LOCKED: u8 = 11;
const EXIT_WRONG_PASSWORD: u8 = 12;
/// 128 + the signal number, the shell's convention (restic exits 130 on SIGINT too).
const EXIT_SIGINT: i32 = 130;
const EXIT_SIGTERM: i32 = 143;

/// glibc raises its mmap threshold each time a large block is freed, after which buffers of a
/// few MiB (file segments, packs, compressed chunks) come from per-thread heaps that are not
/// returned to the system: on a 1 GB backup that cost 40-50 MiB of peak RSS
/// (docs/performance.md). A fixed threshold keeps those buffers mapped and unmapped whole.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    let threshold: i32 = std::env::var("CISTA_MMAP_THRESHOLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    // SAFETY: mallopt only sets an allocator parameter; it is called first thing in main,
    // before any other thread exists, and an unaccepted value is ignored by glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, threshold);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    // With -v, storage retries (logged by object_store) and other notices go to stderr.
    let level = match cli.verbose {
        0 => tracing_subscriber::filter::LevelFilter::WARN,
        1 => tracing_subscriber::filter::LevelFilter::INFO,
        _ => tracing_subscriber::filter::LevelFilter::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .init();
    outcome::start(cli.cmd.name());
    let t0 = std::time::Instant::now();
    let result = run(&cli);
    if cli.verbose > 0 {
        print_requests();
    }
    let (code, error) = match result {
        Ok(code) => (code, None),
        Err(e) => {
            let code = match e.downcast_ref::<Error>() {
                Some(Error::RepoNotFound(_) | Error::ContainerNotFound { .. }) => EXIT_NO_REPO,
                Some(Error::Locked(_)) => EXIT_LOCKED,
                Some(Error::WrongPassword) => EXIT_WRONG_PASSWORD,
                // `cista run`: the exit code of the step that failed.
                _ => e.downcast_ref::<StepExit>().map_or(1, |s| s.0),
            };
            let text = error_text(&e);
            if cli.json {
                // restic 0.17's shape for the error that ends a run.
                let v = serde_json::json!({"message_type": "exit_error", "code": code, "message": text});
                eprintln!("{v}");
            } else {
                eprintln!("cista: error: {text}");
            }
            (code, Some(text))
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let unwritten = outcome::finish(
        code,
        error,
        secs,
        cli.receipt.as_deref(),
        cli.metrics_file.as_deref(),
    );
    for u in &unwritten {
        eprintln!("cista: error: {u}");
    }
    // A run whose receipt or metrics are missing must not look like a success to cron.
    ExitCode::from(if unwritten.is_empty() || code != 0 {
        code
    } else {
        1
    })
}

/// The error and its causes, each cause once: the library's messages already name their
/// immediate cause, so printing the whole chain (`{:#}`) would repeat it.
fn error_text(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let t = cause.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
    }
    msg
}
