//! `obtc-pool init`: write a commented example configuration.

pub fn run() -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not implemented yet")
}
