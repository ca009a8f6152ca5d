//! Stratum V1 messages: requests, responses and notifications as plain data.
//!
//! Stratum V1 speaks its own JSON-RPC flavour: requests `{"id":..,"method":..,"params":[..]}`,
//! responses `{"id":..,"result":..,"error":null|[code,"message",null]}`, notifications are
//! requests with `"id":null`. Error codes follow the ckpool/cgminer convention ([`ErrorCode`]).
//! Parsing never panics: anything malformed becomes an [`RpcError`] the session sends back.
//! Every line built here ends with `\n`, ready to be written to the socket as is.

use serde::Serialize;
use serde_json::Value;
use std::fmt;

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
    to_line(&Response {
        id,
        result,
        error: None,
    })
}

/// An error response line: `{"id":..,"result":null,"error":[code,"message",null]}`.
pub fn error_line(id: &Value, error: &RpcError) -> String {
    to_line(&Response {
        id,
        result: &Value::Null,
        error: Some((error.code as i32, &error.message, Value::Null)),
    })
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
mod tests {
    use super::*;
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
}
