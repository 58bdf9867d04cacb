//! Running finX like a product, on the `finx-server` process: Prometheus metrics on a
//! listener of their own, read by the Prometheus project's own Python parser (PyPI
//! `prometheus-client`, installed by `.ci/run`); an access log at INFO that never shows a
//! token; readiness that fails as soon as shutdown starts, while requests are still
//! answered.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use finx_tests::process::{Process, free_port, sandbox_bank, server_command, wait_up};

const SECRET: &str = "fxs_demo-secret-for-the-sandbox";
/// A bearer token that must never reach the log, nor its query twin.
const LEAKY_TOKEN: &str = "fxa_never-log-me-0123456789abcdef";

/// Samples by name and sorted `k=v` labels.
type Samples = HashMap<(String, String), f64>;

/// The metrics endpoint's text, parsed by `prometheus_client.openmetrics.parser`.
async fn scrape(metrics_port: u16) -> Samples {
    let res = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = res.text().await.expect("text");
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out.append([s.name, labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus-client (installed by .ci/run)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, String, f64)> = serde_json::from_slice(&out.stdout).expect("json");
    rows.into_iter().map(|(n, l, v)| ((n, l), v)).collect()
}

/// A sample's value (counts and gauges here are whole numbers); 0 when absent.
fn value(s: &Samples, name: &str, labels: &str) -> u64 {
    s.get(&(name.to_owned(), labels.to_owned()))
        .map_or(0, |v| *v as u64)
}

async fn start(dir: &Path, port: u16, metrics: u16, bank: u16) -> Process {
    let log = std::fs::File::create(dir.join("server.log")).expect("log file");
    let child = server_command()
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &format!("sqlite://{}", dir.join("finx.db").display()),
            "--sandbox-bank-url",
            &format!("http://127.0.0.1:{bank}/"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics}"),
            "--shutdown-drain-seconds",
            "3",
        ])
        // The default log filter: what an operator sees.
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start finx-server");
    wait_up(&format!("http://127.0.0.1:{port}/readyz")).await;
    Process(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_the_log_shows_no_secret_and_readiness_fails_at_shutdown() {
    let dir = tempfile::tempdir().expect("dir");
    let bank_port = free_port();
    let _bank = sandbox_bank(bank_port).await;
    let (port, metrics_port) = (free_port(), free_port());
    let mut server = start(dir.path(), port, metrics_port, bank_port).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let before = scrape(metrics_port).await;
    for _ in 0..3 {
        let r = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    // A bad refresh token, and a bad bearer token with a token in the query as well.
    let r = http
        .post(format!("{base}/auth/token"))
        .basic_auth("finx-demo", Some(SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "fxr_unknown-0123456789abcdef"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!(
            "{base}/rest/transactions?access_token={LEAKY_TOKEN}"
        ))
        .bearer_auth(LEAKY_TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // The metrics are not on the API's port.
    let r = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);

    let after = scrape(metrics_port).await;
    let healthz = "method=GET,route=/healthz,status=200";
    assert_eq!(
        value(&after, "finx_http_requests_total", healthz),
        value(&before, "finx_http_requests_total", healthz) + 3
    );
    assert!(
        value(
            &after,
            "finx_http_request_duration_seconds_count",
            "method=GET,route=/healthz"
        ) >= 3
    );
    assert_eq!(
        value(
            &after,
            "finx_http_requests_total",
            "method=GET,route=/rest/transactions,status=401"
        ),
        1
    );
    assert_eq!(
        value(
            &after,
            "finx_token_grants_total",
            "grant_type=refresh_token,outcome=invalid_grant"
        ),
        1
    );
    assert_eq!(
        value(
            &after,
            "finx_http_requests_total",
            "method=GET,route=unmatched,status=404"
        ),
        1
    );
    assert!(value(&after, "finx_db_pool_connections_max", "") >= 1);
    assert!(
        after.contains_key(&("finx_jobs_queued".to_owned(), "kind=sync".to_owned())),
        "the queues are sampled"
    );

    // The access log: one INFO line per request, with its route template, never a token.
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    let line = log
        .lines()
        .find(|l| l.contains("finx::access") && l.contains("route=/rest/transactions"))
        .unwrap_or_else(|| panic!("no access line for /rest/transactions in:\n{log}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("status=401"), "{line}");
    assert!(line.contains("request_id="), "{line}");
    assert!(line.contains("latency_us="), "{line}");
    assert!(
        !log.contains("never-log-me"),
        "a token reached the log:\n{log}"
    );

    // Shutdown: readiness fails at once, liveness and requests still answer during the
    // drain, then the process ends.
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(2);
    let ready = loop {
        let r = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz");
        if r.status() == 503 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready.status(), 503, "readiness fails once shutdown starts");
    let body: serde_json::Value = ready.json().await.expect("finX error shape");
    assert!(body["error"]["code"].is_number(), "{body}");
    let live = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(live.status(), 200, "still answering while draining");
    let ended = Instant::now() + Duration::from_secs(30);
    while server.0.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < ended,
            "the server did not stop after its drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
