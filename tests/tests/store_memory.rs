//! The conformance suite on the in-memory store.

use std::sync::Arc;

use finx_store_memory::MemoryStore;

finx_tests::conformance_suite!(async { Arc::new(MemoryStore::new()) });
