//! The object store failing under a command: it goes away for ten seconds in the middle of a
//! backup and of a restore (a server restart, a network blip), and both ride it out with their
//! retries; a bucket that does not exist is named as such.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::outage::OutageProxy;
use common::*;

fn through(env: &Env, proxy: &OutageProxy, args: &[&str]) -> Child {
    let mut c = env.cmd(args);
    c.env(
        "AWS_ENDPOINT_URL",
        format!("http://127.0.0.1:{}", proxy.port),
    );
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().unwrap()
}

fn finish(child: Child, what: &str) {
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{what} did not survive the outage ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_ten_second_outage_during_backup_and_restore_is_ridden_out() {
    let env = Env::s3("outage");
    let src = env.path("src");
    for i in 0..6 {
        write(&src.join(format!("f{i}.bin")), &bytes(4 << 20, i));
    }
    small_tree(&src.join("small"));
    let meta = snapshot_meta(&src);
    let proxy = OutageProxy::start(s3::server().port);
    let limit = Duration::from_secs(60);

    // 24 MiB at 4 MiB/s: the outage starts a second in and ends well before the upload would.
    let backup = through(
        &env,
        &proxy,
        &["--limit-upload", "4096", "backup", src.to_str().unwrap()],
    );
    proxy.wait_for(&proxy.bytes_up, 4 << 20, limit);
    proxy.outage(Duration::from_secs(10));
    finish(backup, "backup");
    env.ok(&["check", "--read-data"]);

    let target = env.path("restored");
    let restore = through(
        &env,
        &proxy,
        &[
            "--limit-download",
            "4096",
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    proxy.wait_for(&proxy.bytes_down, 4 << 20, limit);
    proxy.outage(Duration::from_secs(10));
    finish(restore, "restore");
    assert_same_tree(&meta, &src, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn a_missing_bucket_is_named_not_taken_for_a_missing_repository() {
    let mut env = Env::empty();
    let bucket = format!("no-such-bucket-{}", std::process::id());
    env.location = Some(format!("s3://{bucket}/repo"));
    for args in [&["init"][..], &["snapshots"]] {
        let o = env.run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(10), "{args:?}: {err}");
        assert!(
            err.contains(&format!("bucket {bucket} does not exist")),
            "{args:?}: {err}"
        );
    }
    // An existing bucket without a repository is still "repository does not exist".
    env.location = Some(format!("s3://{}/repo", s3::bucket("empty-bucket")));
    let o = env.run(&["snapshots"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(10), "{err}");
    assert!(err.contains("repository does not exist"), "{err}");
}
