//! The module map of docs/design.md, checked: a module uses only modules below it (listed
//! before it), backup and restore never use each other, and the CLI uses only what the crate
//! root exports (no `cista::format`, `pack`, `index` or `backend` paths).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom-up, as docs/design.md lists them; modules in one group are one layer.
const LAYERS: &[&[&str]] = &[
    &["error", "id"],
    &["util"],
    &["crypto", "compress"],
    &["format"],
    &["problem"],
    &["chunker"],
    &["backend"],
    &["repository", "lock"],
    &["index", "pack", "ahead"],
    &["tree"],
    &["backup"],
    &["restore"],
    &["check"],
    &["policy"],
    &["prune"],
    &["commands"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without its unit-test modules (tests may build fixtures with any layer).
fn non_test_source(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap();
    if p.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    match s.find("#[cfg(test)]\nmod tests {") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The names following each `prefix` (`crate::` → the top-level modules used).
fn used_after(src: &str, prefix: &str) -> BTreeSet<String> {
    src.match_indices(prefix)
        .map(|(i, _)| {
            src[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

fn top_module(src_dir: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(src_dir).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src_dir, &mut files);
    let mut wrong = Vec::new();
    let mut unlisted = BTreeSet::new();
    for p in &files {
        let me = top_module(&src_dir, p);
        if ["lib", "main", "cli"].contains(&me.as_str()) {
            continue;
        }
        let Some(mine) = layer(&me) else {
            unlisted.insert(me);
            continue;
        };
        for used in used_after(&non_test_source(p), "crate::") {
            match layer(&used) {
                Some(l) if l > mine => wrong.push(format!("{} uses {used}", p.display())),
                _ => {}
            }
            if (me == "backup" && used == "restore") || (me == "restore" && used == "backup") {
                wrong.push(format!("{} uses {used}", p.display()));
            }
        }
    }
    assert!(
        unlisted.is_empty(),
        "modules missing from LAYERS: {unlisted:?}"
    );
    assert!(
        wrong.is_empty(),
        "imports against the module map: {wrong:#?}"
    );
}

#[test]
fn the_cli_uses_only_the_crate_root_and_the_command_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("src/main.rs")];
    rust_files(&root.join("src/cli"), &mut files);
    let mut wrong = Vec::new();
    for p in &files {
        let used = used_after(&std::fs::read_to_string(p).unwrap(), "cista::");
        for m in used {
            if ["format", "pack", "index", "backend"].contains(&m.as_str()) {
                wrong.push(format!("{} uses cista::{m}", p.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
