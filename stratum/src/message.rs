//! Stratum V1 messages: requests, responses and notifications as plain data.
//!
//! Stratum V1 speaks its own JSON-RPC flavour: requests `{"id":..,"method":..,"params":[..]}`,
//! responses `{"id":..,"result":..,"error":null|[code,"message",null]}`, notifications are
//! requests with `"id":null`. Error codes follow the ckpool/cgminer convention ([`ErrorCode`]).
//! Parsing never panics: anything malformed becomes an [`RpcError`] the session sends back.
//! Every line built here ends with `\n`, ready to be written to the socket as is.
//!
//! The hot path has its own, allocation-light code: [`parse_submit_fast`] reads an ordinary
//! `mining.submit` line into borrowed strings without building a `serde_json::Value` (anything
//! unusual returns `None` and goes through [`parse_line`], so replies never depend on which path
//! ran), and the fixed reply lines are formatted directly ([`true_line`], [`error_reply`]),
//! byte for byte as serde_json would write them.

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::fmt::Write as _;
use std::marker::PhantomData;

/// Stratum error codes (ckpool/cgminer convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 20: anything else (malformed request, unknown method, bad parameters, ntime, ...).
    Other = 20,
    /// 21: job not found (unknown or stale job id).
    JobNotFound = 21,
    /// 22: duplicate share.
    Duplicate = 22,
    /// 23: share above the share target.
    LowDifficulty = 23,
    /// 24: worker not authorized.
    Unauthorized = 24,
    /// 25: connection not subscribed.
    NotSubscribed = 25,
}

/// A JSON-RPC error sent as `[code, message, null]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub fn other(message: impl Into<String>) -> RpcError {
        RpcError::new(ErrorCode::Other, message)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code as i32)
    }
}

/// `mining.submit` parameters as the miner sent them (hex strings, checked by the session).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitParams {
    pub worker: String,
    pub job_id: String,
    pub extranonce2: String,
    pub ntime: String,
    pub nonce: String,
    /// BIP310: the miner's version bits (6th parameter), when version rolling is on.
    pub version_bits: Option<String>,
}

impl SubmitParams {
    /// The parameters as borrowed strings, the form the session checks.
    pub fn view(&self) -> SubmitRef<'_> {
        SubmitRef {
            worker: &self.worker,
            job_id: &self.job_id,
            extranonce2: &self.extranonce2,
            ntime: &self.ntime,
            nonce: &self.nonce,
            version_bits: self.version_bits.as_deref(),
        }
    }
}

/// `mining.submit` parameters borrowed from the request line (or from a [`SubmitParams`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmitRef<'a> {
    pub worker: &'a str,
    pub job_id: &'a str,
    pub extranonce2: &'a str,
    pub ntime: &'a str,
    pub nonce: &'a str,
    pub version_bits: Option<&'a str>,
}

/// A request id to echo in a reply, borrowed from wherever it was read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReplyId<'a> {
    Null,
    Number(u64),
    Str(&'a str),
    /// Any other JSON value (negative or fractional numbers, arrays, objects, booleans).
    Json(&'a Value),
}

impl<'a> ReplyId<'a> {
    pub fn from_value(id: &'a Value) -> ReplyId<'a> {
        match id {
            Value::Null => ReplyId::Null,
            Value::Number(n) => n.as_u64().map_or(ReplyId::Json(id), ReplyId::Number),
            Value::String(s) => ReplyId::Str(s),
            _ => ReplyId::Json(id),
        }
    }
}

/// A `mining.submit` line read by [`parse_submit_fast`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FastSubmit<'a> {
    pub id: ReplyId<'a>,
    pub params: SubmitRef<'a>,
}

/// Reads the common shape of a `mining.submit` line: a JSON object whose `id` is absent, null,
/// a non-negative integer or a string, whose `method` is `"mining.submit"` and whose `params`
/// are 5 or 6 strings, none of them (nor the id, nor the method) with escape sequences. Returns
/// `None` for anything else (including invalid JSON); [`parse_line`] then reads the line and
/// yields the same request (or error) the session would have got here.
pub fn parse_submit_fast(line: &str) -> Option<FastSubmit<'_>> {
    // A derived struct also accepts a JSON array; the general path refuses one.
    if !line
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return None;
    }
    let raw: RawSubmit<'_> = serde_json::from_str(line).ok()?;
    if raw.method != "mining.submit" || raw.params.len < 5 {
        return None;
    }
    let p = &raw.params.items;
    let id = match raw.id {
        None => ReplyId::Null,
        Some(RawId::Number(n)) => ReplyId::Number(n),
        Some(RawId::Str(s)) => ReplyId::Str(s),
    };
    Some(FastSubmit {
        id,
        params: SubmitRef {
            worker: p[0],
            job_id: p[1],
            extranonce2: p[2],
            ntime: p[3],
            nonce: p[4],
            version_bits: (raw.params.len == 6).then_some(p[5]),
        },
    })
}

/// The fields [`parse_submit_fast`] reads; unknown fields are skipped, duplicates refused.
#[derive(Deserialize)]
struct RawSubmit<'a> {
    #[serde(default, borrow)]
    id: Option<RawId<'a>>,
    method: &'a str,
    #[serde(borrow)]
    params: RawParams<'a>,
}

enum RawId<'a> {
    Number(u64),
    Str(&'a str),
}

impl<'de: 'a, 'a> Deserialize<'de> for RawId<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for IdVisitor<'a> {
            type Value = RawId<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or an unescaped string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawId<'a>, E> {
                Ok(RawId::Number(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<RawId<'a>, E> {
                Ok(RawId::Str(v))
            }
        }
        d.deserialize_any(IdVisitor(PhantomData))
    }
}

/// Up to six unescaped strings.
struct RawParams<'a> {
    items: [&'a str; 6],
    len: usize,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawParams<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ParamsVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ParamsVisitor<'a> {
            type Value = RawParams<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of at most six unescaped strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawParams<'a>, A::Error> {
                let mut out = RawParams {
                    items: [""; 6],
                    len: 0,
                };
                while out.len < out.items.len() {
                    match seq.next_element::<&'de str>()? {
                        Some(s) => {
                            out.items[out.len] = s;
                            out.len += 1;
                        }
                        None => return Ok(out),
                    }
                }
                match seq.next_element::<IgnoredAny>()? {
                    None => Ok(out),
                    Some(_) => Err(de::Error::custom("more than six parameters")),
                }
            }
        }
        d.deserialize_seq(ParamsVisitor(PhantomData))
    }
}

/// A parsed client request.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Subscribe {
        user_agent: Option<String>,
    },
    Authorize {
        username: String,
    },
    /// BIP310 `mining.configure`: the extension names and the extension parameters object.
    Configure {
        extensions: Vec<String>,
        params: serde_json::Map<String, Value>,
    },
    SuggestDifficulty {
        difficulty: f64,
    },
    ExtranonceSubscribe,
    Submit(SubmitParams),
    /// A reply from the miner to something we sent (e.g. `client.get_version`): ignored.
    ClientResponse,
}

/// A request line: its id (any JSON value, echoed back) and the parsed request or the error to
/// answer with.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedLine {
    pub id: Value,
    pub request: Result<Request, RpcError>,
}

/// Parses one line. Never panics; malformed input yields `request: Err(..)` with the id when one
/// could be read (else `null`).
pub fn parse_line(line: &str) -> ParsedLine {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return ParsedLine {
                id: Value::Null,
                request: Err(RpcError::other(format!("parse error: {e}"))),
            }
        }
    };
    let Value::Object(mut obj) = value else {
        return ParsedLine {
            id: Value::Null,
            request: Err(RpcError::other("request is not a JSON object")),
        };
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    let method = match obj.get("method") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => {
            return ParsedLine {
                id,
                request: Err(RpcError::other("method is not a string")),
            }
        }
        None if obj.contains_key("result") || obj.contains_key("error") => {
            return ParsedLine {
                id,
                request: Ok(Request::ClientResponse),
            }
        }
        None => {
            return ParsedLine {
                id,
                request: Err(RpcError::other("missing method")),
            }
        }
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return ParsedLine {
                id,
                request: Err(RpcError::other("params is not an array")),
            }
        }
    };
    ParsedLine {
        id,
        request: parse_request(&method, params),
    }
}

fn parse_request(method: &str, params: Vec<Value>) -> Result<Request, RpcError> {
    match method {
        "mining.subscribe" => Ok(Request::Subscribe {
            user_agent: params.first().and_then(Value::as_str).map(str::to_owned),
        }),
        "mining.authorize" => Ok(Request::Authorize {
            username: string_param(&params, 0, "username")?,
        }),
        "mining.configure" => parse_configure(params),
        "mining.suggest_difficulty" => {
            let difficulty = params
                .first()
                .and_then(number_like)
                .ok_or_else(|| RpcError::other("difficulty must be a number"))?;
            Ok(Request::SuggestDifficulty { difficulty })
        }
        "mining.extranonce.subscribe" => Ok(Request::ExtranonceSubscribe),
        "mining.submit" => {
            if params.len() < 5 {
                return Err(RpcError::other(
                    "mining.submit needs worker, job_id, extranonce2, ntime, nonce",
                ));
            }
            let version_bits = match params.get(5) {
                None | Some(Value::Null) => None,
                Some(_) => Some(string_param(&params, 5, "version bits")?),
            };
            Ok(Request::Submit(SubmitParams {
                worker: string_param(&params, 0, "worker")?,
                job_id: string_param(&params, 1, "job_id")?,
                extranonce2: string_param(&params, 2, "extranonce2")?,
                ntime: string_param(&params, 3, "ntime")?,
                nonce: string_param(&params, 4, "nonce")?,
                version_bits,
            }))
        }
        other => Err(RpcError::other(format!(
            "unknown method {}",
            truncate(other, 64)
        ))),
    }
}

fn parse_configure(params: Vec<Value>) -> Result<Request, RpcError> {
    let mut it = params.into_iter();
    let extensions = match it.next() {
        Some(Value::Array(names)) => names
            .into_iter()
            .map(|n| match n {
                Value::String(s) => Ok(s),
                _ => Err(RpcError::other("extension names must be strings")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(RpcError::other(
                "mining.configure needs an array of extension names",
            ))
        }
    };
    let params = match it.next() {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(_) => {
            return Err(RpcError::other(
                "mining.configure extension parameters must be an object",
            ))
        }
    };
    Ok(Request::Configure { extensions, params })
}

fn string_param(params: &[Value], index: usize, name: &str) -> Result<String, RpcError> {
    match params.get(index) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(RpcError::other(format!("{name} must be a string"))),
        None => Err(RpcError::other(format!("missing {name}"))),
    }
}

/// A number, or a string holding one (some miners quote difficulties).
fn number_like(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[derive(Serialize)]
struct Response<'a> {
    id: &'a Value,
    result: &'a Value,
    error: Option<(i32, &'a str, Value)>,
}

#[derive(Serialize)]
struct Notification<'a, P: Serialize> {
    id: Value,
    method: &'a str,
    params: P,
}

fn to_line<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs to a String cannot fail (no maps with non-string keys,
    // no failing Serialize impls); fall back to an empty object rather than panic.
    let mut s = serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"));
    s.push('\n');
    s
}

/// A success response line.
pub fn result_line(id: &Value, result: &Value) -> String {
    if *result == Value::Bool(true) {
        return true_line(ReplyId::from_value(id));
    }
    to_line(&Response {
        id,
        result,
        error: None,
    })
}

/// An error response line: `{"id":..,"result":null,"error":[code,"message",null]}`.
pub fn error_line(id: &Value, error: &RpcError) -> String {
    error_reply(ReplyId::from_value(id), error.code, &error.message.as_str())
}

/// `{"id":..,"result":true,"error":null}`, the reply to an accepted share.
pub fn true_line(id: ReplyId<'_>) -> String {
    let mut line = String::with_capacity(48);
    line.push_str("{\"id\":");
    write_id(&mut line, id);
    line.push_str(TRUE_TAIL);
    line
}

/// What follows the id in a [`true_line`].
pub const TRUE_TAIL: &str = ",\"result\":true,\"error\":null}\n";

/// `{"id":..,"result":null,"error":[code,"message",null]}`, the message written (and escaped)
/// straight into the line.
pub fn error_reply(id: ReplyId<'_>, code: ErrorCode, message: &dyn fmt::Display) -> String {
    let mut line = String::with_capacity(112);
    line.push_str("{\"id\":");
    write_id(&mut line, id);
    // Writing to a String cannot fail.
    let _ = write!(line, ",\"result\":null,\"error\":[{},\"", code as i32);
    let _ = write!(JsonEscaper(&mut line), "{message}");
    line.push_str("\",null]}\n");
    line
}

fn write_id(out: &mut String, id: ReplyId<'_>) {
    match id {
        ReplyId::Null => out.push_str("null"),
        ReplyId::Number(n) => {
            let _ = write!(out, "{n}");
        }
        ReplyId::Str(s) => {
            out.push('"');
            escape_json_into(out, s);
            out.push('"');
        }
        ReplyId::Json(v) => match serde_json::to_string(v) {
            Ok(s) => out.push_str(&s),
            Err(_) => out.push_str("null"),
        },
    }
}

/// Escapes everything written through it into a JSON string's contents.
struct JsonEscaper<'a>(&'a mut String);

impl fmt::Write for JsonEscaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_json_into(self.0, s);
        Ok(())
    }
}

/// The contents of a JSON string literal, escaped as serde_json escapes them.
fn escape_json_into(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// `mining.set_difficulty` notification.
pub fn set_difficulty_line(difficulty: f64) -> String {
    to_line(&Notification {
        id: Value::Null,
        method: "mining.set_difficulty",
        params: [difficulty],
    })
}

/// `mining.set_version_mask` notification (BIP310).
pub fn set_version_mask_line(mask: u32) -> String {
    to_line(&Notification {
        id: Value::Null,
        method: "mining.set_version_mask",
        params: [format!("{mask:08x}")],
    })
}

/// `mining.set_extranonce` notification.
pub fn set_extranonce_line(extranonce1: &[u8], extranonce2_size: usize) -> String {
    to_line(&Notification {
        id: Value::Null,
        method: "mining.set_extranonce",
        params: (hex::encode(extranonce1), extranonce2_size),
    })
}

/// The `mining.notify` parameters, in wire form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotifyParams {
    pub job_id: String,
    /// Previous block hash, header order with every 4-byte word byte-swapped, hex.
    pub prev_hash: String,
    pub coinb1: String,
    pub coinb2: String,
    /// Branch hashes in the header's byte order, hex.
    pub merkle_branch: Vec<String>,
    /// Big-endian hex of the version integer.
    pub version: String,
    /// Big-endian hex of the compact bits.
    pub nbits: String,
    /// Big-endian hex of the time.
    pub ntime: String,
    pub clean_jobs: bool,
}

/// `mining.notify` notification line.
pub fn notify_line(p: &NotifyParams) -> String {
    to_line(&Notification {
        id: Value::Null,
        method: "mining.notify",
        params: (
            &p.job_id,
            &p.prev_hash,
            &p.coinb1,
            &p.coinb2,
            &p.merkle_branch,
            &p.version,
            &p.nbits,
            &p.ntime,
            p.clean_jobs,
        ),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn parses_the_requests_miners_send() {
        let p = parse_line(r#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5"]}"#);
        assert_eq!(p.id, json!(1));
        assert_eq!(
            p.request,
            Ok(Request::Subscribe {
                user_agent: Some("cpuminer/2.5".into())
            })
        );
        let p = parse_line(
            r#"{"id":"x","method":"mining.submit","params":["w","1","00000000","6b0642b1","00000004","0ae4e000"]}"#,
        );
        let Ok(Request::Submit(s)) = p.request else {
            panic!("{:?}", p.request)
        };
        assert_eq!(s.version_bits.as_deref(), Some("0ae4e000"));
        assert_eq!(s.nonce, "00000004");
        let p = parse_line(r#"{"id":2,"method":"mining.suggest_difficulty","params":[0.5]}"#);
        assert_eq!(
            p.request,
            Ok(Request::SuggestDifficulty { difficulty: 0.5 })
        );
    }

    #[test]
    fn malformed_input_becomes_errors_not_panics() {
        assert!(parse_line("not json").request.is_err());
        assert!(parse_line("[1,2]").request.is_err());
        let p = parse_line(r#"{"id":5,"method":"mining.nope","params":[]}"#);
        assert_eq!(p.id, json!(5));
        assert_eq!(p.request.unwrap_err().code, ErrorCode::Other);
        let p = parse_line(r#"{"id":6,"method":"mining.submit","params":["w",1,"a","b","c"]}"#);
        assert_eq!(p.request.unwrap_err().message, "job_id must be a string");
        let p = parse_line(r#"{"id":7,"method":"mining.authorize","params":{}}"#);
        assert!(p.request.is_err());
    }

    #[test]
    fn lines_are_stratum_json() {
        let e = error_line(
            &json!(3),
            &RpcError::new(ErrorCode::Duplicate, "Duplicate share"),
        );
        assert_eq!(
            e,
            "{\"id\":3,\"result\":null,\"error\":[22,\"Duplicate share\",null]}\n"
        );
        assert_eq!(
            result_line(&json!(3), &json!(true)),
            "{\"id\":3,\"result\":true,\"error\":null}\n"
        );
        assert_eq!(
            set_difficulty_line(0.5),
            "{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[0.5]}\n"
        );
    }

    /// The serde_json replies the formatter must reproduce byte for byte.
    fn serde_reply(id: &Value, result: &Value, error: Option<(i32, &str)>) -> String {
        to_line(&Response {
            id,
            result,
            error: error.map(|(c, m)| (c, m, Value::Null)),
        })
    }

    #[test]
    fn fast_submit_reads_the_common_shapes_only() {
        let line = r#"{"id":4,"method":"mining.submit","params":["a.b","1f","00000001","6b0642b8","00000007"]}"#;
        let f = parse_submit_fast(line).unwrap();
        assert_eq!(f.id, ReplyId::Number(4));
        assert_eq!(f.params.worker, "a.b");
        assert_eq!(f.params.version_bits, None);
        for line in [
            r#"[4,"mining.submit",["a","1","00000001","6b0642b8","00000007"]]"#,
            r#"{"id":-4,"method":"mining.submit","params":["a","1","00000001","6b0642b8","00000007"]}"#,
            r#"{"id":"\u0034","method":"mining.submit","params":["a","1","00000001","6b0642b8","00000007"]}"#,
            r#"{"id":4,"method":"mining.submit","params":["a","1","00000001","6b0642b8","00000007",null]}"#,
            r#"{"id":4,"method":"mining.submit","params":["a","1","00000001","6b0642b8","00000007","0","x"]}"#,
            r#"{"id":4,"id":5,"method":"mining.submit","params":["a","1","00000001","6b0642b8","00000007"]}"#,
            r#"{"id":4,"method":"mining.subscribe","params":["a","1","00000001","6b0642b8","00000007"]}"#,
        ] {
            assert_eq!(parse_submit_fast(line), None, "{line}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "[0-9a-f]{0,10}".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
            "[\"\\\\\u{0}-\u{1f}\u{7f}é]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{0,6}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A JSON text for `v`, sometimes with every string character `\u`-escaped.
    pub(crate) fn json_text(v: Value) -> impl Strategy<Value = String> {
        let plain = v.to_string();
        let escaped = match &v {
            Value::String(s) => {
                s.chars().fold(String::from("\""), |mut out, c| {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                    out
                }) + "\""
            }
            _ => plain.clone(),
        };
        prop_oneof![3 => Just(plain), 1 => Just(escaped)]
    }

    /// Request-like JSON texts: submit-shaped members in any order, odd ids, odd params,
    /// duplicate and unknown keys, arrays instead of objects, whitespace, truncation.
    pub(crate) fn request_text() -> impl Strategy<Value = String> {
        let param = prop_oneof![
            4 => "[0-9a-f]{0,9}".prop_map(Value::String),
            1 => json_value(),
        ]
        .prop_flat_map(json_text);
        let params = prop_oneof![
            6 => prop::collection::vec(param, 0..8).prop_map(|p| format!("[{}]", p.join(","))),
            1 => json_value().prop_map(|v| v.to_string()),
        ];
        let id = json_value().prop_flat_map(json_text);
        let method = prop_oneof![
            6 => Just("\"mining.submit\"".to_owned()),
            1 => Just("\"mining\\u002esubmit\"".to_owned()),
            1 => Just("\"mining.subscribe\"".to_owned()),
            1 => json_value().prop_map(|v| v.to_string()),
        ];
        let member = prop_oneof![
            3 => id.prop_map(|v| format!("\"id\":{v}")),
            3 => method.prop_map(|v| format!("\"method\":{v}")),
            3 => params.prop_map(|v| format!("\"params\":{v}")),
            1 => json_value().prop_map(|v| format!("\"result\":{v}")),
            1 => ("[a-z]{1,6}", json_value()).prop_map(|(k, v)| format!("\"{k}\":{v}")),
        ];
        (
            prop::collection::vec(member, 0..6),
            any::<bool>(),
            " {0,2}",
            0usize..400,
            0u8..8,
        )
            .prop_map(|(members, array, ws, cut, truncate)| {
                let body = members.join(&format!(",{ws}"));
                let mut text = if array {
                    format!("{ws}[{body}]")
                } else {
                    format!("{ws}{{{body}}}{ws}")
                };
                if truncate == 0 {
                    let mut cut = cut.min(text.len());
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                text
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whenever the fast path reads a line, the general path reads the same submit, and the
        /// replies built from either id are identical.
        #[test]
        fn fast_submit_agrees_with_the_general_path(line in request_text()) {
            let general = parse_line(&line);
            if let Some(fast) = parse_submit_fast(&line) {
                let Ok(Request::Submit(s)) = &general.request else {
                    panic!("fast path read {line:?}, general path: {:?}", general.request);
                };
                prop_assert_eq!(s.view(), fast.params);
                prop_assert_eq!(true_line(fast.id), result_line(&general.id, &json!(true)));
                prop_assert_eq!(
                    error_reply(fast.id, ErrorCode::Duplicate, &"Duplicate share"),
                    error_line(&general.id, &RpcError::new(ErrorCode::Duplicate, "Duplicate share"))
                );
            }
        }

        /// The formatted reply lines equal serde_json's for any id and message.
        #[test]
        fn formatted_replies_equal_serde_json(id in json_value(), message in any::<String>(),
                                              escapes in "[\"\\\\\u{0}-\u{1f}\u{7f}a]{0,8}") {
            let message = message + &escapes;
            prop_assert_eq!(result_line(&id, &json!(true)), serde_reply(&id, &json!(true), None));
            let e = RpcError::new(ErrorCode::LowDifficulty, message.clone());
            prop_assert_eq!(error_line(&id, &e), serde_reply(&id, &Value::Null, Some((23, &message))));
        }
    }
}
