//! The finX server binary.
//!
//! The HTTP API and the widget arrive with issue #4 (`finx-http`); until then this binary
//! says so plainly instead of pretending to serve.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "finx-server: not yet. The HTTP server lands with issue #4.\n\
         Today the whole flow runs in process: `cargo test -p finx-tests --test flow` walks\n\
         create link -> bank login -> TAN -> accounts -> code -> tokens -> transactions\n\
         against the in-memory store and the sandbox bank."
    );
    ExitCode::FAILURE
}
