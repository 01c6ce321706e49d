use super::*;
use crate::crypto::Keys;
use proptest::prelude::*;

fn keys() -> Keys {
    Keys::from_master([5; 32])
}

fn arb_entry() -> impl Strategy<Value = BlobEntry> {
    (
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(t, id, offset, length, raw_len)| BlobEntry {
            ty: if t { BlobType::Tree } else { BlobType::Data },
            id: Id(id),
            offset,
            length,
            raw_len,
        })
}

fn arb_node() -> impl Strategy<Value = Node> {
    (
        proptest::collection::vec(1u8..=255, 1..20),
        0usize..7,
        any::<(u32, u32, u32, i64, i64, i64, u64, u64)>(),
        proptest::collection::vec(any::<u8>(), 0..20),
        proptest::collection::vec(any::<[u8; 32]>(), 0..4),
        any::<Option<[u8; 32]>>(),
        proptest::collection::vec(
            (
                proptest::collection::vec(1u8..255, 1..10),
                proptest::collection::vec(any::<u8>(), 0..10),
            ),
            0..3,
        ),
    )
        .prop_map(|(mut name, k, m, target, content, digest, xattrs)| {
            for b in name.iter_mut() {
                if *b == b'/' {
                    *b = b'_';
                }
            }
            if name == b"." || name == b".." {
                name = b"x".to_vec();
            }
            let kinds = [
                NodeKind::File,
                NodeKind::Dir,
                NodeKind::Symlink,
                NodeKind::Fifo,
                NodeKind::Socket,
                NodeKind::CharDevice,
                NodeKind::BlockDevice,
            ];
            let mut n = Node::new(name, kinds[k]);
            (
                n.mode, n.uid, n.gid, n.mtime_ns, n.ctime_ns, n.atime_ns, n.size, n.inode,
            ) = m;
            n.user = "user".into();
            n.link_target = target;
            n.content = content.into_iter().map(Id).collect();
            n.digest = digest.map(Id);
            n.xattrs = xattrs
                .into_iter()
                .map(|(name, value)| Xattr { name, value })
                .collect();
            if n.kind == NodeKind::Dir {
                n.subtree = Some(Id([1; 32]));
            }
            n
        })
}

proptest! {
    #[test]
    fn file_envelope_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), k in 1u8..=5) {
        let kind = [FileKind::Config, FileKind::Index, FileKind::Snapshot, FileKind::Lock, FileKind::Verification][k as usize - 1];
        let s = seal_file(&keys(), kind, &data);
        prop_assert_eq!(open_file(&keys(), kind, &s).unwrap(), data);
    }

    #[test]
    fn blob_round_trip(data in proptest::collection::vec(0u8..3, 0..5000), tree in any::<bool>()) {
        let k = keys();
        let ty = if tree { BlobType::Tree } else { BlobType::Data };
        let id = k.blob_id(&data);
        let s = seal_blob(&k, ty, &id, &data, Some(3));
        prop_assert_eq!(open_blob(&k, ty, &id, &s).unwrap(), data);
        let other = if tree { BlobType::Data } else { BlobType::Tree };
        prop_assert!(open_blob(&k, other, &id, &s).is_err());
    }

    #[test]
    fn index_round_trip(packs in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec(arb_entry(), 0..5)), 0..5), sup in proptest::collection::vec(any::<[u8; 32]>(), 0..3)) {
        let f = IndexFile {
            supersedes: sup.into_iter().map(Id).collect(),
            packs: packs.into_iter().map(|(id, blobs)| IndexPack { id: Id(id), blobs }).collect(),
        };
        prop_assert_eq!(IndexFile::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn pack_header_round_trip(lens in proptest::collection::vec(1u32..10000, 0..20)) {
        let mut off = 0;
        let entries: Vec<BlobEntry> = lens.iter().enumerate().map(|(i, &l)| {
            let e = BlobEntry { ty: BlobType::Data, id: Id([i as u8; 32]), offset: off, length: l, raw_len: l };
            off += l;
            e
        }).collect();
        let s = seal_pack_header(&keys(), &entries);
        prop_assert_eq!(open_pack_header(&keys(), &s, off as u64).unwrap(), entries);
    }

    #[test]
    fn tree_round_trip(nodes in proptest::collection::vec(arb_node(), 0..10)) {
        let mut t = Tree { nodes };
        t.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        t.nodes.dedup_by(|a, b| a.name == b.name);
        let enc = t.encode();
        let d = Tree::decode(&enc).unwrap();
        prop_assert_eq!(&d, &t);
        let mut d2 = d.clone();
        prop_assert_eq!(d2.encode(), enc);
    }

    #[test]
    fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = IndexFile::decode(&data);
        let _ = Tree::decode(&data);
        let _ = Snapshot::decode(&data);
        let _ = Verification::decode(&data);
        let _ = Config::decode(&data);
        let _ = split_pack(&data);
        let _ = open_file(&keys(), FileKind::Index, &data);
    }
}

proptest! {
    #[test]
    fn snapshot_json_round_trip(
        secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000, off in -50_400i32..50_400,
        paths in proptest::collection::vec(".*", 0..4), host in ".*", tags in proptest::collection::vec(".*", 0..3),
        parent in any::<Option<[u8; 32]>>(), files in any::<u64>(),
    ) {
        let ts = jiff::Timestamp::new(secs, nanos as i32).unwrap();
        let z = ts.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::Offset::from_seconds(off / 60 * 60).unwrap()));
        let s = Snapshot {
            time: z.strftime("%Y-%m-%dT%H:%M:%S%.9f%:z").to_string(),
            tree: Id([1; 32]),
            paths, hostname: host, username: "u".into(), uid: 0, gid: 0, tags,
            parent: parent.map(Id),
            program_version: "cista".into(),
            summary: Some(Summary { files_new: files, duration_secs: 1.5, ..Default::default() }),
            original: None,
        };
        let d = Snapshot::decode(&s.encode()).unwrap();
        prop_assert_eq!(d.timestamp().unwrap(), ts);
        prop_assert_eq!(d, s);
    }

    #[test]
    fn config_round_trip(min_exp in 6u32..20, avg_gap in 1u32..3, max_gap in 1u32..3, pack in MIN_PACK_SIZE..=MAX_PACK_SIZE, level in -7i32..=22, large in proptest::option::of(-7i32..=22)) {
        let avg = 1u32 << (min_exp + avg_gap).min(22);
        let chunker = ChunkerParams { min: 1 << min_exp, avg, max: (avg << max_gap).min(1 << 24) };
        prop_assume!(chunker.validate().is_ok());
        let mut c = Config::new(chunker, pack);
        c.compression_level = level;
        c.large_blob_level = large;
        prop_assert_eq!(Config::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn verification_round_trip(
        secs in 0i64..4_000_000_000, m in 0usize..4, passed in any::<bool>(),
        snaps in proptest::collection::vec(any::<[u8; 32]>(), 0..5), tree in any::<Option<[u8; 32]>>(),
        fraction in proptest::option::of(0u32..=10_000), subset in proptest::option::of(".{0,12}"),
        bytes_read in any::<u64>(), host in ".{0,40}", detail in ".{0,200}",
    ) {
        let methods = [VerificationMethod::Check, VerificationMethod::CheckReadData,
            VerificationMethod::CheckReadDataSubset, VerificationMethod::Drill];
        let v = Verification {
            time: crate::util::format_time(jiff::Timestamp::from_second(secs).unwrap().to_zoned(jiff::tz::TimeZone::UTC)),
            method: methods[m],
            subset,
            fraction: fraction.map(|f| f as f64 / 10_000.0),
            result: VerificationResult::of(passed),
            snapshots: snaps.into_iter().map(Id).collect(),
            tree: tree.map(Id),
            bytes_read, hostname: host, username: "u".into(),
            program_version: "cista 0.1.0".into(), detail,
        };
        prop_assert_eq!(Verification::decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn lock_round_trip(host in ".*", user in ".*", pid in any::<u32>(), exclusive in any::<bool>()) {
        let l = LockInfo { time: "2026-11-22T00:00:00Z".into(), exclusive, hostname: host, username: user, pid };
        prop_assert_eq!(LockInfo::decode(&l.encode()).unwrap(), l);
    }
}

#[test]
fn large_blob_level_is_optional_and_applies_from_256_kib() {
    // A config written before the field existed: every blob uses compression_level.
    let old = br#"{"version":1,"id":"0000000000000000000000000000000000000000000000000000000000000000","chunker":{"min":524288,"avg":1048576,"max":8388608},"pack_size":16777216,"compression_level":3}"#;
    let c = Config::decode(old).unwrap();
    assert_eq!(c.large_blob_level, None);
    assert_eq!(c.blob_level(LARGE_BLOB * 4), 3);
    assert!(!String::from_utf8(c.encode())
        .unwrap()
        .contains("large_blob_level"));
    let n = Config::new(ChunkerParams::default(), 1 << 24);
    assert_eq!(n.blob_level(LARGE_BLOB - 1), 3);
    assert_eq!(n.blob_level(LARGE_BLOB), 4);
    assert_eq!(Config::decode(&n.encode()).unwrap(), n);
    let mut bad = n.clone();
    bad.large_blob_level = Some(23);
    let err = Config::decode(&bad.encode()).unwrap_err().to_string();
    assert!(err.contains("large blob level 23"), "{err}");
}

#[test]
fn snapshot_and_config_round_trip() {
    let s = Snapshot {
        time: "2026-11-22T07:52:44.5+01:00".into(),
        tree: Id([3; 32]),
        paths: vec!["/a".into()],
        hostname: "h".into(),
        username: "u".into(),
        uid: 1,
        gid: 2,
        tags: vec!["t".into()],
        parent: None,
        program_version: "cista 0.1.0".into(),
        summary: Some(Summary::default()),
        original: Some(Id([9; 32])),
    };
    assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
    let c = Config::new(ChunkerParams::default(), 16 << 20);
    assert_eq!(Config::decode(&c.encode()).unwrap(), c);
    let mut bad_c = c.clone();
    bad_c.version = 2;
    assert_eq!(
        Config::decode(&bad_c.encode()),
        Err(DecodeError::Version(2))
    );
}

#[test]
fn unknown_file_version_refused() {
    let mut s = seal_file(&keys(), FileKind::Config, b"{}");
    s[5] = 9;
    assert_eq!(
        open_file(&keys(), FileKind::Config, &s),
        Err(DecodeError::Version(9))
    );
    assert_eq!(peek_version(FileKind::Config, &s), Ok(9));
}

#[test]
fn verification_bounds_are_enforced_and_clip_keeps_within_them() {
    let v = Verification {
        time: "2026-11-22T07:52:44.5+01:00".into(),
        method: VerificationMethod::CheckReadDataSubset,
        subset: Some("2/5".into()),
        fraction: Some(0.25),
        result: VerificationResult::Passed,
        snapshots: vec![Id([1; 32])],
        tree: None,
        bytes_read: 7,
        hostname: "h".into(),
        username: "u".into(),
        program_version: "cista 0.1.0".into(),
        detail: clip(&"é".repeat(MAX_RECORD_TEXT)),
    };
    assert!(v.detail.len() <= MAX_RECORD_TEXT && v.detail.len() > MAX_RECORD_TEXT - 2);
    let json: serde_json::Value = serde_json::from_slice(&v.encode()).unwrap();
    assert_eq!(json["method"], "check_read_data_subset");
    assert_eq!(json["result"], "passed");
    assert_eq!(Verification::decode(&v.encode()).unwrap(), v);
    let too_long = Verification {
        hostname: "h".repeat(MAX_RECORD_TEXT + 1),
        ..v.clone()
    };
    let e = Verification::decode(&too_long.encode()).unwrap_err();
    assert!(e.to_string().contains("hostname"), "{e}");
    let bad_fraction = Verification {
        fraction: Some(1.5),
        ..v.clone()
    };
    assert!(Verification::decode(&bad_fraction.encode()).is_err());
    let bad_time = Verification {
        time: "yesterday".into(),
        ..v
    };
    assert!(Verification::decode(&bad_time.encode()).is_err());
    // Optional fields may be absent.
    let minimal = br#"{"time":"2026-01-01T00:00:00Z","method":"drill","result":"failed","snapshots":[],"bytes_read":0,"hostname":"","username":"","program_version":"cista"}"#;
    let m = Verification::decode(minimal).unwrap();
    assert_eq!((m.tree, m.fraction, m.detail.as_str()), (None, None, ""));
}
