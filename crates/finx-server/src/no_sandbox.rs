//! A build without the `sandbox` feature: no sandbox bank. Sandbox mode is refused when the
//! configuration is read (`Config::resolve`), so nothing here is reached in a running
//! server but `standalone`, which says why it cannot run.

use std::path::PathBuf;
use std::sync::Arc;

use finx_store_sql::SqlStore;

use crate::config::Config;

/// No sandbox bank exists in this build.
pub(crate) enum Bank {}

/// Why sandbox mode and `sandbox-bank` cannot run.
pub(crate) const MISSING: &str = "this build of finx-server has no sandbox bank (it was built without the `sandbox` feature): run it with --mode production, or build it with `--features sandbox`";

/// Never a sandbox bank.
pub(crate) fn in_process(_: &Config, _: Arc<finx_system::SystemClock>) -> Option<Bank> {
    None
}

/// Sandbox mode is refused earlier; here for completeness.
pub(crate) async fn start(_: &Config, _: &SqlStore, _: Option<Bank>) -> Result<(), String> {
    Err(MISSING.into())
}

/// `sandbox-bank` in a build without it.
pub(crate) async fn standalone(
    _: &Config,
    _: Option<PathBuf>,
    _: Option<PathBuf>,
    _: Option<PathBuf>,
    _: Option<PathBuf>,
) -> Result<(), String> {
    Err(MISSING.into())
}
