//! `[rpc] metrics_listen`: the metrics on a listener of their own (plain HTTP/1.1, one request
//! per connection, `GET /metrics` only), so a Prometheus server elsewhere can scrape them while
//! the RPC itself stays on loopback.

use super::Metrics;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Largest request head read (a scrape's is a few hundred bytes).
const MAX_HEAD: usize = 8 * 1024;
/// A client has this long to send its request and take the reply.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once (more wait in the listen backlog).
const MAX_OPEN: usize = 16;

/// Binds `addr`; serves until `stop` is cancelled. Returns the bound address.
pub async fn spawn(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr} ([rpc] metrics_listen)"))?;
    let local = listener.local_addr()?;
    if local.ip().is_loopback() {
        tracing::info!(listen = %local, "metrics serving at /metrics");
    } else {
        tracing::info!(
            listen = %local,
            "metrics serving at /metrics on a non-loopback address (they carry no secret)"
        );
    }
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_OPEN));
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, _)) => {
                    let Ok(permit) = Arc::clone(&open).acquire_owned().await else {
                        break;
                    };
                    let metrics = Arc::clone(&metrics);
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(TIMEOUT, serve(stream, &metrics)).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("metrics accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok((local, task))
}

/// Reads one request head and answers it, then closes.
async fn serve(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
            )
            .await;
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => {
            let body = metrics.encode();
            respond(&mut stream, "200 OK", super::CONTENT_TYPE, body.as_bytes()).await
        }
        (_, b"/metrics") => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                b"GET /metrics\n",
            )
            .await
        }
        _ => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"GET /metrics\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
