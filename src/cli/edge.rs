//! `obtc-pool edge --config FILE` (being written).

use std::path::Path;
use std::process::ExitCode;

pub fn run(_config_path: &Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("obtc-pool edge is not built yet")
}
