//! finX automation, in Rust: `cargo xtask <task>`.
//!
//! - `ci`: format check, clippy with `-D warnings`, the architecture check, and every test.
//! - `bench`: the benchmarks, written to `docs/benchmarks.md` (needs `wrk`).
//! - `check-arch`: the dependency invariants of `docs/architecture.md`, against
//!   `cargo metadata`.
//! - `xs2a-conformance`: the XS2A connector through Prism and the official document
//!   (needs `../shared/xs2a/` and npm), written to `docs/xs2a-conformance.md`.

mod bench;
mod enrich;
mod xs2a;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("check-arch") => check_arch(),
        Some("bench") => bench::bench(),
        Some("xs2a-conformance") => xs2a::conformance(),
        // The schemathesis step of `ci` alone (needs `finx-bench` built).
        Some("schemathesis") => bench::schemathesis(),
        // The categorisation evaluation alone, written into its section of
        // docs/benchmarks.md (`bench` writes it with everything else).
        Some("eval-categories") => enrich::write_into_benchmarks(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | check-arch | bench | xs2a-conformance | schemathesis | eval-categories>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `target/` in the workspace.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root().join("target"), |d| root().join(d))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n== {step}");
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: could not start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn ci() -> Result<()> {
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "cargo clippy -D warnings",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    check_arch()?;
    check_readme_links()?;
    // Every dependency's licence, the banned crates and where crates come from (deny.toml);
    // offline, so no advisories.
    cargo()
        .args(["deny", "--version"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .ok_or("cargo-deny is needed: cargo install --locked cargo-deny (.ci/run does)")?;
    run(
        "cargo deny check licenses bans sources",
        cargo().args([
            "deny",
            "--locked",
            "--offline",
            "check",
            "licenses",
            "bans",
            "sources",
        ]),
    )?;
    // The SDK as a customer takes it: by default (rustls, no database driver), and bare.
    run(
        "finx-client with its default features",
        cargo().args(["check", "--locked", "-p", "finx-client"]),
    )?;
    run(
        "finx-client without default features",
        cargo().args([
            "check",
            "--locked",
            "-p",
            "finx-client",
            "--no-default-features",
        ]),
    )?;
    // The server with fewer adapters, as teams that pick theirs build it: set aside, then
    // smoke-tested below by the production tests while PostgreSQL runs.
    let smoke = build_feature_servers()?;
    // The binaries the hardening tests run as processes (kill -9, schemathesis).
    run(
        "build finx-server and finx-bench",
        cargo().args(["build", "--locked", "-p", "finx-server", "-p", "finx-bench"]),
    )?;
    // One throwaway PostgreSQL for the whole run; the tests create a database each.
    eprintln!("\n== starting a throwaway PostgreSQL");
    let pg = finx_pgtest::PgCluster::start().map_err(|e| {
        format!("{e}\nThe PostgreSQL tests cannot be skipped: install Debian's postgresql-15 (.ci/run does).")
    })?;
    eprintln!(
        "PostgreSQL on 127.0.0.1:{} in {}",
        pg.port(),
        pg.dir().display()
    );
    let result = test_workspace(&pg.url("postgres"));
    let smoked = result
        .as_ref()
        .ok()
        .map(|_| smoke_feature_servers(&smoke, &pg.url("postgres")));
    drop(pg);
    let (passed, failed) = result?;
    smoked.transpose()?;
    bench::schemathesis()?;
    eprintln!("\n== ci: all green");
    // The last line is the tally, so whoever reads the end of the log reads the result.
    #[allow(clippy::print_stdout)]
    {
        println!("tests: {passed} passed, {failed} failed");
    }
    Ok(())
}

/// The `finx-server` builds with one database each and no sandbox bank.
const FEATURE_BUILDS: &[(&str, &str)] = &[("sqlite,xs2a", "sqlite"), ("postgres,xs2a", "postgres")];

/// Builds `finx-server` with each of [`FEATURE_BUILDS`] and copies the binary aside (the
/// next build with every feature replaces `target/debug/finx-server`); returns the copies.
fn build_feature_servers() -> Result<Vec<(PathBuf, &'static str)>> {
    let dir = target_dir().join("feature-builds");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut built = Vec::new();
    for (features, database) in FEATURE_BUILDS {
        run(
            &format!("build finx-server with only {features}"),
            cargo().args([
                "build",
                "--locked",
                "-p",
                "finx-server",
                "--no-default-features",
                "--features",
                features,
            ]),
        )?;
        let copy = dir.join(format!("finx-server-{database}"));
        std::fs::copy(target_dir().join("debug/finx-server"), &copy)
            .map_err(|e| format!("copy the {features} build: {e}"))?;
        built.push((copy, *database));
    }
    Ok(built)
}

/// The production tests (QWAC, registry import, a client, the widget of an imported bank
/// over mutual TLS; refusals of what a build left out) on each feature build, on its
/// database.
fn smoke_feature_servers(builds: &[(PathBuf, &str)], postgres_url: &str) -> Result<()> {
    for (binary, database) in builds {
        run(
            &format!("smoke test of {}", binary.display()),
            cargo()
                .args([
                    "test",
                    "--locked",
                    "-p",
                    "finx-tests",
                    "--test",
                    "production",
                ])
                .env("FINX_TEST_SERVER", binary)
                .env("FINX_TEST_SERVER_DATABASE", database)
                .env("FINX_TEST_POSTGRES_URL", postgres_url),
        )?;
    }
    Ok(())
}

/// Runs every test, passing the output through, and closes with one plain tally line
/// (`tests: N passed, N failed`) so the last line never reads as a run of no tests.
fn test_workspace(postgres_url: &str) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader, Write};
    eprintln!("\n== cargo test");
    let mut child = cargo()
        .args(["test", "--workspace", "--locked", "--no-fail-fast"])
        .env("FINX_TEST_POSTGRES_URL", postgres_url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cargo test: could not start: {e}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    let stdout = child.stdout.take().ok_or("cargo test: no stdout")?;
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("cargo test: {e}"))?;
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count_before(rest, "passed");
            failed += count_before(rest, "failed");
        }
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    writeln!(out, "tests: {passed} passed, {failed} failed").map_err(|e| e.to_string())?;
    if status.success() && failed == 0 && passed > 0 {
        Ok((passed, failed))
    } else {
        Err(format!(
            "cargo test failed ({status}; {passed} passed, {failed} failed)"
        ))
    }
}

/// The number before `word` in a cargo test summary such as `ok. 12 passed; 0 failed; …`.
fn count_before(summary: &str, word: &str) -> u64 {
    summary
        .split(';')
        .find_map(|part| {
            part.trim()
                .rsplit_once(' ')
                .filter(|(_, w)| *w == word)
                .map(|(n, _)| n)
        })
        .and_then(|n| n.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Crates that are adapters: each may depend on ports and domain, never on another adapter.
const ADAPTERS: &[&str] = &[
    "finx-store-memory",
    "finx-store-sql",
    "finx-bank-sandbox",
    "finx-bank-xs2a",
    "finx-system",
    "finx-webhooks",
    "finx-metrics",
];

/// Crates the domain must never reach, directly or not.
const DOMAIN_FORBIDDEN: &[&str] = &[
    "tokio",
    "sqlx",
    "axum",
    "hyper",
    "reqwest",
    "serde_json",
    "async-trait",
    "getrandom",
    "rand",
    "mockall",
];

/// The README points only at files of this repository: every relative Markdown link names a
/// file or directory that exists, and nothing refers outside the clone (`../`).
fn check_readme_links() -> Result<()> {
    eprintln!("\n== README links");
    let text = std::fs::read_to_string(root().join("README.md")).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.contains("../") {
            problems.push(format!(
                "line {}: refers outside the repository: {line}",
                n + 1
            ));
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let target = rest.split(')').next().unwrap_or_default();
            let path = target.split('#').next().unwrap_or_default();
            let external = path.starts_with("http://") || path.starts_with("https://");
            if !external && !path.is_empty() && !root().join(path).exists() {
                problems.push(format!("line {}: {path} does not exist", n + 1));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("README.md:\n{}", problems.join("\n")))
    }
}

fn check_arch() -> Result<()> {
    eprintln!("\n== architecture invariants");
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let graph = Graph::new(&meta)?;
    let mut problems = Vec::new();

    // finx-domain: pure, with no runtime, I/O or wire format anywhere below it (normal deps).
    for bad in normal_tree("finx-domain")?
        .intersection(&DOMAIN_FORBIDDEN.iter().map(|s| (*s).to_owned()).collect())
    {
        problems.push(format!("finx-domain reaches {bad}"));
    }
    // finx-ports: only the domain among workspace crates.
    for dep in graph.workspace_deps("finx-ports") {
        if dep != "finx-domain" {
            problems.push(format!("finx-ports depends on {dep}"));
        }
    }
    // finx-core: only domain and ports.
    for dep in graph.workspace_deps("finx-core") {
        if !["finx-domain", "finx-ports"].contains(&dep.as_str()) {
            problems.push(format!("finx-core depends on {dep}"));
        }
    }
    // No adapter depends on another adapter, or on the core.
    for a in ADAPTERS {
        for dep in graph.workspace_deps(a) {
            if ADAPTERS.contains(&dep.as_str()) || dep == "finx-core" {
                problems.push(format!("adapter {a} depends on {dep}"));
            }
        }
    }
    // The driving adapter (HTTP) sees the core, ports and domain, and no other adapter.
    for dep in graph.workspace_deps("finx-http") {
        if !["finx-core", "finx-domain", "finx-ports"].contains(&dep.as_str()) {
            problems.push(format!("finx-http depends on {dep}"));
        }
    }
    // The SDK is what customers take: it stands alone.
    for dep in graph.workspace_deps("finx-client") {
        problems.push(format!("finx-client depends on {dep}"));
    }
    // The code map has one heading per crate.
    let map = std::fs::read_to_string(root().join("docs/architecture.md"))
        .map_err(|e| format!("docs/architecture.md: {e}"))?;
    for entry in std::fs::read_dir(root().join("crates")).map_err(|e| e.to_string())? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        if !map.contains(&format!("### `crates/{name}`")) {
            problems.push(format!(
                "docs/architecture.md has no heading for crates/{name}"
            ));
        }
    }
    // The domain never reads the clock: no `now()` call in its sources.
    for file in rust_files(&root().join("crates/finx-domain/src"))? {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        if text.contains("::now()") {
            problems.push(format!("{} reads the clock", file.display()));
        }
    }
    if problems.is_empty() {
        eprintln!("architecture invariants hold");
        Ok(())
    } else {
        Err(format!(
            "architecture invariants broken:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// Every package in the normal-dependency tree of `package`, with the features it really
/// enables (`cargo metadata` reports a workspace-wide union, which over-reports).
fn normal_tree(package: &str) -> Result<BTreeSet<String>> {
    let out = cargo()
        .args([
            "tree", "--locked", "-e", "normal", "--prefix", "none", "-f", "{p}", "-p", package,
        ])
        .output()
        .map_err(|e| format!("cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != package)
        .map(str::to_owned)
        .collect())
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(out)
}

/// The normal (non-dev, non-build) dependency graph by package name.
struct Graph {
    deps: BTreeMap<String, BTreeSet<String>>,
    workspace: BTreeSet<String>,
}

impl Graph {
    fn new(meta: &serde_json::Value) -> Result<Self> {
        let names: BTreeMap<&str, &str> = meta["packages"]
            .as_array()
            .ok_or("metadata: no packages")?
            .iter()
            .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
            .collect();
        let workspace = meta["workspace_members"]
            .as_array()
            .ok_or("metadata: no members")?
            .iter()
            .filter_map(|id| names.get(id.as_str()?).map(|n| (*n).to_owned()))
            .collect();
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for node in meta["resolve"]["nodes"]
            .as_array()
            .ok_or("metadata: no resolve graph")?
        {
            let Some(name) = node["id"].as_str().and_then(|id| names.get(id)) else {
                continue;
            };
            let entry = deps.entry((*name).to_owned()).or_default();
            for dep in node["deps"].as_array().into_iter().flatten() {
                let normal = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null());
                if let (true, Some(n)) = (normal, dep["pkg"].as_str().and_then(|id| names.get(id)))
                {
                    entry.insert((*n).to_owned());
                }
            }
        }
        Ok(Self { deps, workspace })
    }

    fn workspace_deps(&self, of: &str) -> Vec<String> {
        self.deps
            .get(of)
            .into_iter()
            .flatten()
            .filter(|d| self.workspace.contains(*d))
            .cloned()
            .collect()
    }
}
