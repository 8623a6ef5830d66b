//! PVE's response envelope, without I/O: `{"data": ...}` on success; on failure a status, a
//! `message` (PVE 8.3+) or only the HTTP reason phrase (older nodes), and per-parameter
//! `errors`. Turns a finished response into data or the right [`Error`] variant.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::Error;
use super::perl;

/// The decoded success envelope.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub data: Value,
    /// `total` on task lists and logs.
    pub total: Option<u64>,
}

/// What the request was, for error messages.
pub(crate) struct RequestInfo<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub endpoint: &'a str,
}

/// Decodes a complete response. `reason` is the reason phrase as received (hyper's
/// `ReasonPhrase`) or the canonical one.
pub(crate) fn decode_reply(
    req: &RequestInfo<'_>,
    status: u16,
    reason: Option<&str>,
    body: &[u8],
) -> Result<Reply, Error> {
    let json: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    if (200..300).contains(&status) {
        let Some(Value::Object(mut obj)) = json else {
            return Err(Error::Decode {
                method: req.method.to_owned(),
                path: req.path.to_owned(),
                json_path: ".".to_owned(),
                reason: format!(
                    "http {status} without a json object body ({} bytes); is this a pve api endpoint?",
                    body.len()
                ),
            });
        };
        let data = obj.remove("data").unwrap_or(Value::Null);
        let total = obj.get("total").and_then(perl::value_as_u64);
        return Ok(Reply { data, total });
    }
    Err(error_from(req, status, reason, json.as_ref()))
}

fn error_from(
    req: &RequestInfo<'_>,
    status: u16,
    reason: Option<&str>,
    json: Option<&Value>,
) -> Error {
    let body_message = json
        .and_then(|j| j.get("message"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let message = body_message
        .or_else(|| reason.map(str::trim).filter(|r| !r.is_empty()))
        .map_or_else(|| format!("http status {status}"), str::to_owned);
    let errors: BTreeMap<String, String> = json
        .and_then(|j| j.get("errors"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = perl::value_as_string(v).unwrap_or_else(|| v.to_string());
                    (k.clone(), text.trim().to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    match status {
        401 => Error::Unauthorized {
            endpoint: req.endpoint.to_owned(),
            message,
        },
        403 => Error::Forbidden {
            method: req.method.to_owned(),
            path: req.path.to_owned(),
            missing: missing_privilege(&message),
            message,
        },
        595 => match node_of_path(req.path) {
            Some(node) => Error::NodeOffline {
                node,
                message: format!("595 {message}"),
            },
            None => api(req, status, message, errors),
        },
        _ => api(req, status, message, errors),
    }
}

fn api(
    req: &RequestInfo<'_>,
    status: u16,
    message: String,
    errors: BTreeMap<String, String>,
) -> Error {
    Error::Api {
        status,
        method: req.method.to_owned(),
        path: req.path.to_owned(),
        message,
        errors,
    }
}

/// `Permission check failed (/vms/100, VM.Audit)` -> `("/vms/100", "VM.Audit")`.
pub(crate) fn missing_privilege(message: &str) -> Option<(String, String)> {
    let start = message.find("Permission check failed (")? + "Permission check failed (".len();
    let rest = message.get(start..)?;
    let inner = rest.get(..rest.find(')')?)?;
    let (path, privilege) = inner.split_once(", ")?;
    let (path, privilege) = (path.trim(), privilege.trim());
    (path.starts_with('/') && !privilege.is_empty() && !privilege.contains(' '))
        .then(|| (path.to_owned(), privilege.to_owned()))
}

/// `/nodes/pve02/qemu/100/status` -> `pve02`.
pub(crate) fn node_of_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/nodes/")?;
    let node = rest.split('/').next()?;
    (!node.is_empty()).then(|| {
        percent_encoding::percent_decode_str(node)
            .decode_utf8_lossy()
            .into_owned()
    })
}

/// Decodes `data` into `T`, naming the JSON path on failure.
pub(crate) fn decode_data<T: DeserializeOwned>(
    method: &str,
    path: &str,
    data: Value,
) -> Result<T, Error> {
    serde_path_to_error::deserialize(data).map_err(|e| Error::Decode {
        method: method.to_owned(),
        path: path.to_owned(),
        json_path: e.path().to_string(),
        reason: e.into_inner().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: RequestInfo<'static> = RequestInfo {
        method: "POST",
        path: "/nodes/pve01/qemu/100/clone",
        endpoint: "https://pve01:8006",
    };

    #[test]
    fn success_with_data_and_total() -> Result<(), Error> {
        let r = decode_reply(
            &REQ,
            200,
            Some("OK"),
            br#"{"data":[{"n":1,"t":"x"}],"total":"1"}"#,
        )?;
        assert_eq!(r.total, Some(1));
        assert_eq!(r.data[0]["t"], "x");
        let r = decode_reply(&REQ, 200, None, br#"{"data":null}"#)?;
        assert!(r.data.is_null());
        let unit: () = decode_data("GET", "/x", r.data)?;
        assert_eq!(unit, ());
        Ok(())
    }

    #[test]
    fn success_without_json_is_decode_error() {
        let e = decode_reply(&REQ, 200, None, b"<html>").err();
        assert!(matches!(e, Some(Error::Decode { .. })), "{e:?}");
    }

    #[test]
    fn parameter_errors_400() {
        let body = br#"{"data":null,"message":"Parameter verification failed.\n","errors":{"newid":"value must have a minimum value of 100\n","name":"invalid format - value does not look like a valid DNS name\n"}}"#;
        let e = decode_reply(&REQ, 400, Some("Parameter verification failed."), body).err();
        let Some(Error::Api {
            status,
            message,
            errors,
            ..
        }) = &e
        else {
            panic!("expected Api, got {e:?}");
        };
        assert_eq!(*status, 400);
        assert_eq!(message, "Parameter verification failed.");
        assert_eq!(
            errors.get("newid").map(String::as_str),
            Some("value must have a minimum value of 100")
        );
        assert_eq!(errors.len(), 2);
        let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            text.contains("newid: value must have a minimum value of 100"),
            "{text}"
        );
        assert!(
            text.contains("POST /nodes/pve01/qemu/100/clone failed with http 400"),
            "{text}"
        );
    }

    #[test]
    fn message_500_and_reason_fallback() {
        let body = br#"{"data":null,"message":"VM is locked (clone)\n"}"#;
        let e = decode_reply(&REQ, 500, Some("VM is locked (clone)"), body).err();
        assert!(
            matches!(&e, Some(Error::Api { status: 500, message, .. }) if message == "VM is locked (clone)"),
            "{e:?}"
        );
        assert!(!e.as_ref().is_some_and(Error::is_retryable));
        // older PVE: no message field, text only in the reason phrase
        let e = decode_reply(
            &REQ,
            500,
            Some("VM is locked (backup)"),
            br#"{"data":null}"#,
        )
        .err();
        assert!(
            matches!(&e, Some(Error::Api { message, .. }) if message == "VM is locked (backup)"),
            "{e:?}"
        );
        // nothing at all
        let e = decode_reply(&REQ, 500, None, b"").err();
        assert!(
            matches!(&e, Some(Error::Api { message, .. }) if message == "http status 500"),
            "{e:?}"
        );
    }

    #[test]
    fn auth_forbidden_offline() {
        let e = decode_reply(&REQ, 401, Some("Authentication failed!"), b"").err();
        let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(matches!(e, Some(Error::Unauthorized { .. })));
        assert!(
            text.contains("check the token id and secret") && text.contains("not expired"),
            "{text}"
        );

        let e = decode_reply(
            &REQ,
            403,
            Some("Permission check failed (/vms/100, VM.Clone)"),
            b"",
        )
        .err();
        let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            matches!(&e, Some(Error::Forbidden { missing: Some((p, v)), .. }) if p == "/vms/100" && v == "VM.Clone"),
            "{e:?}"
        );
        assert!(
            text.contains("lacks privilege VM.Clone on /vms/100"),
            "{text}"
        );

        let e = decode_reply(&REQ, 595, Some("No route to host"), b"").err();
        let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            matches!(&e, Some(Error::NodeOffline { node, .. }) if node == "pve01"),
            "{e:?}"
        );
        assert_eq!(
            text,
            "node pve01 is offline or unreachable from the cluster (595 No route to host); pick another node or check the node"
        );

        let e = decode_reply(&REQ, 501, Some("Method 'POST /x' not implemented"), b"").err();
        assert!(matches!(e, Some(Error::Api { status: 501, .. })));
    }

    #[test]
    fn decode_errors_name_the_path() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Item {
            #[serde(deserialize_with = "crate::pve::perl::u32")]
            vmid: u32,
        }
        let data = serde_json::json!([{"vmid": 100}, {"vmid": "x"}]);
        let e = decode_data::<Vec<Item>>("GET", "/cluster/resources", data).err();
        assert!(
            matches!(&e, Some(Error::Decode { json_path, .. }) if json_path == "[1].vmid"),
            "{e:?}"
        );
    }
}
