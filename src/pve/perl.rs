//! Lenient decoding of Perl-shaped JSON: PVE may send a number as `"101"` and a boolean as `0`,
//! `1`, `"1"` or `true`, depending on the Perl scalar's last use. Every wire type decodes its
//! numbers and booleans through these functions (`#[serde(deserialize_with = ...)]`), so the
//! quirk is handled in exactly one place.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// A scalar as PVE sent it, before conversion.
enum Scalar {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Null,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a boolean or a string holding one")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Unsigned(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Signed(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

fn to_i128(s: Scalar) -> Result<Option<i128>, String> {
    match s {
        Scalar::Unsigned(v) => Ok(Some(i128::from(v))),
        Scalar::Signed(v) => Ok(Some(i128::from(v))),
        Scalar::Float(v) if v.fract() == 0.0 && v.abs() < 1e30 => Ok(Some(v as i128)),
        Scalar::Float(v) => Err(format!("expected an integer, got {v}")),
        Scalar::Bool(b) => Ok(Some(i128::from(b))),
        Scalar::Null => Ok(None),
        Scalar::Text(t) => {
            let t = t.trim();
            if t.is_empty() {
                return Ok(None);
            }
            if let Ok(v) = t.parse::<i128>() {
                return Ok(Some(v));
            }
            match t.parse::<f64>() {
                Ok(v) if v.fract() == 0.0 && v.abs() < 1e30 => Ok(Some(v as i128)),
                _ => Err(format!("expected an integer, got string {t:?}")),
            }
        }
    }
}

fn to_f64(s: Scalar) -> Result<Option<f64>, String> {
    match s {
        Scalar::Unsigned(v) => Ok(Some(v as f64)),
        Scalar::Signed(v) => Ok(Some(v as f64)),
        Scalar::Float(v) => Ok(Some(v)),
        Scalar::Bool(b) => Ok(Some(if b { 1.0 } else { 0.0 })),
        Scalar::Null => Ok(None),
        Scalar::Text(t) => {
            let t = t.trim();
            if t.is_empty() {
                return Ok(None);
            }
            t.parse::<f64>()
                .map(Some)
                .map_err(|_| format!("expected a number, got string {t:?}"))
        }
    }
}

fn to_bool(s: Scalar) -> Result<Option<bool>, String> {
    match s {
        Scalar::Bool(b) => Ok(Some(b)),
        Scalar::Unsigned(0) | Scalar::Signed(0) => Ok(Some(false)),
        Scalar::Unsigned(1) | Scalar::Signed(1) => Ok(Some(true)),
        Scalar::Null => Ok(None),
        Scalar::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            other => Err(format!("expected a boolean, got string {other:?}")),
        },
        Scalar::Unsigned(v) => Err(format!("expected a boolean (0 or 1), got {v}")),
        Scalar::Signed(v) => Err(format!("expected a boolean (0 or 1), got {v}")),
        Scalar::Float(v) => Err(format!("expected a boolean (0 or 1), got {v}")),
    }
}

fn to_text(s: Scalar) -> Option<String> {
    match s {
        Scalar::Unsigned(v) => Some(v.to_string()),
        Scalar::Signed(v) => Some(v.to_string()),
        Scalar::Float(v) => Some(v.to_string()),
        Scalar::Bool(b) => Some(if b { "1" } else { "0" }.to_owned()),
        Scalar::Text(t) => Some(t),
        Scalar::Null => None,
    }
}

fn int<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<Option<T>, D::Error> {
    match to_i128(scalar(d)?).map_err(de::Error::custom)? {
        None => Ok(None),
        Some(v) => T::try_from(v)
            .map(Some)
            .map_err(|_| de::Error::custom(format!("integer {v} out of range"))),
    }
}

fn required<T, E: de::Error>(v: Option<T>) -> Result<T, E> {
    v.ok_or_else(|| E::custom("expected a value, got null or an empty string"))
}

/// `u64` from a number or a numeric string.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    required(int::<D, u64>(d)?)
}
/// `Option<u64>`: null and `""` are `None`. Use with `#[serde(default)]`.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    int::<D, u64>(d)
}
/// `u32` from a number or a numeric string (vmids, counts).
pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    required(int::<D, u32>(d)?)
}
/// `Option<u32>`: null and `""` are `None`. Use with `#[serde(default)]`.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    int::<D, u32>(d)
}
/// `i64` from a number or a numeric string.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    required(int::<D, i64>(d)?)
}
/// `Option<i64>`: null and `""` are `None`. Use with `#[serde(default)]`.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int::<D, i64>(d)
}
/// `f64` from a number or a numeric string.
pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    required(to_f64(scalar(d)?).map_err(de::Error::custom)?)
}
/// `Option<f64>`: null and `""` are `None`. Use with `#[serde(default)]`.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    to_f64(scalar(d)?).map_err(de::Error::custom)
}
/// `bool` from `true`/`false`, `0`/`1`, `"0"`/`"1"` (and `"yes"`/`"no"`, `"on"`/`"off"`).
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    required(to_bool(scalar(d)?).map_err(de::Error::custom)?)
}
/// `Option<bool>`: null and `""` are `None`. Use with `#[serde(default)]`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    to_bool(scalar(d)?).map_err(de::Error::custom)
}
/// `String` from a string or a number (ids PVE sometimes sends as numbers).
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    required(to_text(scalar(d)?))
}
/// `Option<String>` from a string or a number; null is `None`. Use with `#[serde(default)]`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(to_text(scalar(d)?))
}

/// `String` from a string or a number; null is `""`. Use with `#[serde(default)]` where a
/// missing text is no reason to reject the whole answer.
pub fn string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(to_text(scalar(d)?).unwrap_or_default())
}

/// Converts an already-decoded JSON value leniently (for `data` that is a bare scalar).
pub fn value_as_u64(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Bool(b) => Some(u64::from(*b)),
        _ => None,
    }
}

/// Converts an already-decoded JSON value to a string (numbers included).
pub fn value_as_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Row {
        #[serde(deserialize_with = "super::u64")]
        n: u64,
        #[serde(default, deserialize_with = "super::opt_i64")]
        i: Option<i64>,
        #[serde(default, deserialize_with = "super::opt_f64")]
        f: Option<f64>,
        #[serde(default, deserialize_with = "super::opt_bool")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "super::opt_string")]
        s: Option<String>,
    }

    fn row(json: &str) -> Result<Row, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_from_numbers_and_strings() -> Result<(), serde_json::Error> {
        assert_eq!(row(r#"{"n": 101}"#)?.n, 101);
        assert_eq!(row(r#"{"n": "101"}"#)?.n, 101);
        assert_eq!(row(r#"{"n": " 7 "}"#)?.n, 7);
        assert_eq!(row(r#"{"n": 4.0}"#)?.n, 4);
        assert_eq!(row(r#"{"n": 1, "i": "-5"}"#)?.i, Some(-5));
        assert_eq!(row(r#"{"n": 1, "f": "0.25"}"#)?.f, Some(0.25));
        assert_eq!(row(r#"{"n": 1, "f": 3}"#)?.f, Some(3.0));
        assert_eq!(row(r#"{"n": 1, "i": null}"#)?.i, None);
        assert_eq!(row(r#"{"n": 1, "i": ""}"#)?.i, None);
        assert_eq!(row(r#"{"n": 1}"#)?.f, None);
        assert_eq!(row(r#"{"n": 1, "s": 42}"#)?.s.as_deref(), Some("42"));
        Ok(())
    }

    #[test]
    fn bad_numbers_fail() {
        assert!(row(r#"{"n": "abc"}"#).is_err());
        assert!(row(r#"{"n": -1}"#).is_err());
        assert!(row(r#"{"n": 1.5}"#).is_err());
        assert!(row(r#"{"n": null}"#).is_err());
        assert!(row(r#"{"n": 1, "f": "x"}"#).is_err());
    }

    #[test]
    fn booleans_perl_style() -> Result<(), serde_json::Error> {
        for (text, want) in [
            ("true", true),
            ("false", false),
            ("0", false),
            ("1", true),
            (r#""0""#, false),
            (r#""1""#, true),
        ] {
            let r = row(&format!(r#"{{"n": 1, "b": {text}}}"#))?;
            assert_eq!(r.b, Some(want), "input {text}");
        }
        assert!(row(r#"{"n": 1, "b": 2}"#).is_err());
        assert!(row(r#"{"n": 1, "b": "maybe"}"#).is_err());
        Ok(())
    }
}
