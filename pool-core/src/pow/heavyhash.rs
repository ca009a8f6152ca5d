//! HeavyHash, oBTC's proof of work (see the spec in the repository docs): a 64×64 matrix of
//! 4-bit values drawn from xoshiro256++ seeded by `SHA3(prev_hash)`, kept only if it has full
//! rank, then `SHA3(h1 XOR pack(M · nibbles(h1) >> 10))` with `h1 = SHA3(header)`.
//!
//! The matrix depends only on the previous block hash, so a pool builds it once per block
//! ([`Matrix::for_prev_hash`], about 60 µs) and hashes every share with
//! [`heavyhash_with_matrix`], which does not allocate.

use sha3::{Digest, Sha3_256};

/// Matrix side: 64 rows and 64 columns, one per nibble of a 32-byte hash.
pub const MATRIX_SIZE: usize = 64;

/// Pivots with an absolute value at or below this count as zero in the rank test (the reference
/// implementation's double-precision Gaussian elimination; consensus is defined by it).
const RANK_EPSILON: f64 = 1e-9;

/// A HeavyHash matrix of 4-bit values, stored column by column as `u16`: the product then adds
/// `column_j · x[j]` into 64 accumulators, which compiles to packed 16-bit multiply-adds with no
/// horizontal sums (measured 3-4x faster than row dot products). A row sum is at most
/// 64·15·15 = 14,400, so 16 bits never overflow.
#[derive(Clone, PartialEq, Eq)]
pub struct Matrix {
    /// `columns[j][i]` is the spec's `M[i][j]`.
    columns: [[u16; MATRIX_SIZE]; MATRIX_SIZE],
    generations: u32,
    prev_hash: [u8; 32],
}

impl Matrix {
    /// Draws the matrix for a block whose header links to `prev_hash` (32 bytes as serialized in
    /// the header, i.e. `header[4..36]`), redrawing from the same generator until it has full rank.
    pub fn for_prev_hash(prev_hash: &[u8; 32]) -> Matrix {
        let seed: [u8; 32] = Sha3_256::digest(prev_hash).into();
        let mut rng = Xoshiro256PlusPlus::from_seed(&seed);
        let mut generations = 0u32;
        loop {
            generations += 1;
            let rows = draw_rows(&mut rng);
            if is_full_rank(&rows) {
                return Matrix::from_rows(&rows, generations, *prev_hash);
            }
        }
    }

    /// How many matrices were drawn until one had full rank (1 almost always).
    pub fn generations(&self) -> u32 {
        self.generations
    }

    /// The value at row `row`, column `col` (each 0..64; the value is 0..16).
    pub fn get(&self, row: usize, col: usize) -> u16 {
        self.columns[col][row]
    }

    /// The previous block hash (serialized order) this matrix belongs to.
    pub fn prev_hash(&self) -> &[u8; 32] {
        &self.prev_hash
    }

    fn from_rows(
        rows: &[[u16; MATRIX_SIZE]; MATRIX_SIZE],
        generations: u32,
        prev_hash: [u8; 32],
    ) -> Matrix {
        let mut columns = [[0u16; MATRIX_SIZE]; MATRIX_SIZE];
        for (i, row) in rows.iter().enumerate() {
            for (j, value) in row.iter().enumerate() {
                columns[j][i] = *value;
            }
        }
        Matrix {
            columns,
            generations,
            prev_hash,
        }
    }
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // 4096 numbers help nobody in a log line.
        f.debug_struct("Matrix")
            .field("prev_hash", &hex::encode(self.prev_hash))
            .field("generations", &self.generations)
            .field("column0", &&self.columns[0][..8])
            .finish_non_exhaustive()
    }
}

/// HeavyHash of an 80-byte header, building the matrix from the header's previous hash (slow
/// path: about 60 µs of matrix generation; use [`heavyhash_with_matrix`] for shares).
pub fn heavyhash(header: &[u8; 80]) -> [u8; 32] {
    let matrix = Matrix::for_prev_hash(&prev_hash_of(header));
    heavyhash_with_matrix(&matrix, header)
}

/// HeavyHash of an 80-byte header with the matrix of its previous hash already built. The caller
/// guarantees `matrix` was built for `header[4..36]` ([`Matrix::prev_hash`]); only debug builds
/// check it.
#[inline]
pub fn heavyhash_with_matrix(matrix: &Matrix, header: &[u8; 80]) -> [u8; 32] {
    debug_assert_eq!(
        &header[4..36],
        matrix.prev_hash.as_slice(),
        "HeavyHash matrix built for another previous block hash"
    );
    let h1: [u8; 32] = Sha3_256::digest(header).into();

    // p = M · x with x the nibbles of h1, high nibble first: x[2i] = h1[i] >> 4,
    // x[2i+1] = h1[i] & 0xf. Wrapping arithmetic lets the compiler use packed 16-bit lanes; the
    // true sums never exceed 14,400, so nothing actually wraps.
    let mut p = [0u16; MATRIX_SIZE];
    for (i, byte) in h1.iter().enumerate() {
        accumulate(&mut p, &matrix.columns[2 * i], u16::from(byte >> 4));
        accumulate(&mut p, &matrix.columns[2 * i + 1], u16::from(byte & 0x0f));
    }

    let mut mixed = [0u8; 32];
    for (i, out) in mixed.iter_mut().enumerate() {
        // Each p >> 10 is at most 14,400 >> 10 = 14: fits a nibble.
        let hi = (p[2 * i] >> 10) as u8;
        let lo = (p[2 * i + 1] >> 10) as u8;
        *out = h1[i] ^ ((hi << 4) | lo);
    }
    Sha3_256::digest(mixed).into()
}

/// The previous block hash as serialized in a header.
#[inline]
pub fn prev_hash_of(header: &[u8; 80]) -> [u8; 32] {
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&header[4..36]);
    prev
}

#[inline(always)]
fn accumulate(p: &mut [u16; MATRIX_SIZE], column: &[u16; MATRIX_SIZE], nibble: u16) {
    for (sum, m) in p.iter_mut().zip(column) {
        *sum = sum.wrapping_add(m.wrapping_mul(nibble));
    }
}

fn draw_rows(rng: &mut Xoshiro256PlusPlus) -> [[u16; MATRIX_SIZE]; MATRIX_SIZE] {
    let mut rows = [[0u16; MATRIX_SIZE]; MATRIX_SIZE];
    for row in rows.iter_mut() {
        for block in row.chunks_exact_mut(16) {
            let v = rng.next_u64();
            for (k, cell) in block.iter_mut().enumerate() {
                *cell = ((v >> (4 * k)) & 0x0f) as u16;
            }
        }
    }
    rows
}

/// The reference rank test, step for step: Gaussian elimination in `f64`, taking for each column
/// the first not-yet-used row whose entry exceeds [`RANK_EPSILON`] in absolute value.
fn is_full_rank(rows: &[[u16; MATRIX_SIZE]; MATRIX_SIZE]) -> bool {
    let mut b = [[0f64; MATRIX_SIZE]; MATRIX_SIZE];
    for (dst, src) in b.iter_mut().zip(rows.iter()) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d = f64::from(*s);
        }
    }
    let mut rank = 0;
    let mut row_selected = [false; MATRIX_SIZE];
    for i in 0..MATRIX_SIZE {
        let Some(j) = (0..MATRIX_SIZE).find(|&j| !row_selected[j] && b[j][i].abs() > RANK_EPSILON)
        else {
            continue;
        };
        rank += 1;
        row_selected[j] = true;
        let pivot = b[j][i];
        for v in b[j][i + 1..].iter_mut() {
            *v /= pivot;
        }
        let pivot_row = b[j];
        for (k, row) in b.iter_mut().enumerate() {
            let factor = row[i];
            if k != j && factor.abs() > RANK_EPSILON {
                for (v, pv) in row[i + 1..].iter_mut().zip(&pivot_row[i + 1..]) {
                    *v -= pv * factor;
                }
            }
        }
    }
    rank == MATRIX_SIZE
}

/// xoshiro256++ (Blackman and Vigna), the generator the matrix is drawn from.
struct Xoshiro256PlusPlus {
    s: [u64; 4],
}

impl Xoshiro256PlusPlus {
    /// The state is the seed's four 64-bit little-endian words, in order.
    fn from_seed(seed: &[u8; 32]) -> Self {
        let mut s = [0u64; 4];
        for (word, bytes) in s.iter_mut().zip(seed.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(bytes);
            *word = u64::from_le_bytes(b);
        }
        Xoshiro256PlusPlus { s }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

#[cfg(test)]
// The reference product below is written index by index, like the spec.
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_sequence() {
        // Reference output of xoshiro256++ for state {1, 2, 3, 4} (from the authors' C code).
        let mut rng = Xoshiro256PlusPlus { s: [1, 2, 3, 4] };
        let expected: [u64; 3] = [41_943_041, 58_720_359, 3_588_806_011_781_223];
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }

    #[test]
    fn singular_matrices_fail_the_rank_test() {
        let zero = [[0u16; MATRIX_SIZE]; MATRIX_SIZE];
        assert!(!is_full_rank(&zero));

        let mut identity = [[0u16; MATRIX_SIZE]; MATRIX_SIZE];
        for (i, row) in identity.iter_mut().enumerate() {
            row[i] = 1;
        }
        assert!(is_full_rank(&identity));

        // Two equal rows: rank 63.
        let mut dup = identity;
        dup[5] = dup[9];
        assert!(!is_full_rank(&dup));

        // One row a multiple of another plus a third: still singular.
        let mut combo = identity;
        for c in 0..MATRIX_SIZE {
            combo[7][c] = 3 * identity[1][c] + 2 * identity[2][c];
        }
        assert!(!is_full_rank(&combo));
    }

    /// Step 2 of the spec written out naively over the spec's row-major `M[i][j]`.
    fn naive_heavyhash(rows: &[[u16; MATRIX_SIZE]; MATRIX_SIZE], header: &[u8; 80]) -> [u8; 32] {
        let h1: [u8; 32] = Sha3_256::digest(header).into();
        let mut x = [0u32; MATRIX_SIZE];
        for i in 0..32 {
            x[2 * i] = u32::from(h1[i] >> 4);
            x[2 * i + 1] = u32::from(h1[i] & 0x0f);
        }
        let mut p = [0u32; MATRIX_SIZE];
        for i in 0..MATRIX_SIZE {
            let sum: u32 = (0..MATRIX_SIZE).map(|j| u32::from(rows[i][j]) * x[j]).sum();
            p[i] = sum >> 10;
        }
        let mut h2 = [0u8; 32];
        for i in 0..32 {
            h2[i] = ((p[2 * i] << 4) | p[2 * i + 1]) as u8;
        }
        let mixed: Vec<u8> = h1.iter().zip(h2).map(|(a, b)| a ^ b).collect();
        Sha3_256::digest(mixed).into()
    }

    #[test]
    fn column_layout_computes_the_spec_product() {
        let mut rng = Xoshiro256PlusPlus::from_seed(&[9u8; 32]);
        let rows = draw_rows(&mut rng);
        let m = Matrix::from_rows(&rows, 1, [0u8; 32]);
        for i in 0..MATRIX_SIZE {
            for j in 0..MATRIX_SIZE {
                assert_eq!(m.get(i, j), rows[i][j]);
            }
        }
        // All-15 matrix: the largest sums (14,400) must not wrap.
        let full = [[15u16; MATRIX_SIZE]; MATRIX_SIZE];
        let mut header = [0u8; 80];
        for nonce in 0u8..50 {
            header[76] = nonce;
            assert_eq!(
                heavyhash_with_matrix(&m, &header),
                naive_heavyhash(&rows, &header)
            );
            assert_eq!(
                heavyhash_with_matrix(&Matrix::from_rows(&full, 1, [0u8; 32]), &header),
                naive_heavyhash(&full, &header)
            );
        }
    }
}
