//! The sandbox bank through its public API: login scenarios, sessions and the data.

mod approaches;
mod data;
mod login;
mod support;
