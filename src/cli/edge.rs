//! `obtc-pool edge --config FILE`: a Stratum edge of the scale-out pool. It runs the Stratum
//! server (share checks, jobs from its own node, found blocks to that node at once) and owns no
//! ledger: every event goes to the JetStream share stream through the
//! [`stream::publisher::EdgePublisher`], and a miner's `true` is sent only after the stream's
//! publish ack. The core applies the stream to the ledger (and resolves open block candidates);
//! the edge follows the core's ledger head (coinbase anchors) and operator bans, and reports its
//! live connections ([`stream::edge_control`]).
//!
//! The config is `run`'s plus `[stream]` and `[edge] id`: the id is the first byte of every
//! extranonce1 the edge hands out and the top 16 bits of its job ids, so two edges never hand
//! out the same work or job id. Ctrl-C / SIGTERM: stop accepting miners, let in-flight shares
//! get their acks (bounded), drain the publisher, exit 0.

use crate::cli::run::{check_node, serve_role, server_config, wait_for_signal, ShutdownSignals};
use crate::config::Config;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum::server::job_source::TemplateSource;
use stratum::server::Server;
use stream::edge_control::{self, EdgeControl};
use stream::publisher::EdgePublisher;
use stream::setup::SetupError;
use tokio_util::sync::CancellationToken;

/// After a shutdown signal, shares still waiting for the stream get this long in all (the
/// server's connections wait for their acks, then the publisher drains); then what is left
/// fails (those shares were never acknowledged).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);

pub fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    serve_role(config_path, |config| serve(config, config_path))
}

async fn serve(config: Config, config_path: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let Some(settings) = config.stream.clone() else {
        anyhow::bail!(
            "{}: obtc-pool edge needs a [stream] section (servers = [\"nats://…\"], the share \
             stream's NATS servers)",
            config_path.display()
        );
    };
    let Some(edge) = config.edge.clone() else {
        anyhow::bail!(
            "{}: obtc-pool edge needs an [edge] section with this edge's id (id = 1 to 255, \
             unique per edge)",
            config_path.display()
        );
    };
    let mut server_config = server_config(&config)?;
    let size = server_config.job_config.extranonce1_size;
    if size < 2 {
        anyhow::bail!(
            "an edge needs an extranonce1 of at least 2 bytes (its id, then a per-connection \
             counter); this one is {size}"
        );
    }
    server_config.extranonce1_prefix = vec![edge.id as u8];
    server_config.first_job_id = (u64::from(edge.id) << 48) | 1;
    if let TemplateSource::Node(n) = &server_config.source {
        check_node(n).await?;
        for also in &server_config.submit_also {
            if let Err(e) = also.get_blockchain_info().await {
                tracing::warn!(url = %also.endpoint().url, "submit_also node not answering yet: {e}");
            }
        }
    }
    let signals = ShutdownSignals::install();
    let shutdown = CancellationToken::new();
    let signal_task = tokio::spawn(wait_for_signal(signals, shutdown.clone()));

    let client = stream::setup::connect(&settings, &format!("obtc-pool edge {}", edge.id)).await?;
    let js = stream::setup::jetstream(client.clone(), &settings);
    loop {
        let ensured = tokio::select! {
            _ = shutdown.cancelled() => {
                tracing::info!("stopped before the share stream was ready");
                return Ok(());
            }
            r = stream::setup::ensure_stream(&js, &settings, Duration::from_secs(30)) => r,
        };
        match ensured {
            Ok(_) => break,
            Err(e @ SetupError::Unsafe { .. }) => return Err(e.into()),
            Err(e) => tracing::warn!(
                servers = %settings.servers.join(","),
                "the share stream is not ready ({e}); waiting for the NATS cluster before \
                 serving miners"
            ),
        }
    }

    let publisher = EdgePublisher::start(client.clone(), &settings, edge.id);
    let control_stop = CancellationToken::new();
    let control = edge_control::spawn(
        EdgeControl {
            client: client.clone(),
            settings: settings.clone(),
            publisher: Arc::clone(&publisher),
            bans: Arc::clone(&server_config.bans),
            registry: Arc::clone(&server_config.registry),
        },
        control_stop.clone(),
    );
    let server = Server::bind_with_sink(server_config, publisher.clone()).await?;
    let listen = server
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::info!(
        edge_id = edge.id,
        boot_id = %format!("{:016x}", publisher.boot_id()),
        stream = %settings.name,
        servers = %settings.servers.join(","),
        %listen,
        chain = config.chain.name,
        startup_ms = started.elapsed().as_millis() as u64,
        "obtc-pool edge running"
    );
    // A shutdown that waits on an unreachable stream is cut short.
    let watchdog = {
        let publisher = Arc::clone(&publisher);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_WAIT).await;
            tracing::warn!(
                "shares still wait for the stream {} s after the shutdown signal: giving up on them",
                SHUTDOWN_WAIT.as_secs()
            );
            publisher.stop();
        })
    };
    server.run(shutdown.clone()).await;
    let counters = publisher.drain(SHUTDOWN_WAIT).await;
    watchdog.abort();
    signal_task.abort();
    control_stop.cancel();
    let _ = control.await;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
    tracing::info!(
        batches = counters.batches,
        events = counters.events,
        retries = counters.retries,
        abandoned = counters.abandoned,
        "edge stopped; bye"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[chain]
preset = "bsv-regtest"
[node]
kind = "synthetic"
[pool]
payout_address = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX"
[ledger]
data_dir = "data"
"#;

    fn refusal(extra: &str) -> String {
        let config = Config::from_text(&format!("{BASE}{extra}"), Path::new(".")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = runtime
            .block_on(serve(config, Path::new("edge.toml")))
            .expect_err("refused");
        e.to_string()
    }

    #[test]
    fn an_edge_needs_its_stream_and_edge_sections() {
        let no_stream = refusal("[edge]\nid = 1\n");
        assert!(
            no_stream.contains("edge.toml") && no_stream.contains("[stream]"),
            "{no_stream}"
        );
        let no_edge = refusal("[stream]\nservers = [\"nats://127.0.0.1:4222\"]\n");
        assert!(no_edge.contains("[edge]"), "{no_edge}");
    }
}
