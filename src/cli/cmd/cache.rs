//! `cista cache`: restic's command of the same name. Needs no repository.

use anyhow::{anyhow, Result};

use cista::commands::{self, CacheOptions};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, cleanup: bool, max_age_days: u64, no_size: bool) -> Result<u8> {
    let base = cache_base(cli)
        .ok_or_else(|| anyhow!("no cache directory: set CISTA_CACHE_DIR or --cache-dir"))?;
    let mut o = CacheOptions::default();
    o.dir = base.clone();
    o.cleanup = cleanup;
    o.max_age = std::time::Duration::from_secs(max_age_days.saturating_mul(86_400));
    o.sizes = !no_size;
    let r = commands::cache(&o)?;
    if cleanup {
        if cli.json {
            print_json(
                &serde_json::json!({"message_type": "cache_cleanup", "removed": r.removed}),
            )?;
        } else if !cli.quiet {
            for c in &r.removed {
                println!(
                    "removed {} (last used {} days ago)",
                    c.path.display(),
                    c.age().as_secs() / 86_400
                );
            }
            println!(
                "removed {} old cache(s) from {}",
                r.removed.len(),
                base.display()
            );
        }
        return Ok(0);
    }
    if cli.json {
        return print_json(&r.caches).map(|_| 0);
    }
    println!(
        "{:<12} {:>10} {:>4} {:>12}",
        "repo id", "last used", "old", "size"
    );
    for c in &r.caches {
        let days = c.age().as_secs() / 86_400;
        let size = c.size.map_or(String::new(), |b| {
            format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
        });
        println!(
            "{:<12} {:>8} d {:>4} {:>12}",
            &c.id[..8],
            days,
            if c.age() > o.max_age { "yes" } else { "" },
            size
        );
    }
    println!("{} cache(s) in {}", r.caches.len(), base.display());
    Ok(0)
}
