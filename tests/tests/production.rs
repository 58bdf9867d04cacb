//! `finx-server` as a process in production mode: it refuses to start without a QWAC or a
//! bank registry, and with both it serves the widget for an imported bank, reached through
//! the XS2A connector over mutual TLS (here the standalone sandbox bank, `finx-server
//! sandbox-bank`, serving TLS and demanding a certificate from the QTSP that issued finX's
//! QWAC).

use finx_tests::process::Process;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A certificate authority made now: its certificate and key.
struct Authority(rcgen::Certificate, rcgen::KeyPair);

fn authority(name: &str) -> Authority {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("cert");
    Authority(cert, key)
}

/// A certificate for `name` issued by `ca`, and its key, PEM.
fn issue(ca: &Authority, name: &str, purpose: rcgen::ExtendedKeyUsagePurpose) -> (String, String) {
    let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.extended_key_usages = vec![purpose];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &ca.0, &ca.1).expect("signed");
    (cert.pem(), key.serialize_pem())
}

async fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "port {port} did not open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for(url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() < 500)
    {
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn production_mode_starts_with_a_qwac_and_a_registry_and_serves_an_imported_bank() {
    let dir = std::env::temp_dir().join(format!("finx-production-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // A QTSP and the QWAC it issues to finX, and the bank's own server certificate (a real
    // QWAC comes from a qualified trust service provider; these are made now).
    let qtsp = authority("Test QTSP");
    let bank_ca = authority("Bank Server CA");
    let (qwac_cert, qwac_key) = issue(
        &qtsp,
        "finX TPP",
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (bank_cert, bank_key) = issue(
        &bank_ca,
        "127.0.0.1",
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let qwac = dir.join("qwac.pem");
    std::fs::write(&qwac, format!("{qwac_cert}{qwac_key}")).expect("write");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let bank_cert_file = write("bank.pem", &bank_cert);
    let bank_key_file = write("bank.key", &bank_key);
    let qtsp_file = write("qtsp.pem", &qtsp.0.pem());
    let bank_roots = write("bank-roots.pem", &bank_ca.0.pem());
    // `cargo xtask ci` runs this again on a build with PostgreSQL alone.
    let db = match std::env::var("FINX_TEST_SERVER_DATABASE").as_deref() {
        Ok("postgres") => finx_tests::pg::fresh_database().await,
        _ => format!("sqlite://{}", dir.join("finx.db").display()),
    };
    let keys = [
        ("FINX_MODE", "production".to_owned()),
        ("FINX_HASH_KEY", "h".repeat(40)),
        ("FINX_LINK_KEY", "l".repeat(40)),
        ("FINX_DATA_KEY", "d".repeat(40)),
        ("FINX_DATABASE_URL", db.clone()),
        ("FINX_BANK_ROOTS", bank_roots.clone()),
    ];
    let run = |args: &[&str], with_qwac: bool| {
        let mut c = finx_tests::process::server_command();
        c.args(args).env("RUST_LOG", "warn");
        for (k, v) in &keys {
            c.env(k, v);
        }
        if with_qwac {
            c.env("FINX_QWAC", &qwac);
        }
        c.output().expect("run")
    };

    // Without a QWAC: refused, with the reason.
    let out = run(&["migrate"], false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("QWAC"));

    // Without a registry: refused at start.
    let port = finx_tests::process::free_port();
    let out = run(&["--listen", &format!("127.0.0.1:{port}")], true);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("banks import"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The standalone sandbox bank over mutual TLS (it takes only the QTSP's certificates),
    // and a registry pointing at it.
    let bank_port = finx_tests::process::free_port();
    // The bank is the full build's, whichever server is under test.
    let _bank = Process(
        std::process::Command::new(finx_tests::process::full_server_binary())
            .env("FINX_METRICS_LISTEN", "off")
            .args([
                "sandbox-bank",
                "--sandbox-listen",
                &format!("127.0.0.1:{bank_port}"),
                "--sandbox-public-url",
                &format!("https://127.0.0.1:{bank_port}/"),
                "--tls-cert",
                &bank_cert_file,
                "--tls-key",
                &bank_key_file,
                "--client-ca",
                &qtsp_file,
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sandbox bank"),
    );
    wait_port(bank_port).await;
    let registry = dir.join("banks.toml");
    std::fs::write(
        &registry,
        format!(
            "[[bank]]\nname = \"Musterbank (Sandbox)\"\nbic = \"FINXDEB1XXX\"\nbank_code = \"90094815\"\n\
             url = \"https://127.0.0.1:{bank_port}/sandbox/xs2a/90094815\"\nsca_approaches = [\"EMBEDDED\"]\n"
        ),
    )
    .expect("write");
    let out = run(&["banks", "import", registry.to_str().expect("path")], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 1 banks"));
    let out = run(&["banks", "list", "--search", "muster"], true);
    assert!(String::from_utf8_lossy(&out.stdout).contains("de-90094815"));
    let out = run(
        &[
            "clients",
            "create",
            "--name",
            "Prod App",
            "--redirect-uri",
            "https://app.example/cb",
            "--id",
            "prod-app",
        ],
        true,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_secret:"))
        .map(str::trim)
        .expect("a secret")
        .to_owned();
    // Administration: show, then update name and redirect URIs, then show again.
    let out = run(&["clients", "show", "prod-app"], true);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("name:         Prod App"), "{shown}");
    assert!(
        shown.contains("redirect_uri: https://app.example/cb"),
        "{shown}"
    );
    assert!(!shown.contains(&secret), "the secret is never shown again");
    let out = run(
        &[
            "clients",
            "update",
            "prod-app",
            "--name",
            "Prod App 2",
            "--redirect-uri",
            "https://app.example/cb",
            "--redirect-uri",
            "https://app.example/cb2",
        ],
        true,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["clients", "show", "prod-app"], true);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("name:         Prod App 2"), "{shown}");
    assert!(
        shown.contains("redirect_uri: https://app.example/cb2"),
        "{shown}"
    );
    let out = run(
        &[
            "clients",
            "update",
            "prod-app",
            "--redirect-uri",
            "not a url",
        ],
        true,
    );
    assert!(!out.status.success(), "a bad redirect URI is refused");
    let out = run(&["clients", "show", "nobody"], true);
    assert!(!out.status.success(), "an unknown client is an error");

    let mut server = finx_tests::process::server_command();
    server
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .env("FINX_QWAC", &qwac)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &keys {
        server.env(k, v);
    }
    server.stderr(Stdio::from(
        std::fs::File::create(dir.join("finx.log")).expect("log"),
    ));
    let _server = Process(server.spawn().expect("server"));
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{base}/readyz")).await;

    let http = finx_tests::fixtures::browser();
    // The catalog lists the imported bank from the registry, by the id flows take.
    let catalog: serde_json::Value = http
        .get(format!("{base}/rest/catalog/banks?country=DE&q=muster"))
        .basic_auth("prod-app", Some(&secret))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        catalog["banks"],
        serde_json::json!([{
            "provider_id": "de-90094815", "name": "Musterbank (Sandbox)", "bic": "FINXDEB1XXX",
            "bank_code": "90094815", "country": "DE"
        }]),
        "{catalog}"
    );
    let v: serde_json::Value = http
        .post(format!("{base}/onetime/access"))
        .basic_auth("prod-app", Some(&secret))
        .json(&serde_json::json!({
            "redirect_uri": "https://app.example/cb",
            "accounts": [{ "id": "DE82900948150000002881" }],
        }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let location = v["location"].as_str().unwrap_or_else(|| panic!("{v}"));
    http.get(location).send().await.expect("page");
    let page = http
        .get(location)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("Musterbank (Sandbox)"),
        "the imported bank, by its IBAN: {page}"
    );
    assert!(
        page.contains("id=\"login\""),
        "its login form, from the bank over XS2A: {page}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--version` names the adapters built in (`cargo xtask ci` runs this on the full build and
/// on builds with `sqlite,xs2a` and `postgres,xs2a` only), and a build refuses what it left
/// out with a message that says which feature to build with.
#[test]
fn a_build_names_its_adapters_and_refuses_what_it_left_out() {
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let mut c = finx_tests::process::server_command();
        c.args(args).env("RUST_LOG", "warn");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().expect("run")
    };
    let out = run(&["--version"], &[]);
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout).to_string();
    let built = |f: &str| {
        version.split_once('(').is_some_and(|(_, list)| {
            list.trim_end()
                .trim_end_matches(')')
                .split(' ')
                .any(|x| x == f)
        })
    };
    assert!(
        built("xs2a"),
        "every build reads banks over XS2A: {version}"
    );
    assert!(built("sqlite") || built("postgres"), "{version}");
    if std::env::var_os("FINX_TEST_SERVER").is_none() {
        for f in ["sqlite", "postgres", "sandbox", "xs2a"] {
            assert!(built(f), "the default build has {f}: {version}");
        }
    }
    let dir = std::env::temp_dir().join(format!("finx-features-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let sqlite = format!("sqlite://{}", dir.join("f.db").display());
    let (qwac_cert, qwac_key) = issue(
        &authority("Test QTSP"),
        "finX TPP",
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let qwac = dir.join("qwac.pem");
    std::fs::write(&qwac, format!("{qwac_cert}{qwac_key}")).expect("write");
    let qwac = qwac.display().to_string();
    let production = [
        ("FINX_QWAC", qwac.as_str()),
        ("FINX_MODE", "production"),
        ("FINX_HASH_KEY", "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"),
        ("FINX_LINK_KEY", "llllllllllllllllllllllllllllllllllllllll"),
        ("FINX_DATA_KEY", "dddddddddddddddddddddddddddddddddddddddd"),
    ];
    if !built("sandbox") {
        // Sandbox mode is the default: refused, and so is the standalone sandbox bank.
        for args in [
            vec!["--database-url", sqlite.as_str(), "migrate"],
            vec!["sandbox-bank"],
        ] {
            let out = run(&args, &[]);
            assert!(!out.status.success(), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("without the `sandbox` feature"), "{err}");
            assert!(err.contains("--mode production"), "{err}");
        }
    }
    if !built("postgres") {
        let out = run(
            &["--database-url", "postgres://127.0.0.1:1/finx", "migrate"],
            &production,
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no postgres support") && err.contains("`postgres` feature"),
            "{err}"
        );
    }
    if !built("sqlite") {
        let out = run(&["--database-url", &sqlite, "migrate"], &production);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no sqlite support") && err.contains("`sqlite` feature"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
