//! Memory store.
