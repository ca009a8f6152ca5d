//! `loadgen null-server`: a Stratum V1 responder that answers every request at once and checks
//! nothing. It is the ceiling of this machine and this load generator: pool figures are read as
//! a ratio of it, measured in the same run.
//!
//! It is as lean as a pool's server would be and no leaner: one task per connection, every line
//! parsed with serde_json (as the pool parses it), replies to everything read in one `read`
//! written back with one `write`.

use serde::Deserialize;
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A line longer than this closes the connection (no honest miner sends one).
const MAX_LINE: usize = 64 * 1024;

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    method: String,
}

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    eprintln!("null-server listening on {}", listener.local_addr()?);
    let next_extranonce1 = Arc::new(AtomicU32::new(1));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _)) => {
                        let extranonce1 = next_extranonce1.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            // A connection's end, clean or not, is none of the server's business.
                            let _ = answer(stream, extranonce1).await;
                        });
                    }
                    // Out of descriptors and the like: keep serving the connections we have.
                    Err(e) => {
                        eprintln!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn answer(mut stream: TcpStream, extranonce1: u32) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut input: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut output: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        if input.capacity() - input.len() < 4096 {
            input.reserve(16 * 1024);
        }
        let n = stream.read_buf(&mut input).await?;
        if n == 0 {
            return Ok(());
        }
        let mut consumed = 0;
        while let Some(pos) = input[consumed..].iter().position(|&b| b == b'\n') {
            let line = &input[consumed..consumed + pos];
            consumed += pos + 1;
            reply(line, extranonce1, &mut output);
        }
        input.drain(..consumed);
        if input.len() > MAX_LINE {
            return Ok(());
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
    }
}

fn reply(line: &[u8], extranonce1: u32, out: &mut Vec<u8>) {
    let Ok(request) = serde_json::from_slice::<Request>(line) else {
        return;
    };
    let id = &request.id;
    // Writes into a Vec cannot fail.
    let _ = match request.method.as_str() {
        "mining.subscribe" => writeln!(
            out,
            r#"{{"id":{id},"result":[[["mining.set_difficulty","1"],["mining.notify","1"]],"{extranonce1:08x}",4],"error":null}}"#
        ),
        "mining.configure" => writeln!(
            out,
            r#"{{"id":{id},"result":{{"version-rolling":true,"version-rolling.mask":"1fffe000"}},"error":null}}"#
        ),
        "mining.authorize" => writeln!(
            out,
            concat!(
                r#"{{"id":{id},"result":true,"error":null}}"#,
                "\n",
                r#"{{"id":null,"method":"mining.set_difficulty","params":[1]}}"#,
                "\n",
                r#"{{"id":null,"method":"mining.notify","params":["1","#,
                r#""0000000000000000000000000000000000000000000000000000000000000000","#,
                r#""01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0d03","#,
                r#""ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000","#,
                r#"[],"20000000","1d00ffff","6744e1a0",true]}}"#
            ),
            id = id,
        ),
        _ => writeln!(out, r#"{{"id":{id},"result":true,"error":null}}"#),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(out: &[u8]) -> Vec<Value> {
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn answers_each_method() {
        let mut out = Vec::new();
        reply(
            br#"{"id":1,"method":"mining.subscribe","params":[]}"#,
            5,
            &mut out,
        );
        reply(
            br#"{"id":"a","method":"mining.authorize","params":["u","x"]}"#,
            5,
            &mut out,
        );
        reply(
            br#"{"id":3,"method":"mining.submit","params":[]}"#,
            5,
            &mut out,
        );
        reply(b"not json", 5, &mut out);
        let got = lines(&out);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0]["result"][1], "00000005");
        assert_eq!(got[0]["result"][2], 4);
        assert_eq!(got[1]["id"], "a");
        assert_eq!(got[1]["result"], true);
        assert_eq!(got[2]["method"], "mining.set_difficulty");
        assert_eq!(got[3]["method"], "mining.notify");
        assert_eq!(got[3]["params"][0], "1");
        assert_eq!(got[4]["id"], 3);
        assert_eq!(got[4]["result"], true);
    }
}
