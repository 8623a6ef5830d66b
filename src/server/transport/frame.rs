//! Strict parsing of one JSON-RPC frame (a stdio line or an HTTP POST body), shared by both
//! transports so they accept and refuse the same messages.
//!
//! serde_json alone is lenient where it matters: a duplicate key silently keeps the last value
//! (`{"confirm":false,"confirm":true}` reads as confirmed), and rmcp drops a frame it cannot
//! decode without answering, so the client waits forever. Here every frame either becomes a
//! message for rmcp or a JSON-RPC error that carries the request's id whenever it can be
//! recovered from the text:
//! - not JSON at all (syntax, invalid UTF-8, lone surrogates, `NaN`, NUL bytes, two messages on
//!   one line, nesting deeper than [`MAX_DEPTH`]) → `-32700` Parse error;
//! - a frame longer than the cap → `-32700`, without buffering the whole frame;
//! - a duplicate key anywhere in the message → `-32600` Invalid Request naming the key;
//! - JSON that is not a JSON-RPC 2.0 message rmcp understands → `-32600`, or `-32602` Invalid
//!   params when it names a method but its params do not fit.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deepest nesting of arrays and objects accepted in one message. Tool arguments are flat;
/// 64 leaves ample room while staying far below serde_json's and rmcp's recursion limits.
pub const MAX_DEPTH: usize = 64;

/// Default cap on one frame (a stdio line, an HTTP body): 4 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 << 20;

/// JSON-RPC error codes (the same values as `rmcp::model::ErrorCode`).
pub const PARSE_ERROR: i32 = rmcp::model::ErrorCode::PARSE_ERROR.0;
pub const INVALID_REQUEST: i32 = rmcp::model::ErrorCode::INVALID_REQUEST.0;
pub const INVALID_PARAMS: i32 = rmcp::model::ErrorCode::INVALID_PARAMS.0;

/// Why a frame was refused, and the id to answer with (`Value::Null` when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub code: i32,
    pub message: String,
    pub id: Value,
}

impl FrameError {
    /// The JSON-RPC error response for this refusal.
    pub fn to_response(&self) -> Value {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": {"code": self.code, "message": self.message},
        })
    }

    /// The response as one line (no trailing newline).
    pub fn to_line(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_response()).unwrap_or_else(|_| {
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#
                .to_vec()
        })
    }
}

#[derive(Clone, Debug)]
enum Violation {
    Duplicate(String),
    TooDeep,
}

struct Strict<'a> {
    depth: usize,
    violation: &'a Cell<Option<Violation>>,
}

impl Strict<'_> {
    fn fail<E: de::Error>(&self, v: Violation) -> E {
        let msg = match &v {
            Violation::Duplicate(k) => format!("duplicate key {k:?}"),
            Violation::TooDeep => format!("nesting deeper than {MAX_DEPTH} levels"),
        };
        self.violation.set(Some(v));
        E::custom(msg)
    }
    fn child(&self) -> Strict<'_> {
        Strict {
            depth: self.depth + 1,
            violation: self.violation,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(self.fail(Violation::TooDeep));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.child())? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(self.fail(Violation::TooDeep));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(self.fail(Violation::Duplicate(key)));
            }
            let v = map.next_value_seed(self.child())?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses `bytes` as exactly one JSON value: no duplicate keys, nesting at most [`MAX_DEPTH`].
///
/// # Errors
/// A [`FrameError`] with the code and id to answer with.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, FrameError> {
    let violation = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Our own depth limit is lower than serde_json's; keep serde_json's as a backstop.
    let parsed = Strict {
        depth: 0,
        violation: &violation,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => Err(match violation.take() {
            Some(Violation::Duplicate(key)) => FrameError {
                code: INVALID_REQUEST,
                message: format!(
                    "duplicate key {key:?} in the message ({e}): each key may appear only once; \
                     send the message again with one {key:?}"
                ),
                id: recover_id(bytes),
            },
            Some(Violation::TooDeep) | None => FrameError {
                code: PARSE_ERROR,
                message: format!("parse error: the frame is not one valid JSON value ({e})"),
                id: recover_id(bytes),
            },
        }),
    }
}

/// A strictly parsed frame checked against rmcp's client message type.
///
/// # Errors
/// Parse errors as in [`parse_strict`]; `-32600`/`-32602` for JSON that is no client message.
pub fn check_client_message(bytes: &[u8]) -> Result<Value, FrameError> {
    let value = parse_strict(bytes)?;
    let id = top_level_id(&value);
    let method = value
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match serde_json::from_value::<rmcp::model::ClientJsonRpcMessage>(value.clone()) {
        Ok(_) => Ok(value),
        Err(e) => {
            let is_rpc = value.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
            Err(match method {
                Some(m) if is_rpc && value.get("params").is_some() => FrameError {
                    code: INVALID_PARAMS,
                    message: format!("invalid params for {m:?}: {e}"),
                    id,
                },
                _ => FrameError {
                    code: INVALID_REQUEST,
                    message: format!(
                        "invalid request: not a JSON-RPC 2.0 request, notification or response \
                         ({e})"
                    ),
                    id,
                },
            })
        }
    }
}

/// The error for a frame longer than `cap` bytes; `prefix` is its beginning, for the id.
pub fn too_long(prefix: &[u8], cap: usize) -> FrameError {
    FrameError {
        code: PARSE_ERROR,
        message: format!(
            "parse error: the frame is longer than the {cap}-byte limit and was discarded; \
             send smaller messages (upload large files with the upload tools)"
        ),
        id: recover_id(prefix),
    }
}

fn top_level_id(v: &Value) -> Value {
    match v.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    }
}

/// The id of a frame that did not parse strictly: from a lenient parse when the text is JSON
/// (duplicates, depth), else from the first `"id": <number|string>` in the text.
pub fn recover_id(bytes: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return top_level_id(&v);
    }
    static ID: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(r#""id"\s*:\s*(-?[0-9]{1,19}|"(?:[^"\\\x00-\x1f]|\\.){0,256}")"#)
            .expect("id regex")
    });
    ID.captures(bytes)
        .and_then(|c| c.get(1))
        .and_then(|m| serde_json::from_slice::<Value>(m.as_bytes()).ok())
        .filter(|v| v.is_number() || v.is_string())
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(s: &[u8]) -> FrameError {
        check_client_message(s).expect_err("refused")
    }

    #[test]
    fn valid_messages_pass() {
        let m = br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
        assert_eq!(check_client_message(m).expect("ok")["id"], 3);
        let n = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert!(check_client_message(n).is_ok());
    }

    #[test]
    fn duplicate_keys_anywhere_are_refused_with_the_id() {
        let e = err(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"vm_delete","arguments":{"confirm":false,"confirm":true}}}"#,
        );
        assert_eq!(e.code, INVALID_REQUEST);
        assert_eq!(e.id, json!(7));
        assert!(e.message.contains("\"confirm\""), "{}", e.message);
        let e = err(br#"{"jsonrpc":"2.0","id":"a","id":"b","method":"ping"}"#);
        assert!(e.message.contains("\"id\""), "{}", e.message);
    }

    #[test]
    fn malformed_frames_are_parse_errors_with_recoverable_ids() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":11,"method":"ping","params":{{"x":{}1{}}}}}"#,
            "[".repeat(130),
            "]".repeat(130)
        );
        let cases: Vec<(Vec<u8>, Value)> = vec![
            (deep.into_bytes(), json!(11)),
            (
                br#"{"jsonrpc":"2.0","id":12,"method":"ping","params":{"s":"\ud800"}}"#.to_vec(),
                json!(12),
            ),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"p\xff\"}".to_vec(),
                json!(13),
            ),
            (
                br#"{"jsonrpc":"2.0","id":14,"method":"ping","params":{"n":NaN}}"#.to_vec(),
                json!(14),
            ),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":\"n\",\"method\":\"ping\x00\"}".to_vec(),
                json!("n"),
            ),
            (
                br#"{"jsonrpc":"2.0","id":16,"method":"ping"}{"jsonrpc":"2.0","id":17,"method":"ping"}"#.to_vec(),
                json!(16),
            ),
            (b"not json".to_vec(), Value::Null),
        ];
        for (frame, id) in cases {
            let e = err(&frame);
            assert_eq!(e.code, PARSE_ERROR, "{}", String::from_utf8_lossy(&frame));
            assert_eq!(e.id, id, "{}", String::from_utf8_lossy(&frame));
        }
    }

    #[test]
    fn depth_limit_is_exact() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_strict(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            parse_strict(deep.as_bytes()).expect_err("deep").code,
            PARSE_ERROR
        );
    }

    #[test]
    fn json_that_is_no_message_is_an_invalid_request() {
        let e = err(br#"{"hello":1,"id":4}"#);
        assert_eq!((e.code, e.id), (INVALID_REQUEST, json!(4)));
        let e = err(b"[1,2]");
        assert_eq!((e.code, e.id), (INVALID_REQUEST, Value::Null));
    }

    #[test]
    fn unknown_methods_pass_and_bad_params_are_invalid_params() {
        let m = br#"{"jsonrpc":"2.0","id":1,"method":"x/unknown","params":{"a":1}}"#;
        assert!(
            check_client_message(m).is_ok(),
            "rmcp answers -32601 itself"
        );
        let e = err(br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":5}"#);
        assert_eq!((e.code, e.id), (INVALID_PARAMS, json!(2)));
        let e = err(br#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#);
        assert_eq!((e.code, e.id), (INVALID_REQUEST, json!(3)));
        // An id that is neither a string nor a number cannot be echoed.
        let e = err(br#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#);
        assert_eq!((e.code, e.id), (INVALID_REQUEST, Value::Null));
    }

    #[test]
    fn too_long_recovers_the_id_from_the_prefix() {
        let e = too_long(
            br#"{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"x":"aaaa"#,
            10,
        );
        assert_eq!((e.code, e.id), (PARSE_ERROR, json!(99)));
    }
}
