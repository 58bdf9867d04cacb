//! Support for the tests that run `finx-server` as a process: the binary of this build, a
//! free loopback port, and a child process killed when the test ends.

use std::process::Child;

/// The `finx-server` binary of this build (`target/debug/finx-server`, beside the test
/// binary's `deps` directory).
///
/// # Panics
/// When it has not been built (`cargo xtask ci` builds it first).
#[must_use]
pub fn server_binary() -> std::path::PathBuf {
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
