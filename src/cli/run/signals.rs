//! Ctrl-C and SIGTERM: a clean stop.

use tokio_util::sync::CancellationToken;

/// SIGINT (Ctrl-C) and SIGTERM handlers, installed before the pool listens: a signal that
/// arrives as soon as miners (or a test) can connect must stop the pool cleanly, not kill it by
/// the default action.
pub struct ShutdownSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    pub fn install() -> ShutdownSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for {name}: {e}");
                None
            }
        };
        ShutdownSignals {
            interrupt: listen(SignalKind::interrupt(), "Ctrl-C"),
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }
}

async fn recv_or_never(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

pub async fn wait_for_signal(mut signals: ShutdownSignals, shutdown: CancellationToken) {
    tokio::select! {
        _ = recv_or_never(signals.interrupt.as_mut()) => tracing::info!("Ctrl-C: shutting down"),
        _ = recv_or_never(signals.terminate.as_mut()) => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}
