//! Support for the tests that run `finx-server` as a process: the binary of this build, a
//! free loopback port, and a child process killed when the test ends.

use std::process::Child;

/// The `finx-server` under test: `FINX_TEST_SERVER` when set (`cargo xtask ci` runs the
/// production tests again on builds with fewer adapters), else [`full_server_binary`].
///
/// # Panics
/// When it has not been built.
#[must_use]
pub fn server_binary() -> std::path::PathBuf {
    match std::env::var_os("FINX_TEST_SERVER") {
        Some(path) => {
            let bin = std::path::PathBuf::from(path);
            assert!(
                bin.exists(),
                "FINX_TEST_SERVER {} is missing",
                bin.display()
            );
            bin
        }
        None => full_server_binary(),
    }
}

/// The `finx-server` binary of this build with every feature (`target/debug/finx-server`,
/// beside the test binary's `deps` directory): what runs the standalone sandbox bank.
///
/// # Panics
/// When it has not been built (`cargo xtask ci` builds it first).
#[must_use]
pub fn full_server_binary() -> std::path::PathBuf {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|d| d.join("finx-server")))
        .expect("the test binary's directory");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (cargo xtask ci does)",
        bin.display()
    );
    bin
}

/// A command running [`server_binary`] with the tests' defaults: no metrics listener (many
/// servers run at once; a test that scrapes metrics names its own port).
#[must_use]
pub fn server_command() -> std::process::Command {
    let mut c = std::process::Command::new(server_binary());
    c.env("FINX_METRICS_LISTEN", "off");
    c
}

/// A loopback port free at the time of asking.
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// A child process, killed when dropped: a failing test must not leave it running.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `url` answers below 500.
///
/// # Panics
/// When it does not within 30 seconds.
pub async fn wait_up(url: &str) {
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !http
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() < 500)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{url} did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A standalone sandbox bank (`finx-server sandbox-bank`) on `port`, up and answering.
///
/// # Panics
/// When it does not start.
pub async fn sandbox_bank(port: u16) -> Process {
    let base = format!("http://127.0.0.1:{port}/");
    let child = std::process::Command::new(full_server_binary())
        .env("FINX_METRICS_LISTEN", "off")
        .args([
            "sandbox-bank",
            "--sandbox-listen",
            &format!("127.0.0.1:{port}"),
            "--sandbox-public-url",
            &base,
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the sandbox bank");
    wait_up(&format!("{base}sandbox/xs2a/90094815/v1/consents/x/status")).await;
    Process(child)
}
