//! Scrypt shares mined in-process through the pool's Stratum server (Litecoin), ground by
//! [`StratumClient::grind_target`] on the litecoin-regtest chain (scrypt proof of work).
//!
//! Each share is ground to the block target too (on regtest about every other hash meets it),
//! so every accepted share is a block, as with SHA-256d at the BSV tests' difficulties. The share
//! target taken is the harder of the pool's difficulty read in both conventions (Bitcoin's, and
//! scrypt's 65,536 times easier), so a share is valid whichever the preset uses.

use super::stratum_client::StratumClient;
use pool_core::chain::Chain;
use pool_core::{DifficultyUnit, Target};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Scrypt hashes one share may take before the test gives up (~0.4 ms each).
const MAX_HASHES_PER_SHARE: u64 = 200_000;

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
    client.use_chain(Chain::LitecoinRegtest.params());
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
        let solution = client.grind_target(&job, &share, None, MAX_HASHES_PER_SHARE);
        let left = deadline.saturating_duration_since(Instant::now());
        match client.submit(user, &solution) {
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
