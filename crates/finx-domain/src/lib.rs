//! The finX domain: the one-time access flow, the token rules and the validated values
//! everything else is built from.
//!
//! This crate is pure. It does no I/O, owns no clock and no randomness: time comes in as a
//! [`Timestamp`] value and randomness as bytes. Every value type is parsed once at the edge
//! (`parse`, `new`) and is valid from then on; fields are private and there are no setters.

pub mod access;
pub mod bank;
pub mod enrich;
pub mod feed;
pub mod flow;
pub mod ids;
pub mod linking;
pub mod money;
pub mod query;
pub mod reference;
pub mod registry;
pub mod sca;
pub mod schedule;
pub mod scope;
pub mod secret;
pub mod token;
pub mod upload;
pub mod values;
pub mod verify;
pub mod webhook;

/// An instant in UTC. The domain never reads a clock: callers pass the time in.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// A calendar date (booking dates, value dates).
pub type Date = chrono::NaiveDate;
