//! Rendered pages of transactions, kept for the next read of the same page by the same
//! grant: a customer polling `/rest/transactions` gets the bytes it got before, without a
//! database round trip, for as long as nothing it reads has changed.
//!
//! What keeps them right is the core's [`ReadVersion`]: a page is kept under the version it
//! was read under (taken before the read) and served only while
//! [`Finx::serves`](finx_core::Finx::serves) says that version still stands (no write to
//! its accounts or to any grant since, and younger than the read cache's time-to-live).
//! The token is checked, and its right to read the page, before every lookup. A request
//! with `Cache-Control: no-cache` is read from the store.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use finx_core::ReadVersion;
use finx_domain::ids::GrantId;

/// Which page: the grant and the request's path and query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PageKey {
    grant: GrantId,
    request: String,
}

impl PageKey {
    /// The page `account` (`None` for `/rest/transactions`) with the raw query `query`.
    pub(crate) fn new(grant: GrantId, account: Option<&str>, query: Option<&str>) -> Self {
        let mut request = String::with_capacity(64);
        request.push_str(account.unwrap_or(""));
        request.push('?');
        request.push_str(query.unwrap_or(""));
        Self { grant, request }
    }
}

struct Page {
    version: ReadVersion,
    body: Bytes,
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<PageKey, Arc<Page>> for Weight {
    fn weight(&self, key: &PageKey, page: &Arc<Page>) -> u64 {
        (page.body.len() + key.request.len() + 64) as u64
    }
}

/// The kept pages of one instance, bounded in bytes and evicted by use.
pub struct Pages {
    cache: Option<quick_cache::sync::Cache<PageKey, Arc<Page>, Weight>>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("entries", &self.cache.as_ref().map(|c| c.len()))
            .finish()
    }
}

impl Pages {
    /// Keeps up to `bytes` of pages (0: none).
    #[must_use]
    pub fn new(bytes: u64) -> Self {
        let cache = (bytes > 0).then(|| {
            // A page of 100 transactions is about 60 kB.
            let items = usize::try_from(bytes / 8_192).unwrap_or(usize::MAX).max(16);
            quick_cache::sync::Cache::with_weighter(items, bytes, Weight)
        });
        Self { cache }
    }

    /// The kept body of `key` if `still` says its version stands.
    pub(crate) fn get(&self, key: &PageKey, still: impl Fn(&ReadVersion) -> bool) -> Option<Bytes> {
        let page = self.cache.as_ref()?.get(key)?;
        still(&page.version).then(|| page.body.clone())
    }

    /// Keeps `body`, read under `version`.
    pub(crate) fn keep(&self, key: PageKey, version: ReadVersion, body: Bytes) {
        if let Some(cache) = &self.cache {
            cache.insert(key, Arc::new(Page { version, body }));
        }
    }
}

/// Whether the request asks for a read from the store (`Cache-Control: no-cache`).
pub(crate) fn wants_fresh(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store")
        })
}
