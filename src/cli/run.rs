//! `obtc-pool run --config FILE`: start the pool.

use std::path::Path;

pub fn run(config: &Path) -> anyhow::Result<std::process::ExitCode> {
    let _ = config;
    anyhow::bail!("not implemented yet")
}
