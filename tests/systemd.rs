//! The example systemd units in docs/systemd/ are valid: `systemd-analyze verify` accepts them
//! with `ExecStart` pointing at the cista binary under test (scripts/test.sh installs systemd's
//! tools when they are missing).

use std::path::Path;
use std::process::Command;

#[test]
fn the_example_units_pass_systemd_analyze_verify() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/systemd");
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for e in std::fs::read_dir(&docs).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let text = text.replace("/usr/local/bin/cista", env!("CARGO_BIN_EXE_cista"));
        let to = dir.path().join(p.file_name().unwrap());
        std::fs::write(&to, text).unwrap();
        units.push(to);
    }
    assert_eq!(units.len(), 4, "{units:?}");
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian's systemd package) runs; scripts/test.sh installs it");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "systemd-analyze verify failed:\n{err}");
    // A unit the timer names must be there: verify reports a missing one on stderr.
    assert!(!err.contains("not found"), "{err}");
}
