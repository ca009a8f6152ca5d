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

/// The reply of the JSON-RPC call `method(params)` (no token) over HTTP, and the request it
/// sent.
pub fn request(addr: SocketAddr, method: &str, params: &Value) -> (Value, Value) {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let reply = post(addr, &body.to_string(), None);
    (body, reply)
}

/// A reply's result, decoded; `Err` says what failed (the caller adds its logs).
pub fn result_of<T: serde::de::DeserializeOwned>(
    method: &str,
    params: &Value,
    reply: &Value,
) -> Result<T, String> {
    let Some(result) = reply.get("result") else {
        return Err(format!("{method}({params}) failed: {reply}"));
    };
    Ok(serde_json::from_value(result.clone())
        .unwrap_or_else(|e| panic!("{method}({params}): {e}: {result}")))
}

/// With `OBTC_RPC_EXAMPLES=FILE`, `v` is appended to FILE (one JSON document a line): the
/// examples of `docs/rpc.md` come from there.
pub fn example(v: &Value) {
    if let Some(path) = std::env::var_os("OBTC_RPC_EXAMPLES") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{v}").unwrap();
    }
}
