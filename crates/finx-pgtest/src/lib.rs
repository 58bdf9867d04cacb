//! A throwaway PostgreSQL cluster for tests: `initdb` in a fresh temporary directory,
//! `pg_ctl start` on a free loopback port, and `pg_ctl stop` plus removal at the end.
//!
//! It uses Debian's `postgresql-15` binaries (`/usr/lib/postgresql/<version>/bin`, or the
//! directory in `FINX_PG_BIN`). `initdb` refuses to run as root, so as root every command
//! runs as the `postgres` user through `runuser -u postgres --`.
//!
//! A watchdog process outlives the owner: when the owning process ends without stopping the
//! cluster (a killed test run), the watchdog stops it and removes its directory.
//!
//! Std only, so that `xtask` can use it without building the rest of the workspace.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running cluster. Dropping it stops the cluster and deletes its files.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// Why the cluster could not be started.
#[derive(Debug)]
pub struct PgError(pub String);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot start a throwaway PostgreSQL: {}", self.0)
    }
}

impl std::error::Error for PgError {}

fn err(msg: impl Into<String>) -> PgError {
    PgError(msg.into())
}

/// The directory holding `initdb` and `pg_ctl`: `FINX_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Result<PathBuf, PgError> {
    if let Ok(dir) = std::env::var("FINX_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| err("no /usr/lib/postgresql: install Debian's postgresql-15 (apt-get install postgresql-15)"))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| err("no initdb under /usr/lib/postgresql/*/bin"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> Result<u16, PgError> {
    let l =
        TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("no free loopback port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| err(e.to_string()))
}

impl PgCluster {
    /// Creates and starts a cluster; the superuser is `postgres`, trusted on loopback.
    ///
    /// # Errors
    /// [`PgError`] saying which step failed, with the server log when it did not start.
    pub fn start() -> Result<Self, PgError> {
        Self::start_with(false)
    }

    /// Like [`start`](Self::start), but serving TLS only: `ssl=on` with a fresh certificate
    /// for `localhost` and 127.0.0.1 from a throwaway certificate authority (made with
    /// `openssl`), and every TCP connection without TLS rejected.
    /// [`ca_file`](Self::ca_file) is the authority's certificate, to trust.
    ///
    /// # Errors
    /// As [`start`](Self::start), or when `openssl` fails.
    pub fn start_tls() -> Result<Self, PgError> {
        Self::start_with(true)
    }

    /// The certificate authority of a TLS cluster, to pass as `sslrootcert`.
    #[must_use]
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("data").join("ca.crt")
    }

    fn start_with(tls: bool) -> Result<Self, PgError> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let port = free_port()?;
        // The directory must belong to the user the server runs as.
        let dir = if as_postgres {
            let out = Command::new("runuser")
                .args([
                    "-u",
                    "postgres",
                    "--",
                    "mktemp",
                    "-d",
                    "/tmp/finx-pg.XXXXXX",
                ])
                .output()
                .map_err(|e| err(format!("runuser: {e}")))?;
            if !out.status.success() {
                return Err(err(format!(
                    "cannot make a directory as postgres: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        } else {
            let out = Command::new("mktemp")
                .args(["-d", "/tmp/finx-pg.XXXXXX"])
                .output()
                .map_err(|e| err(e.to_string()))?;
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        };
        let cluster = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )?;
        let mut opts = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            dir = cluster.dir.display()
        );
        if tls {
            cluster.make_certificate()?;
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = cluster.dir.join("server.log");
        if let Err(e) = cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        ) {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(err(format!("{}\nserver log:\n{tail}", e.0)));
        }
        cluster.watch();
        Ok(cluster)
    }

    /// A throwaway certificate authority (`ca.crt`), a server certificate for `localhost`
    /// and 127.0.0.1 signed by it, and a `pg_hba.conf` that takes TCP connections over TLS
    /// only, all in the data directory and made by the user the server runs as.
    fn make_certificate(&self) -> Result<(), PgError> {
        const SCRIPT: &str = "set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=finx-test-ca \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile server.ext -out server.crt 2>/dev/null
chmod 600 server.key ca.key
printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n' > pg_hba.conf
";
        let mut sh = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", SCRIPT]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", SCRIPT]);
            c
        };
        let out = sh
            .current_dir(self.data_dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("sh: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(err(format!(
                "making a certificate with openssl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), PgError> {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("{tool}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(err(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Starts a detached watchdog that stops the cluster and removes its directory once this
    /// process is gone.
    fn watch(&self) {
        let me = std::process::id();
        let stop = format!(
            "{runuser}{pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1",
            runuser = if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data_dir(),
        );
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; if [ -d {dir} ]; then {stop}; rm -rf {dir}; fi",
            dir = self.dir.display()
        );
        // Errors are ignored: without a watchdog the cluster is still stopped on drop.
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// The port it listens on (127.0.0.1).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for database `db` as the superuser.
    #[must_use]
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The cluster's directory (data, socket and server log).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server now (fast shutdown), keeping the files; [`start_again`](Self::start_again)
    /// brings it back on the same port.
    ///
    /// # Errors
    /// When `pg_ctl stop` fails.
    pub fn stop_server(&self) -> Result<(), PgError> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-w",
                "-t",
                "60",
                "stop",
                "-m",
                "fast",
            ],
        )
    }

    /// Starts a server stopped by [`stop_server`](Self::stop_server) again.
    ///
    /// # Errors
    /// When `pg_ctl start` fails.
    pub fn start_again(&self) -> Result<(), PgError> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=300",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-w",
                "-t",
                "30",
                "stop",
                "-m",
                "immediate",
            ],
        );
        std::thread::sleep(Duration::from_millis(50));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
