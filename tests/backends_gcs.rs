//! cista's GCS backend (`gs://bucket/prefix`) against a GCS emulator (fake-gcs-server on
//! loopback). The emulator cannot take object_store's GCS writes (see tests/common/gcs.rs), so
//! a repository made on local disk is uploaded through the emulator's own API and everything
//! that only reads runs on it: check --read-data, restore --verify, dump, the backend's reads.

mod common;

use cista::backend::FileType;
use common::*;

#[test]
fn read_only_jobs_on_gcs() {
    let local = Env::new();
    let src = local.path("src");
    small_tree(&src);
    write(&src.join("big.bin"), &bytes(9 << 20, 3));
    let expected = snapshot_meta(&src);
    local.backup(&[&src]);
    let bucket = gcs::bucket("readonly");
    gcs::upload_dir(&bucket, "repo", &local.repo());
    let mut env = Env::empty();
    env.location = Some(format!("gs://{bucket}/repo"));

    env.ok(&["--no-lock", "check", "--read-data"]);
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    let t = env.path("r");
    env.ok(&[
        "--no-lock",
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(&expected, &src, &t.join(src.strip_prefix("/").unwrap()));
    let o = env
        .cmd(&[
            "--no-lock",
            "dump",
            "latest",
            &format!("{}/big.bin", src.display()),
        ])
        .output()
        .unwrap();
    assert!(o.stdout == bytes(9 << 20, 3), "dump: {}", stderr(&o));

    // The backend's reads: whole, ranged (a short range is refused), missing, listed.
    env.set_store_env();
    let be = cista::backend::open_location(&env.location(), &[]).unwrap();
    let packs = be.list(FileType::Pack).unwrap();
    let on_disk: Vec<_> = walk_files(&local.repo().join("data"));
    assert_eq!(packs.len(), on_disk.len(), "{packs:?}");
    let (name, size) = &packs[0];
    let whole = be.read(FileType::Pack, name).unwrap();
    assert_eq!(whole.len() as u64, *size);
    assert_eq!(
        be.read_range(FileType::Pack, name, 3, 10).unwrap(),
        &whole[3..13]
    );
    assert!(be.read_range(FileType::Pack, name, size - 5, 10).is_err());
    assert!(be
        .read(FileType::Pack, &"ef".repeat(32))
        .unwrap_err()
        .is_not_found());

    // A bucket without a repository: exit 10, "repository does not exist".
    env.location = Some(format!("gs://{}/nothing-here", gcs::bucket("empty")));
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("repository does not exist"),
        "{}",
        stderr(&o)
    );
}
