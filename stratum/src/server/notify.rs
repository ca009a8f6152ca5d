//! The local "new block" trigger: a loopback TCP listener that `obtc-pool notify` (wired to the
//! node's `-blocknotify`) connects to. Any connection, whatever it sends, triggers one template
//! refetch; the listener answers `ok\n` and closes.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub async fn listen(listener: TcpListener, refetch: mpsc::Sender<()>, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening for block notifications");
    }
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((mut stream, peer)) => {
                tracing::info!(%peer, "block notification: fetching a new template");
                // A full channel means a refetch is already pending: that one covers this.
                let _ = refetch.try_send(());
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(b"ok\n")).await;
            }
            Err(e) => {
                tracing::warn!("notify listener accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Sends one trigger to a pool listening on `addr` (blocking; for the CLI).
pub fn send(addr: SocketAddr, timeout: Duration) -> std::io::Result<()> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    std::io::Write::write_all(&mut stream, b"block\n")?;
    let mut reply = [0u8; 3];
    stream.read_exact(&mut reply)?;
    if &reply == b"ok\n" {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "unexpected reply from the pool's notify listener",
        ))
    }
}
