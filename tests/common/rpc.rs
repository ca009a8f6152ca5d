//! The pool's JSON-RPC over plain HTTP, as a client without a library would call it.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// POSTs the JSON-RPC `body` to the pool's RPC at `addr` (with the bearer `token`, if any) and
/// returns the reply's JSON.
pub fn post(addr: SocketAddr, body: &str, token: Option<&str>) -> Value {
    let mut stream = TcpStream::connect(addr).expect("connect to the RPC");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    let (_, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP body in {reply:?}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("reply {body:?} is not JSON: {e}"))
}
