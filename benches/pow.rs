//! Proof-of-work throughput: SHA-256d and HeavyHash of an 80-byte header, HeavyHash with the
//! block's matrix cached (the pool's hot path) and rebuilt per hash (what the seed's C pool does),
//! and matrix generation alone. Run with `cargo bench --bench pow`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pool_core::pow::{heavyhash, heavyhash_with_matrix, prev_hash_of, sha256d, Matrix};
use pool_core::{MatrixCache, PowAlgorithm, PowHasher};

/// oBTC regtest's genesis header.
const HEADER_HEX: &str = "000000200000000000000000000000000000000000000000000000000000000000000000f5febbad19864a6900b6ce84287511e6e746229ce6239ff3df7481654778a4c4fb162c5fffff7f2000000000";

fn header() -> [u8; 80] {
    let mut h = [0u8; 80];
    hex::decode_to_slice(HEADER_HEX, &mut h).expect("constant header hex");
    h
}

/// Changes the nonce per iteration so nothing can be hoisted out of the loop.
fn bump_nonce(h: &mut [u8; 80]) {
    let nonce = u32::from_le_bytes([h[76], h[77], h[78], h[79]]).wrapping_add(1);
    h[76..80].copy_from_slice(&nonce.to_le_bytes());
}

fn pow(c: &mut Criterion) {
    let mut group = c.benchmark_group("pow");
    group.throughput(Throughput::Elements(1));

    let mut h = header();
    group.bench_function("sha256d_80_bytes", |b| {
        b.iter(|| {
            bump_nonce(&mut h);
            sha256d(black_box(&h))
        })
    });

    let matrix = Matrix::for_prev_hash(&prev_hash_of(&h));
    group.bench_function("heavyhash_cached_matrix", |b| {
        b.iter(|| {
            bump_nonce(&mut h);
            heavyhash_with_matrix(black_box(&matrix), black_box(&h))
        })
    });

    let cache = MatrixCache::default();
    let hasher = PowHasher::new(PowAlgorithm::HeavyHash, &prev_hash_of(&h), &cache);
    group.bench_function("heavyhash_pow_hasher", |b| {
        b.iter(|| {
            bump_nonce(&mut h);
            black_box(&hasher).hash(black_box(&h))
        })
    });

    group.bench_function("heavyhash_matrix_rebuilt_per_hash", |b| {
        b.iter(|| {
            bump_nonce(&mut h);
            heavyhash(black_box(&h))
        })
    });

    let mut prev = [0u8; 32];
    group.bench_function("matrix_generation", |b| {
        b.iter(|| {
            prev[0] = prev[0].wrapping_add(1);
            Matrix::for_prev_hash(black_box(&prev))
        })
    });
    group.finish();
}

criterion_group!(benches, pow);
criterion_main!(benches);
