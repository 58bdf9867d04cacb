//! The XS2A connector's mutual TLS against the sandbox bank served over TLS that demands a
//! client certificate, as banks demand the TPP's eIDAS QWAC. The certificates (an authority,
//! the bank's server certificate, the TPP's QWAC, and a stranger's) are made here.

use std::sync::Arc;

use finx_bank_sandbox::tls::{TlsSettings, serve_tls, server_config};
use finx_bank_sandbox::{SandboxBank, SandboxConfig};
use finx_bank_xs2a::{Xs2aConfig, Xs2aConnector};
use finx_domain::ids::InstitutionId;
use finx_domain::registry::{BankDraft, RegisteredBank};
use finx_domain::sca::StepAnswer;
use finx_ports::{
    BankConnector, BankError, BankRegistry, BankReply, ConsentRequest, Presence, PsuContext,
    ReturnTo,
};
use finx_tests::fixtures::{TestClock, t0};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = p.self_signed(&key).expect("self-signed");
        Self { cert, key }
    }

    /// A certificate and key (PEM) for `names`, for `purpose`.
    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut p =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("finX TPP"),
        );
        p.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

/// The sandbox bank over TLS on a loopback port, demanding client certificates from `qtsp`.
async fn bank_over_tls(
    bank_ca: &Authority,
    qtsp: &Authority,
) -> Arc<finx_store_memory::MemoryStore> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let base = url::Url::parse(&format!("https://127.0.0.1:{port}/")).expect("url");
    let sandbox = Arc::new(SandboxBank::new(
        SandboxConfig {
            public_url: base.clone(),
            ..SandboxConfig::default()
        },
        Arc::new(TestClock::at(t0())),
    ));
    let (cert_pem, key_pem) = bank_ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let config = server_config(&TlsSettings {
        cert_pem: cert_pem.into_bytes(),
        key_pem: key_pem.into_bytes(),
        client_ca_pem: Some(qtsp.cert.pem().into_bytes()),
    })
    .expect("tls config");
    tokio::spawn(serve_tls(
        listener,
        finx_bank_sandbox::xs2a::router(sandbox),
        config,
    ));
    let registry = Arc::new(finx_store_memory::MemoryStore::new());
    let bank = RegisteredBank::from_draft(BankDraft {
        id: Some("sandbox-90094815".into()),
        name: "finX Sandbox Bank".into(),
        bank_code: Some("90094815".into()),
        url: base.join("sandbox/xs2a/90094815").expect("url").to_string(),
        ..BankDraft::default()
    })
    .expect("bank");
    registry.upsert_banks(&[bank]).await.expect("registry");
    registry
}

fn connector(
    registry: Arc<finx_store_memory::MemoryStore>,
    qwac: Option<(String, String)>,
    roots: Vec<String>,
) -> Xs2aConnector {
    Xs2aConnector::new(
        registry,
        Xs2aConfig {
            qwac_pem: qwac.map(|(c, k)| format!("{c}{k}").into_bytes()),
            extra_roots_pem: roots.into_iter().map(String::into_bytes).collect(),
            ..Xs2aConfig::default()
        },
    )
    .expect("connector")
}

async fn nosca_accounts(c: &Xs2aConnector) -> Result<usize, BankError> {
    let i = InstitutionId::parse("sandbox-90094815").expect("id");
    let request = ConsentRequest {
        psu: PsuContext {
            ip: Some("198.51.100.7".parse().expect("ip")),
            user_agent: None,
        },
        ibans: Vec::new(),
        recurring: false,
        valid_until: t0().date_naive(),
        frequency_per_day: 1,
    };
    let back = url::Url::parse("https://finx.test/widget/callback?state=s&ok=1").expect("url");
    let return_to = ReturnTo {
        ok: back.clone(),
        nok: back,
    };
    let BankReply::Next { session, .. } = c.begin(&i, &request, &return_to).await? else {
        panic!("a login first");
    };
    let login = StepAnswer::Login(vec![
        ("user".into(), "nosca".into()),
        ("pin".into(), "demo".into()),
    ]);
    let BankReply::Done { session, .. } = c.answer(&i, &session, &login, &return_to).await? else {
        panic!("nosca is done after the login");
    };
    Ok(c.accounts(&session, &Presence::Unattended).await?.len())
}

#[tokio::test]
async fn the_connector_presents_its_qwac_and_banks_refuse_anyone_else() {
    let bank_ca = Authority::new("Bank Server CA");
    let qtsp = Authority::new("Test QTSP");
    let registry = bank_over_tls(&bank_ca, &qtsp).await;
    let roots = vec![bank_ca.cert.pem()];
    let qwac = qtsp.issue(&["finX TPP"], ExtendedKeyUsagePurpose::ClientAuth);

    // With the QWAC the bank takes: the whole dialog and the data over mutual TLS.
    let ok = connector(registry.clone(), Some(qwac.clone()), roots.clone());
    assert_eq!(nosca_accounts(&ok).await.expect("over mutual TLS"), 3);

    // Without a client certificate, or with one from another authority: refused.
    let none = connector(registry.clone(), None, roots.clone());
    assert!(matches!(
        nosca_accounts(&none).await,
        Err(BankError::Unavailable(_))
    ));
    let stranger =
        Authority::new("Somebody Else").issue(&["mallory"], ExtendedKeyUsagePurpose::ClientAuth);
    let foreign = connector(registry.clone(), Some(stranger), roots);
    assert!(matches!(
        nosca_accounts(&foreign).await,
        Err(BankError::Unavailable(_))
    ));

    // And the connector does not trust a bank whose certificate it cannot verify.
    let untrusting = connector(registry, Some(qwac), Vec::new());
    assert!(matches!(
        nosca_accounts(&untrusting).await,
        Err(BankError::Unavailable(_))
    ));
}

/// The sandbox bank's XS2A server over plain HTTP, demanding requests signed with a QSealC
/// of `qtsp`, and a registry entry marked `signing-required`.
async fn bank_demanding_signatures(qtsp: &Authority) -> Arc<finx_store_memory::MemoryStore> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base =
        url::Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    let sandbox = Arc::new(SandboxBank::new(
        SandboxConfig {
            public_url: base.clone(),
            ..SandboxConfig::default()
        },
        Arc::new(TestClock::at(t0())),
    ));
    let app = finx_bank_sandbox::xs2a::router_with(sandbox, Some(qtsp.cert.der().to_vec()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let registry = Arc::new(finx_store_memory::MemoryStore::new());
    let bank = RegisteredBank::from_draft(BankDraft {
        id: Some("sandbox-90094815".into()),
        name: "finX Sandbox Bank".into(),
        bank_code: Some("90094815".into()),
        url: base.join("sandbox/xs2a/90094815").expect("url").to_string(),
        quirks: vec!["signing-required".into()],
        ..BankDraft::default()
    })
    .expect("bank");
    registry.upsert_banks(&[bank]).await.expect("registry");
    registry
}

fn sealing(
    registry: Arc<finx_store_memory::MemoryStore>,
    qseal: Option<(String, String)>,
) -> Xs2aConnector {
    Xs2aConnector::new(
        registry,
        Xs2aConfig {
            qseal_pem: qseal.map(|(c, k)| format!("{c}{k}").into_bytes()),
            ..Xs2aConfig::default()
        },
    )
    .expect("connector")
}

#[tokio::test]
async fn banks_that_require_signatures_get_every_request_signed_with_the_qseal() {
    let qtsp = Authority::new("Test QTSP");
    let registry = bank_demanding_signatures(&qtsp).await;
    let qseal = qtsp.issue(&["finX TPP seal"], ExtendedKeyUsagePurpose::ClientAuth);

    let signed = sealing(registry.clone(), Some(qseal.clone()));
    assert_eq!(nosca_accounts(&signed).await.expect("signed requests"), 3);

    // No QSealC: the connector says so rather than send unsigned requests.
    let unsigned = sealing(registry.clone(), None);
    match nosca_accounts(&unsigned).await {
        Err(BankError::Unavailable(why)) => assert!(why.contains("QSealC"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A seal from another authority: the bank refuses it, and the end user is told the
    // bank is unavailable (the operator's certificates are wrong, not anything of theirs).
    let stranger =
        Authority::new("Somebody Else").issue(&["mallory"], ExtendedKeyUsagePurpose::ClientAuth);
    assert!(matches!(
        nosca_accounts(&sealing(registry, Some(stranger))).await,
        Err(BankError::Unavailable(_))
    ));
}

#[test]
fn a_signature_covers_the_body_and_the_request_id() {
    let qtsp = Authority::new("Test QTSP");
    let (cert, key) = qtsp.issue(&["finX TPP seal"], ExtendedKeyUsagePurpose::ClientAuth);
    let sealer = finx_bank_xs2a::signing::Sealer::from_pem(format!("{cert}{key}").as_bytes())
        .expect("sealer");
    let body = br#"{"access":{}}"#;
    let sent = vec![
        (
            "X-Request-ID",
            "0f7b5b1e-5d1a-4c5e-9a0b-1f2e3d4c5b6a".to_owned(),
        ),
        ("PSU-ID", "demo".to_owned()),
    ];
    let headers = sealer.headers(body, &sent).expect("signed");
    let lookup = |extra: &[(&str, String)]| {
        let all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .chain(
                sent.iter()
                    .chain(extra)
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
            )
            .collect();
        move |name: &str| {
            all.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    };
    let der = qtsp.cert.der().to_vec();
    assert_eq!(
        finx_bank_sandbox::signature::check(lookup(&[]), body, &der),
        Ok(())
    );
    assert!(headers.iter().any(|(k, v)| *k == "Signature" && v.contains("headers=\"digest x-request-id psu-id\"")));
    // Another body, another request id, another PSU: refused.
    use finx_bank_sandbox::signature::Refusal;
    assert_eq!(
        finx_bank_sandbox::signature::check(lookup(&[]), b"{}", &der),
        Err(Refusal::Invalid)
    );
    let other_id = [(
        "X-Request-ID",
        "11111111-1111-4111-8111-111111111111".to_owned(),
    )];
    assert_eq!(
        finx_bank_sandbox::signature::check(lookup(&other_id), body, &der),
        Err(Refusal::Invalid)
    );
    let other_psu = [("PSU-ID", "mallory".to_owned())];
    assert_eq!(
        finx_bank_sandbox::signature::check(lookup(&other_psu), body, &der),
        Err(Refusal::Invalid)
    );
    // A seal from another authority: the certificate is refused.
    let other = Authority::new("Other QTSP");
    assert_eq!(
        finx_bank_sandbox::signature::check(lookup(&[]), body, other.cert.der()),
        Err(Refusal::Certificate)
    );
    assert_eq!(
        finx_bank_sandbox::signature::check(|_| None, body, &der),
        Err(Refusal::Missing)
    );
}

#[tokio::test]
async fn a_qwac_may_come_as_pkcs12() {
    let bank_ca = Authority::new("Bank Server CA");
    let qtsp = Authority::new("Test QTSP");
    let registry = bank_over_tls(&bank_ca, &qtsp).await;
    let (cert_pem, key_pem) = qtsp.issue(&["finX TPP"], ExtendedKeyUsagePurpose::ClientAuth);
    // The PKCS#12 file an operator gets from a QTSP, made here from the same certificate.
    let cert_der = ::pem::parse(&cert_pem).expect("pem").into_contents();
    let key_der = ::pem::parse(&key_pem).expect("pem").into_contents();
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![1u8],
        p12_keystore::PrivateKey::from_der(&key_der).expect("key"),
        [p12_keystore::Certificate::from_der(&cert_der).expect("cert")],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("qwac", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    let p12 = store.writer("s3cret").write().expect("pkcs12");

    assert!(finx_bank_xs2a::signing::pem_from_pkcs12(&p12, "wrong").is_err());
    let pem = finx_bank_xs2a::signing::pem_from_pkcs12(&p12, "s3cret").expect("opens");
    let c = Xs2aConnector::new(
        registry,
        Xs2aConfig {
            qwac_pem: Some(pem),
            extra_roots_pem: vec![bank_ca.cert.pem().into_bytes()],
            ..Xs2aConfig::default()
        },
    )
    .expect("connector");
    assert_eq!(nosca_accounts(&c).await.expect("over mutual TLS"), 3);
}
