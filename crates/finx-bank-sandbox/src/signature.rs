//! The sandbox bank's check of signed requests, as banks that require a QSealC make it: the
//! `Digest` matches the body, the `Signature` (after draft-cavage, as the NextGenPSD2
//! document shows it) covers at least `digest` and `x-request-id` and verifies with the key
//! of the `TPP-Signature-Certificate`, whose serial the `keyId` names, and which the given
//! authority issued.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{self, UnparsedPublicKey};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a request's signature is refused, as the XS2A message code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `SIGNATURE_MISSING`.
    Missing,
    /// `SIGNATURE_INVALID`.
    Invalid,
    /// `CERTIFICATE_INVALID`.
    Certificate,
}

impl Refusal {
    /// The XS2A message code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "SIGNATURE_MISSING",
            Self::Invalid => "SIGNATURE_INVALID",
            Self::Certificate => "CERTIFICATE_INVALID",
        }
    }
}

fn param<'a>(signature: &'a str, name: &str) -> Option<&'a str> {
    signature.split(',').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k == name).then(|| v.trim_matches('"'))
    })
}

/// `keyId` holds a comma inside `CA=…`; everything between `keyId="` and the next `"`.
fn key_id(signature: &str) -> Option<&str> {
    let at = signature.find("keyId=\"")? + "keyId=\"".len();
    signature[at..].split('"').next()
}

/// Checks a request: `header` reads a request header, `body` is the raw body, and
/// `authority_der` the certificate of the authority that must have issued the QSealC.
///
/// # Errors
/// The [`Refusal`].
pub fn check(
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    authority_der: &[u8],
) -> Result<(), Refusal> {
    let (Some(digest), Some(sig), Some(cert_b64)) = (
        header("digest"),
        header("signature"),
        header("tpp-signature-certificate"),
    ) else {
        return Err(Refusal::Missing);
    };
    if digest != format!("SHA-256={}", STANDARD.encode(Sha256::digest(body))) {
        return Err(Refusal::Invalid);
    }
    let cert_der = STANDARD
        .decode(cert_b64.trim())
        .map_err(|_| Refusal::Certificate)?;
    let (_, cert) = X509Certificate::from_der(&cert_der).map_err(|_| Refusal::Certificate)?;
    let (_, authority) =
        X509Certificate::from_der(authority_der).map_err(|_| Refusal::Certificate)?;
    cert.verify_signature(Some(authority.public_key()))
        .map_err(|_| Refusal::Certificate)?;
    let serial: String = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let named = key_id(&sig)
        .and_then(|k| k.split(',').next())
        .unwrap_or_default();
    if named != format!("SN={serial}") {
        return Err(Refusal::Invalid);
    }
    let headers = param(&sig, "headers").ok_or(Refusal::Invalid)?;
    let names: Vec<String> = headers
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    // What the document requires signed: digest and request id always; the PSU's id and
    // the redirect address whenever the request carries them.
    for required in [
        "digest",
        "x-request-id",
        "psu-id",
        "psu-corporate-id",
        "tpp-redirect-uri",
    ] {
        let must = matches!(required, "digest" | "x-request-id") || header(required).is_some();
        if must && !names.iter().any(|n| n == required) {
            return Err(Refusal::Invalid);
        }
    }
    let mut lines = Vec::new();
    for name in &names {
        let value = header(name).ok_or(Refusal::Invalid)?;
        lines.push(format!("{name}: {value}"));
    }
    let signed = lines.join("\n");
    let value = STANDARD
        .decode(param(&sig, "signature").ok_or(Refusal::Invalid)?)
        .map_err(|_| Refusal::Invalid)?;
    let algorithm: &dyn signature::VerificationAlgorithm =
        match param(&sig, "algorithm").unwrap_or_default() {
            "SHA-256withRSA" | "rsa-sha256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "SHA-256withECDSA" | "ecdsa-sha256" => &signature::ECDSA_P256_SHA256_ASN1,
            _ => return Err(Refusal::Invalid),
        };
    let key = &cert.public_key().subject_public_key.data;
    UnparsedPublicKey::new(algorithm, key)
        .verify(signed.as_bytes(), &value)
        .map_err(|_| Refusal::Invalid)
}
