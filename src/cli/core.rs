//! `obtc-pool core --config FILE` (being written).

use std::path::Path;
use std::process::ExitCode;

pub fn run(_config_path: &Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("obtc-pool core is not built yet")
}
