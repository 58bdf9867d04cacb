//! Strict parsing of bodies, queries and credentials: every bad input becomes a clear 4xx.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, code};

/// The largest body any endpoint reads.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The body, or a finX error when it is too large or unreadable.
pub(crate) fn body(bytes: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    bytes.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::finx(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::PAYLOAD_TOO_LARGE,
                format!("The body exceeds {BODY_LIMIT} bytes."),
            )
        } else {
            ApiError::invalid("body", "could not be read")
        }
    })
}

/// The kinds of body the endpoints take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Json,
    Form,
}

/// The body's media type, among those allowed.
pub(crate) fn kind(headers: &HeaderMap, allowed: &[Kind]) -> Result<Kind, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let kind = match essence.as_str() {
        "application/json" => Some(Kind::Json),
        "application/x-www-form-urlencoded" => Some(Kind::Form),
        _ => None,
    };
    kind.filter(|k| allowed.contains(k)).ok_or_else(|| {
        let names: Vec<&str> = allowed
            .iter()
            .map(|k| {
                if *k == Kind::Json {
                    "application/json"
                } else {
                    "application/x-www-form-urlencoded"
                }
            })
            .collect();
        ApiError::finx(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {}.", names.join(" or ")),
        )
    })
}

/// A JSON-only endpoint's body: read within the limit, its media type JSON, then parsed
/// as [`json`] does, in that order.
pub(crate) fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body(bytes)?;
    kind(headers, &[Kind::Json])?;
    json(&bytes)
}

/// Parses a JSON body strictly: valid UTF-8, one value, no unknown fields, right types. The
/// error names the field.
pub(crate) fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| ApiError::invalid("body", "is not valid UTF-8"))?;
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = if path == "." {
            unknown_field(&message).unwrap_or_else(|| "body".into())
        } else {
            path
        };
        // serde's message ends with " at line L column C"; the field name is enough.
        let reason = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        ApiError::invalid(&field, reason)
    })?;
    de.end()
        .map_err(|_| ApiError::invalid("body", "has trailing characters after the JSON value"))?;
    Ok(value)
}

/// The field named by serde's "unknown field `x`" or "missing field `x`".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    Some(rest.split('`').next()?.to_owned())
}

/// Decodes one `application/x-www-form-urlencoded` component strictly (UTF-8 required).
fn decode_component(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Parses `a=1&b=2` into a map. Repeated names and bad encoding are errors; `known`, when
/// given, lists the only names accepted.
pub(crate) fn pairs(
    raw: &str,
    known: Option<&[&str]>,
    what: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = decode_component(k)
            .ok_or_else(|| ApiError::invalid(what, "is not valid UTF-8 after percent-decoding"))?;
        let v = decode_component(v)
            .ok_or_else(|| ApiError::invalid(&k, "is not valid UTF-8 after percent-decoding"))?;
        if let Some(known) = known {
            if !known.contains(&k.as_str()) {
                return Err(ApiError::invalid(
                    &k,
                    format!("unknown parameter; known: {}", known.join(", ")),
                ));
            }
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(ApiError::invalid(&k, "given more than once"));
        }
    }
    Ok(out)
}

/// Client credentials from HTTP Basic (RFC 6749 §2.3.1: both parts form-urlencoded).
///
/// `Ok(None)` when there is no `Authorization` header.
pub(crate) fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::client_auth())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(ApiError::client_auth)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::client_auth());
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .map_err(|_| ApiError::client_auth())?;
    let text = String::from_utf8(decoded).map_err(|_| ApiError::client_auth())?;
    let (id, secret) = text.split_once(':').ok_or_else(ApiError::client_auth)?;
    let id = decode_component(id).ok_or_else(ApiError::client_auth)?;
    let secret = decode_component(secret).ok_or_else(ApiError::client_auth)?;
    Ok(Some((id, secret)))
}

/// The bearer token of the `Authorization` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::bearer("An access token is required."))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::bearer("Malformed Authorization header."))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::bearer("Malformed Authorization header."))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::bearer("Use the Bearer scheme."));
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct B {
        n: Option<i64>,
        s: Option<String>,
    }

    fn field(e: ApiError) -> String {
        match e {
            ApiError::Finx { data, .. } => data
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default(),
            ApiError::OAuth { .. } => String::new(),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(field(json::<B>(br#"{"n": "x"}"#).expect_err("type")), "n");
        assert_eq!(
            field(json::<B>(br#"{"zz": 1}"#).expect_err("unknown")),
            "zz"
        );
        assert_eq!(field(json::<B>(b"\xff\xfe").expect_err("utf8")), "body");
        assert_eq!(field(json::<B>(b"{} {}").expect_err("trailing")), "body");
        assert_eq!(field(json::<B>(b"").expect_err("empty")), "body");
        assert!(json::<B>(br#"{"n": 1, "s": "\u00e4"}"#).is_ok());
    }

    #[test]
    fn query_pairs_are_strict() {
        assert!(pairs("count=1&count=2", None, "query").is_err());
        assert!(pairs("cont=1", Some(&["count"]), "query").is_err());
        assert!(pairs("q=%FF", None, "query").is_err());
        let ok = pairs("q=a+b%20c&x=", None, "query").expect("valid");
        assert_eq!(ok.get("q").map(String::as_str), Some("a b c"));
        assert_eq!(ok.get("x").map(String::as_str), Some(""));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let v = STANDARD.encode("my%20client:s%3Acret");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {v}").parse().expect("header"),
        );
        assert_eq!(
            basic(&h).expect("ok"),
            Some(("my client".into(), "s:cret".into()))
        );
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().expect("header"));
        assert!(basic(&h).is_err());
        assert_eq!(basic(&HeaderMap::new()).expect("ok"), None);
    }
}
