//! Sandbox bank.
