//! `obtc-pool notify --config FILE`: tell a running pool that the node has a new block (wire it
//! to the node's `-blocknotify`), so miners get new work without waiting for the long poll.

use crate::config::Config;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let addr = config
        .notify
        .listen
        .context("the config has no [notify] listen address; add one and restart the pool")?;
    stratum::server::notify::send(addr, Duration::from_secs(5))
        .with_context(|| format!("cannot reach the pool's notify listener at {addr}"))?;
    Ok(ExitCode::SUCCESS)
}
