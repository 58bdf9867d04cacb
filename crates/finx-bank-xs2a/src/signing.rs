//! Request signing with the operator's eIDAS QSealC, for the banks that require it
//! (registry quirk `signing-required`), in the form the NextGenPSD2 document shows (after
//! draft-cavage-http-signatures): a `Digest` of the body (`SHA-256=`, base64), a `Signature`
//! over the lower-cased `name: value` lines of `digest`, `x-request-id` and, when sent,
//! `psu-id`, `psu-corporate-id`, `tpp-redirect-uri` (in that order, joined by `\n`), with
//! `keyId="SN=<serial, hex>,CA=<issuer>"`, and the certificate itself in
//! `TPP-Signature-Certificate` (base64 DER). RSA (`SHA-256withRSA`, PKCS#1 v1.5) and ECDSA
//! P-256 (`SHA-256withECDSA`) keys are supported.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};

/// The headers signed, in order, when present.
pub const SIGNED_HEADERS: [&str; 5] = [
    "digest",
    "x-request-id",
    "psu-id",
    "psu-corporate-id",
    "tpp-redirect-uri",
];

enum Key {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
}

/// The QSealC and its key, ready to sign.
pub struct Sealer {
    key: Key,
    certificate_b64: String,
    key_id: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// From one PEM with the certificate (first) and its PKCS#8 private key.
    ///
    /// # Errors
    /// When the certificate or the key does not parse, or the key is neither RSA nor
    /// ECDSA P-256.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or("no certificate in the QSealC PEM")?
            .map_err(|e| format!("QSealC certificate: {e}"))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|e| format!("QSealC key (PKCS#8 PEM): {e}"))?;
        let rng = SystemRandom::new();
        let key = match RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()) {
            Ok(k) => Key::Rsa(k),
            Err(_) => Key::Ecdsa(
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    key.secret_pkcs8_der(),
                    &rng,
                )
                .map_err(|_| "the QSealC key is neither RSA nor ECDSA P-256")?,
            ),
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|e| format!("QSealC certificate: {e}"))?;
        let serial: String = parsed
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let key_id = format!("SN={serial},CA={}", parsed.issuer());
        Ok(Self {
            key,
            certificate_b64: STANDARD.encode(cert.as_ref()),
            key_id,
            rng,
        })
    }

    /// The headers to add to a request with `body` and the headers `sent` (name, value):
    /// `Digest`, `Signature` and `TPP-Signature-Certificate`.
    ///
    /// # Errors
    /// When the key cannot sign.
    pub fn headers(
        &self,
        body: &[u8],
        sent: &[(&str, String)],
    ) -> Result<Vec<(&'static str, String)>, String> {
        let digest = format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)));
        let mut lines = Vec::new();
        let mut names = Vec::new();
        for name in SIGNED_HEADERS {
            let value = if name == "digest" {
                Some(digest.clone())
            } else {
                sent.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            if let Some(v) = value {
                lines.push(format!("{name}: {v}"));
                names.push(name);
            }
        }
        let signing_string = lines.join("\n");
        let (algorithm, sig) = match &self.key {
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    signing_string.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| "RSA signing failed")?;
                ("SHA-256withRSA", sig)
            }
            Key::Ecdsa(k) => {
                let sig = k
                    .sign(&self.rng, signing_string.as_bytes())
                    .map_err(|_| "ECDSA signing failed")?;
                ("SHA-256withECDSA", sig.as_ref().to_vec())
            }
        };
        let signature = format!(
            "keyId=\"{}\",algorithm=\"{algorithm}\",headers=\"{}\",signature=\"{}\"",
            self.key_id,
            names.join(" "),
            STANDARD.encode(sig)
        );
        Ok(vec![
            ("Digest", digest),
            ("Signature", signature),
            ("TPP-Signature-Certificate", self.certificate_b64.clone()),
        ])
    }
}

/// A PKCS#12 (`.p12`, `.pfx`) certificate and key as the PEM the connector takes (the
/// certificate chain, leaf first, then the PKCS#8 key).
///
/// # Errors
/// When the file does not open with `password` or holds no key with its certificate.
pub fn pem_from_pkcs12(data: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let store = p12_keystore::KeyStore::from_pkcs12(
        data,
        password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .map_err(|e| format!("PKCS#12: {e}"))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or("PKCS#12: no private key with its certificate")?;
    if chain.certs().is_empty() {
        return Err("PKCS#12: the key has no certificate".into());
    }
    let mut blocks: Vec<pem::Pem> = chain
        .certs()
        .iter()
        .map(|c| pem::Pem::new("CERTIFICATE", c.as_der().to_vec()))
        .collect();
    blocks.push(pem::Pem::new("PRIVATE KEY", chain.key().as_der().to_vec()));
    Ok(pem::encode_many(&blocks).into_bytes())
}
