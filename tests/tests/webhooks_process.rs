//! Webhooks from the server binary to an independent receiver (issue 14): every delivery
//! is verified by Python's `standardwebhooks` package from PyPI (the Standard Webhooks
//! reference implementation), and none is lost when the server is killed with `kill -9`
//! while deliveries are in flight and restarted.
//!
//! Real parts only: `finx-server` processes (a standalone sandbox bank and the API on
//! SQLite), its `clients webhook` commands, the widget walked over HTTP, a Python receiver.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use finx_tests::process::{Process, free_port, sandbox_bank, wait_up};
use serde_json::{Value, json};

const SECRET: &str = "fxs_demo-secret-for-the-sandbox";
const REDIRECT: &str = "http://127.0.0.1/callback";
const BANK: &str = "sandbox-90094815";
const FLOWS: usize = 8;

fn cli(db: &str, args: &[&str]) -> String {
    let out = finx_tests::process::server_command()
        .args(["--database-url", db])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run finx-server");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn api(db: &str, port: u16, bank: u16) -> Process {
    let child = finx_tests::process::server_command()
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            db,
            "--sandbox-bank-url",
            &format!("http://127.0.0.1:{bank}/"),
            "--webhook-timeout-seconds",
            "5",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start finx-server");
    wait_up(&format!("http://127.0.0.1:{port}/readyz")).await;
    Process(child)
}

/// Python's receiver (tests/py/webhook_receiver.py), up and answering.
async fn receiver(port: u16, dir: &Path) -> Process {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/webhook_receiver.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(dir.join("secret"))
        .arg(dir.join("mode"))
        .arg(dir.join("log"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the receiver (standardwebhooks from PyPI, installed by .ci/run)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the Python receiver did not start: is standardwebhooks installed?"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Process(child)
}

/// One one-time flow through the widget; returns its flow id.
async fn one_flow(base: &str) -> String {
    let http = reqwest::Client::new();
    let link: Value = http
        .post(format!("{base}/onetime/access"))
        .basic_auth("finx-demo", Some(SECRET))
        .json(&json!({ "redirect_uri": REDIRECT, "provider_id": BANK }))
        .send()
        .await
        .expect("link")
        .json()
        .await
        .expect("json");
    let back = finx_tests::fixtures::walk_widget(
        &http,
        link["location"].as_str().expect("location"),
        BANK,
        "demo",
    )
    .await;
    assert!(back.query_pairs().any(|(k, _)| k == "code"), "{back}");
    link["id"].as_str().expect("id").to_owned()
}

fn log_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_verify_with_python_and_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("finx.db").display());
    let (bank_port, api_port, hook_port) = (free_port(), free_port(), free_port());
    std::fs::write(dir.path().join("mode"), "slow").expect("mode");
    let _receiver = receiver(hook_port, dir.path()).await;
    let _bank = sandbox_bank(bank_port).await;

    // The operator registers the endpoint of the demo client (which the sandbox server
    // creates at start); its secret is shown once, to give the receiver.
    let mut server = api(&db, api_port, bank_port).await;
    let added = cli(
        &db,
        &[
            "clients",
            "webhook",
            "add",
            "finx-demo",
            &format!("http://127.0.0.1:{hook_port}/hook"),
        ],
    );
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .map(str::trim)
        .expect("the secret is printed");
    assert!(secret.starts_with("whsec_"), "{added}");
    std::fs::write(dir.path().join("secret"), secret).expect("secret");
    let endpoint_id = added
        .lines()
        .find_map(|l| l.strip_prefix("endpoint_id:"))
        .map(str::trim)
        .expect("id")
        .to_owned();

    // Flows complete while the receiver is slow (3 s a delivery); the server is killed
    // with deliveries in flight and others waiting.
    let base = format!("http://127.0.0.1:{api_port}");
    let mut flows = HashSet::new();
    for _ in 0..FLOWS {
        flows.insert(one_flow(&base).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_lines(dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.0.kill().expect("kill -9");
    server.0.wait().expect("reaped");
    let before = log_lines(dir.path()).len();
    assert!(
        before < FLOWS,
        "some deliveries were still to come ({before})"
    );

    // Restarted, it delivers every one: those in flight once their lease lapses. finX's
    // own log says which it delivered (answered 2xx); the receiver's says which flow each
    // event is.
    std::fs::write(dir.path().join("mode"), "accept").expect("mode");
    let _server = api(&db, api_port, bank_port).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let attempts = cli(
            &db,
            &[
                "clients",
                "webhook",
                "log",
                "finx-demo",
                &endpoint_id,
                "--limit",
                "1000",
            ],
        );
        let delivered: HashSet<&str> = attempts
            .lines()
            .filter(|l| l.split('\t').nth(4) == Some("204"))
            .filter_map(|l| l.split('\t').nth(1))
            .collect();
        let lines = log_lines(dir.path());
        let flow_of: HashMap<&str, &str> = lines
            .iter()
            .filter(|l| l["type"] == "flow.completed")
            .filter_map(|l| Some((l["webhook_id"].as_str()?, l["data"]["flow_id"].as_str()?)))
            .collect();
        let done: HashSet<String> = delivered
            .iter()
            .filter_map(|id| flow_of.get(id).map(|f| (*f).to_owned()))
            .collect();
        if done == flows {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivered {} of {FLOWS}; finX's log:\n{attempts}\nreceiver's: {lines:?}",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lines = log_lines(dir.path());
    // Python's reference implementation verified every delivery.
    assert!(
        lines.iter().all(|l| l["verified"] == true),
        "a delivery did not verify: {lines:?}"
    );
    assert!(
        lines.len() > FLOWS,
        "those cut off by the kill were sent again: {lines:?}"
    );
    // At least once: a repeat has the same webhook-id for the same flow.
    let mut by_id: HashMap<String, String> = HashMap::new();
    for l in &lines {
        let id = l["webhook_id"].as_str().expect("id").to_owned();
        let flow = l["data"]["flow_id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(by_id.entry(id).or_insert_with(|| flow.clone()), &flow);
    }
    // The operator sees it delivered, and each attempt in the log.
    let listed = cli(&db, &["clients", "webhook", "list", "finx-demo"]);
    assert!(
        listed.contains(&endpoint_id) && listed.contains("enabled"),
        "{listed}"
    );
    assert!(listed.contains("last delivered"), "{listed}");
}
