//! Scrypt shares mined in-process through the pool's Stratum server (Litecoin): the header is
//! built by [`StratumClient::header`] from `mining.notify`, its proof of work is
//! `pool_core::pow::scrypt_header`.
//!
//! Each share is ground to the block target too (on regtest about every other hash meets it),
//! so every accepted share is a block, as with SHA-256d at the BSV tests' difficulties. The share
//! target taken is the harder of the pool's difficulty read in both conventions (Bitcoin's, and
//! scrypt's 65,536 times easier), so a share is valid whichever the preset uses.

use super::stratum_client::StratumClient;
use pool_core::{DifficultyUnit, Target};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Scrypt hashes one share may take before the test gives up (~0.4 ms each).
const MAX_HASHES_PER_SHARE: u32 = 200_000;

/// Connects as `user`, mines `shares` shares that are blocks, each accepted by the pool, waiting
/// (bounded by `timeout`) for the job on the new block after each; panics (with `pool_log()`)
/// otherwise.
pub fn mine_scrypt_blocks(
    pool: SocketAddr,
    user: &str,
    shares: u64,
    timeout: Duration,
    pool_log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    let (mut client, mut job) = StratumClient::authorized(pool, user);
    let mut extranonce2: u64 = 0;
    let mut n = 0;
    while n < shares {
        assert!(
            Instant::now() <= deadline,
            "{shares} scrypt blocks took longer than {timeout:?}\n{}",
            pool_log()
        );
        let block = Target::from_compact(job.nbits).expect("the job's nbits");
        let share = [DifficultyUnit::Bitcoin, DifficultyUnit::Scrypt]
            .into_iter()
            .map(|u| u.target(client.difficulty).expect("a share target"))
            .fold(block, Target::harder);
        extranonce2 += 1;
        let mut en2 = extranonce2.to_le_bytes().to_vec();
        en2.resize(client.extranonce2_size, 0);
        let nonce = (0..MAX_HASHES_PER_SHARE)
            .find(|nonce| {
                let header = client.header(&job, &en2, job.ntime, *nonce, job.version);
                share.is_met_by(&pool_core::pow::scrypt_header(&header))
            })
            .unwrap_or_else(|| panic!("no scrypt block within {MAX_HASHES_PER_SHARE} hashes"));
        let params = serde_json::json!([
            user,
            job.job_id,
            hex::encode(&en2),
            format!("{:08x}", job.ntime),
            format!("{nonce:08x}"),
        ]);
        let left = deadline.saturating_duration_since(Instant::now());
        match client.request("mining.submit", params) {
            Ok(serde_json::Value::Bool(true)) => n += 1,
            // A job of the block before: a block of another connection (or of the node) came
            // while the job reached us. Mine on the new block's job.
            Err(e) if e.message.to_ascii_lowercase().contains("stale") => {
                if client
                    .latest_job()
                    .is_some_and(|j| j.prev_hash != job.prev_hash)
                {
                    job = client.latest_job().expect("a job");
                    continue;
                }
            }
            other => panic!("share {n} of {user}: {other:?}\n{}", pool_log()),
        }
        if n < shares {
            job = client
                .wait_for_new_block(&job.prev_hash, left)
                .unwrap_or_else(|| panic!("no job on the new block\n{}", pool_log()));
        }
    }
}
