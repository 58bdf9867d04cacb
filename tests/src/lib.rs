//! Workspace-level test support: the storage conformance suite that every store runs, and
//! fixtures that wire the core to real adapters.
//!
//! The tests themselves live in `tests/tests/`.

pub mod browser;
pub mod conformance;
pub mod fixtures;
pub mod pg;
pub mod process;
