//! The ports of finX: the traits the application core needs from the outside world.
//!
//! Each trait lives here alone; its implementations live in sibling adapter crates
//! (`finx-store-memory`, `finx-bank-sandbox`, `finx-system`, ...). Every method states its
//! contract in MUST words; the conformance suite in `finx-tests` holds every store to it.
//!
//! With the `mock` feature every trait gets a `mockall` mock (`MockFlowStore`, ...), for unit
//! tests of the core.

mod bank;
mod bus;
mod error;
mod store;
mod system;
mod telemetry;
mod webhook;

pub use bank::{
    BankConnector, BankCredentials, BankError, BankReply, ConsentRequest, Presence, PsuContext,
    ReturnTo,
};
pub use bus::{Heard, Invalidation, InvalidationBus};
pub use error::{BoxError, RedeemFailure, RotateFailure, StoreError};
pub use store::{
    AccessStore, AccountSync, BankDataStore, BankRegistry, Change, Changed, Client, ClientRegistry,
    FeedRead, FlowStore, GrantStore, JobOutcome, PreviousSecret, PurgeReport, SyncReport,
};
pub use system::{Clock, SecretGenerator, Timer};
pub use telemetry::{NoTelemetry, Telemetry};
pub use webhook::{SendFailure, WebhookSender, WebhookStore, stored_event};

#[cfg(feature = "mock")]
pub use bank::MockBankConnector;
#[cfg(feature = "mock")]
pub use bus::MockInvalidationBus;
#[cfg(feature = "mock")]
pub use store::{
    MockAccessStore, MockBankDataStore, MockBankRegistry, MockClientRegistry, MockFlowStore,
    MockGrantStore,
};
#[cfg(feature = "mock")]
pub use system::{MockClock, MockSecretGenerator, MockTimer};
#[cfg(feature = "mock")]
pub use telemetry::MockTelemetry;
#[cfg(feature = "mock")]
pub use webhook::{MockWebhookSender, MockWebhookStore};
