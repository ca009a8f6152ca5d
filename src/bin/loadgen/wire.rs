//! The Stratum V1 lines the load generator writes and reads: newline-delimited JSON-RPC.
//!
//! Outgoing lines are formatted straight into a byte buffer (no intermediate `Value`), so the
//! generator spends as little of the shared CPU as it can; incoming lines are parsed into one
//! small struct whose fields are all optional, because a pool may send anything.

use serde::Deserialize;
use serde_json::Value;
use std::io::Write;

/// One line from the peer: a reply (`id` + `result`/`error`) or a notification (`method` + `params`).
#[derive(Debug, Deserialize)]
pub struct Incoming {
    #[serde(default)]
    pub id: Value,
    #[serde(default)]
    pub result: Value,
    #[serde(default)]
    pub error: Value,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Value,
}

impl Incoming {
    pub fn parse(line: &[u8]) -> Option<Incoming> {
        serde_json::from_slice(line).ok()
    }
}

/// How the peer answered one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `result: true` and no error.
    Accepted,
    /// An error with a numeric code (`[code, message, data]` or `{code, message}`), or
    /// `"false"` when the result was false without an error.
    Rejected(String),
    /// Anything else: a reply we cannot read as a verdict.
    Unreadable,
}

/// Reads a reply as a verdict on a request (a submit, an authorize).
pub fn verdict(reply: &Incoming) -> Verdict {
    if !reply.error.is_null() {
        let code = match &reply.error {
            Value::Array(items) => items.first().and_then(Value::as_i64),
            Value::Object(map) => map.get("code").and_then(Value::as_i64),
            _ => None,
        };
        return match code {
            Some(code) => Verdict::Rejected(code.to_string()),
            None => Verdict::Unreadable,
        };
    }
    match reply.result {
        Value::Bool(true) => Verdict::Accepted,
        Value::Bool(false) => Verdict::Rejected("false".to_string()),
        _ => Verdict::Unreadable,
    }
}

/// What the subscribe reply tells a miner: `[subscriptions, extranonce1, extranonce2_size]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub extranonce1: String,
    pub extranonce2_size: usize,
}

pub fn subscription(reply: &Incoming) -> Option<Subscription> {
    let items = reply.result.as_array()?;
    let extranonce1 = items.get(1)?.as_str()?.to_string();
    let extranonce2_size = usize::try_from(items.get(2)?.as_u64()?).ok()?;
    if extranonce2_size == 0 || extranonce2_size > 32 {
        return None;
    }
    Some(Subscription {
        extranonce1,
        extranonce2_size,
    })
}

/// The fields of a `mining.notify` a submit echoes back: job id and ntime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub job_id: String,
    pub ntime: String,
}

/// `mining.notify` params: `[job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime, clean]`.
pub fn job_ref(params: &Value) -> Option<JobRef> {
    let items = params.as_array()?;
    Some(JobRef {
        job_id: items.first()?.as_str()?.to_string(),
        ntime: items.get(7)?.as_str()?.to_string(),
    })
}

pub fn write_subscribe(out: &mut Vec<u8>, id: u64) {
    let _ = writeln!(
        out,
        r#"{{"id":{id},"method":"mining.subscribe","params":["obtc-loadgen/0.1"]}}"#
    );
}

pub fn write_authorize(out: &mut Vec<u8>, id: u64, username: &str, password: &str) {
    let _ = writeln!(
        out,
        r#"{{"id":{id},"method":"mining.authorize","params":[{},{}]}}"#,
        Value::from(username),
        Value::from(password)
    );
}

/// A submit: `[worker, job_id, extranonce2, ntime, nonce]`; extranonce2 is `size` bytes of
/// big-endian hex of the counter (zero-padded), the nonce 8 hex digits.
pub struct Submit<'a> {
    pub id: u64,
    pub username: &'a str,
    pub job: &'a JobRef,
    pub extranonce2: u64,
    pub extranonce2_size: usize,
    pub nonce: u32,
}

/// The extranonce2 counter as `size` bytes of big-endian hex (zero-padded; the low bytes when
/// the counter is wider).
pub fn write_extranonce2(out: &mut Vec<u8>, counter: u64, size: usize) {
    let counter_bytes = counter.to_be_bytes();
    for _ in counter_bytes.len()..size {
        out.extend_from_slice(b"00");
    }
    let shown = &counter_bytes[counter_bytes.len().saturating_sub(size)..];
    for byte in shown {
        let _ = write!(out, "{byte:02x}");
    }
}

pub fn write_submit(out: &mut Vec<u8>, submit: &Submit<'_>) {
    let _ = write!(
        out,
        r#"{{"id":{},"method":"mining.submit","params":[{},{},""#,
        submit.id,
        Value::from(submit.username),
        Value::from(submit.job.job_id.as_str()),
    );
    write_extranonce2(out, submit.extranonce2, submit.extranonce2_size);
    let _ = writeln!(
        out,
        r#"",{},"{:08x}"]}}"#,
        Value::from(submit.job.ntime.as_str()),
        submit.nonce
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_line_is_valid_json_with_sized_extranonce2() {
        let job = JobRef {
            job_id: "j1".into(),
            ntime: "6744e1a0".into(),
        };
        let mut out = Vec::new();
        write_submit(
            &mut out,
            &Submit {
                id: 7,
                username: "addr.w",
                job: &job,
                extranonce2: 0x0102,
                extranonce2_size: 4,
                nonce: 0xabc,
            },
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["method"], "mining.submit");
        assert_eq!(
            v["params"],
            serde_json::json!(["addr.w", "j1", "00000102", "6744e1a0", "00000abc"])
        );
        assert_eq!(out.last(), Some(&b'\n'));
    }

    #[test]
    fn extranonce2_wider_than_counter_is_zero_padded() {
        let job = JobRef {
            job_id: "j".into(),
            ntime: "0".into(),
        };
        let mut out = Vec::new();
        write_submit(
            &mut out,
            &Submit {
                id: 1,
                username: "u",
                job: &job,
                extranonce2: 1,
                extranonce2_size: 10,
                nonce: 0,
            },
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["params"][2], "00000000000000000001");
    }

    #[test]
    fn verdicts() {
        let parse = |s: &str| Incoming::parse(s.as_bytes()).unwrap();
        assert_eq!(
            verdict(&parse(r#"{"id":1,"result":true,"error":null}"#)),
            Verdict::Accepted
        );
        assert_eq!(
            verdict(&parse(
                r#"{"id":1,"result":null,"error":[23,"Low difficulty share",null]}"#
            )),
            Verdict::Rejected("23".into())
        );
        assert_eq!(
            verdict(&parse(
                r#"{"id":1,"result":null,"error":{"code":21,"message":"stale"}}"#
            )),
            Verdict::Rejected("21".into())
        );
        assert_eq!(
            verdict(&parse(r#"{"id":1,"result":false,"error":null}"#)),
            Verdict::Rejected("false".into())
        );
        assert_eq!(
            verdict(&parse(r#"{"id":1,"result":"x"}"#)),
            Verdict::Unreadable
        );
    }

    #[test]
    fn subscribe_reply_and_notify() {
        let reply = Incoming::parse(
            br#"{"id":1,"result":[[["mining.set_difficulty","1"],["mining.notify","1"]],"08000002",4],"error":null}"#,
        )
        .unwrap();
        assert_eq!(
            subscription(&reply),
            Some(Subscription {
                extranonce1: "08000002".into(),
                extranonce2_size: 4
            })
        );
        let notify = Incoming::parse(
            br#"{"id":null,"method":"mining.notify","params":["ab","00","01","02",[],"20000000","1d00ffff","6744e1a0",true]}"#,
        )
        .unwrap();
        assert_eq!(
            job_ref(&notify.params),
            Some(JobRef {
                job_id: "ab".into(),
                ntime: "6744e1a0".into()
            })
        );
    }
}
