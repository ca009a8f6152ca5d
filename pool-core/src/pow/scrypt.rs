//! scrypt, Litecoin's proof of work: N = 1024, r = 1, p = 1, the 80-byte header as both password
//! and salt, 32 bytes out (RustCrypto's `scrypt` crate). Memory-hard (128 KiB and ~0.4 ms a
//! hash): callers on an async runtime must run it where it cannot stall the workers.

use scrypt::Params;
use std::sync::OnceLock;

/// log2(N) = 10, r = 1, p = 1, 32 bytes out.
fn params() -> &'static Params {
    static PARAMS: OnceLock<Params> = OnceLock::new();
    PARAMS.get_or_init(|| Params::new(10, 1, 1, 32).expect("scrypt parameters N=1024 r=1 p=1"))
}

/// The scrypt proof-of-work hash of a header, raw bytes (read little-endian against a target).
pub fn scrypt_header(header: &[u8; 80]) -> [u8; 32] {
    let mut out = [0u8; 32];
    scrypt::scrypt(header, header, params(), &mut out).expect("a 32-byte scrypt output is valid");
    out
}
