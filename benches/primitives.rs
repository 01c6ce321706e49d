//! Throughput of cista's hot primitives: chunking, keyed ids, compression, sealing, pack
//! headers and the in-memory index.
//!
//! ```sh
//! nice -n 10 cargo bench --bench primitives            # full run, a few minutes on 2 cores
//! nice -n 10 cargo bench --bench primitives -- --quick # faster, coarser
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench` flag) criterion runs each routine once; the
//! inputs are then scaled down so the test suite stays fast. `docs/performance.md` records the
//! medians on the reference machine.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};

use cista::chunker::Chunker;
use cista::compress;
use cista::crypto::Keys;
use cista::format::{self, BlobEntry, BlobType, ChunkerParams, IndexFile, IndexPack};
use cista::Id;
use cista::Index;

const MIB: usize = 1 << 20;

/// True when criterion is benchmarking (`cargo bench`), false under `cargo test`.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Deterministic xorshift64* stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Incompressible pseudo-random bytes.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Log- or SQL-dump-like text: words from a small vocabulary, numbers, punctuation and newlines.
/// zstd -3 compresses it to roughly a third, like source code or a pg_dump.
fn text_bytes(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "backup",
        "snapshot",
        "INSERT",
        "INTO",
        "VALUES",
        "pgbench_accounts",
        "fn",
        "let",
        "mut",
        "return",
        "self",
        "struct",
        "impl",
        "error",
        "warning",
        "info",
        "chunk",
        "pack",
        "index",
        "tree",
        "blob",
        "select",
        "from",
        "where",
        "and",
        "or",
        "not",
        "null",
        "true",
        "false",
        "user",
        "host",
        "file",
        "directory",
        "size",
        "time",
        "open",
        "close",
        "read",
        "write",
        "sync",
        "data",
        "value",
        "key",
        "id",
        "name",
        "path",
        "=",
        "(",
        ")",
        ";",
        "{",
        "}",
        ",",
        "->",
        "::",
    ];
    let mut rng = Rng(seed | 1);
    let mut v = Vec::with_capacity(len + 64);
    while v.len() < len {
        let r = rng.next();
        match r % 8 {
            0 => v.extend_from_slice(format!("{}", (r >> 8) % 100_000).as_bytes()),
            1 if r & 0x100 == 0 => v.push(b'\n'),
            _ => v.extend_from_slice(WORDS[((r >> 16) as usize) % WORDS.len()].as_bytes()),
        }
        v.push(b' ');
    }
    v.truncate(len);
    v
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

fn chunker(c: &mut Criterion) {
    let len = if benchmarking() { 64 * MIB } else { 4 * MIB };
    let data = random_bytes(len, 1);
    let chunker = Chunker::new(ChunkerParams::default(), &[1; 32]);
    let mut g = c.benchmark_group("chunker");
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function(
        BenchmarkId::new("cut", format!("{}MiB-random", len / MIB)),
        |b| b.iter(|| black_box(chunker.cut(black_box(&data), true))),
    );
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let keys = Keys::from_master([1; 32]);
    let data = random_bytes(MIB, 2);
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("blob_id_keyed_blake3/1MiB", |b| {
        b.iter(|| black_box(keys.blob_id(black_box(&data))))
    });
    g.bench_function("of_bytes_blake3/1MiB", |b| {
        b.iter(|| black_box(Id::of_bytes(black_box(&data))))
    });
    g.finish();
}

fn compression(c: &mut Criterion) {
    let text = text_bytes(MIB, 3);
    let random = random_bytes(MIB, 4);
    if let Some(z) = compress::compress(&text, 3) {
        eprintln!(
            "compress level 3: text 1 MiB -> {} bytes (ratio {:.2})",
            z.len(),
            MIB as f64 / z.len() as f64
        );
    }
    let mut g = c.benchmark_group("zstd3");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("compress/text-1MiB", |b| {
        b.iter(|| black_box(compress::compress(black_box(&text), 3)))
    });
    g.bench_function("compress/random-1MiB", |b| {
        b.iter(|| black_box(compress::compress(black_box(&random), 3)))
    });
    let z = compress::compress(&text, 3).expect("text compresses");
    g.bench_function("decompress/text-1MiB", |b| {
        b.iter(|| black_box(compress::decompress(black_box(&z), MIB).unwrap()))
    });
    g.finish();
}

fn sealing(c: &mut Criterion) {
    let keys = Keys::from_master([1; 32]);
    let data = random_bytes(MIB, 5);
    let text = text_bytes(MIB, 6);
    let aad = b"bench aad";
    let sealed = keys.seal(aad, &data);
    let mut g = c.benchmark_group("aes256gcmsiv");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("seal/1MiB", |b| {
        b.iter(|| black_box(keys.seal(aad, black_box(&data))))
    });
    g.bench_function("open/1MiB", |b| {
        b.iter(|| black_box(keys.open(aad, black_box(&sealed)).unwrap()))
    });
    g.finish();

    // A whole blob: (zstd) + seal on write; open + (unzstd) + keyed-BLAKE3 verify on read.
    let mut g = c.benchmark_group("blob");
    g.throughput(Throughput::Bytes(MIB as u64));
    for (name, raw) in [("random", &data), ("text", &text)] {
        let id = keys.blob_id(raw);
        let sealed = format::seal_blob(&keys, BlobType::Data, &id, raw, Some(3));
        g.bench_function(format!("seal_blob/{name}-1MiB-zstd3"), |b| {
            b.iter(|| {
                black_box(format::seal_blob(
                    &keys,
                    BlobType::Data,
                    &id,
                    black_box(raw),
                    Some(3),
                ))
            })
        });
        g.bench_function(format!("open_blob/{name}-1MiB"), |b| {
            b.iter(|| {
                black_box(
                    format::open_blob(&keys, BlobType::Data, &id, black_box(&sealed)).unwrap(),
                )
            })
        });
    }
    g.finish();
}

fn entry(rng: &mut Rng, offset: u32) -> BlobEntry {
    let mut id = [0u8; 32];
    for w in id.chunks_mut(8) {
        w.copy_from_slice(&rng.next().to_le_bytes());
    }
    BlobEntry {
        ty: BlobType::Data,
        id: Id(id),
        offset,
        length: 1 << 20,
        raw_len: 1 << 20,
    }
}

fn pack_header(c: &mut Criterion) {
    let keys = Keys::from_master([1; 32]);
    let mut rng = Rng(7);
    let entries: Vec<BlobEntry> = (0..1000).map(|i| entry(&mut rng, i << 10)).collect();
    let mut g = c.benchmark_group("pack_header");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("seal/1000-entries", |b| {
        b.iter(|| black_box(format::seal_pack_header(&keys, black_box(&entries))))
    });
    g.finish();
}

fn index(c: &mut Criterion) {
    let n: usize = if benchmarking() { 1_000_000 } else { 10_000 };
    const PER_PACK: usize = 50;
    let mut rng = Rng(8);
    let packs: Vec<IndexPack> = (0..n / PER_PACK)
        .map(|_| IndexPack {
            id: Id::random(),
            blobs: (0..PER_PACK as u32)
                .map(|i| entry(&mut rng, i << 20))
                .collect(),
        })
        .collect();
    let file = IndexFile {
        supersedes: Vec::new(),
        packs,
    };
    let ids: Vec<Id> = file
        .packs
        .iter()
        .flat_map(|p| p.blobs.iter().map(|e| e.id))
        .collect();
    eprintln!(
        "Index::ENTRY_BYTES = {} ({} entries -> {:.1} MiB of entries)",
        Index::ENTRY_BYTES,
        n,
        (Index::ENTRY_BYTES * n) as f64 / MIB as f64
    );

    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("from_files/{n}"), |b| {
        b.iter(|| black_box(Index::from_files(std::iter::once(black_box(&file)))))
    });

    let idx = Index::from_files(std::iter::once(&file));
    assert_eq!(idx.len(BlobType::Data), n);
    // Lookups in an order unrelated to the sorted one: 10,000 hits, then 10,000 misses.
    const LOOKUPS: usize = 10_000;
    let hits: Vec<Id> = (0..LOOKUPS)
        .map(|_| ids[(rng.next() % n as u64) as usize])
        .collect();
    let misses: Vec<Id> = (0..LOOKUPS).map(|_| entry(&mut rng, 0).id).collect();
    g.throughput(Throughput::Elements(LOOKUPS as u64));
    g.bench_function(format!("get_hit/{n}"), |b| {
        b.iter(|| {
            for id in &hits {
                black_box(idx.get(BlobType::Data, black_box(id)).unwrap());
            }
        })
    });
    g.bench_function(format!("get_miss/{n}"), |b| {
        b.iter(|| {
            for id in &misses {
                assert!(idx.get(BlobType::Data, black_box(id)).is_none());
            }
        })
    });
    // Encoding and decoding the index file itself (what `Index::load` does per file, before
    // the merge above).
    let raw = file.encode();
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("index_file_decode/{n}"), |b| {
        b.iter(|| black_box(IndexFile::decode(black_box(&raw)).unwrap()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = chunker, hashing, compression, sealing, pack_header, index
}

fn main() {
    eprintln!("Index::ENTRY_BYTES = {}", Index::ENTRY_BYTES);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
