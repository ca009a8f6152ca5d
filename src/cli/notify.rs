//! `obtc-pool notify --config FILE`: tell a running pool that the node has a new block
//! (for the node's `-blocknotify`).

use std::path::Path;

pub fn run(config: &Path) -> anyhow::Result<std::process::ExitCode> {
    let _ = config;
    anyhow::bail!("not implemented yet")
}
