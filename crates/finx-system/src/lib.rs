//! System adapters.
