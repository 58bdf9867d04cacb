//! Authorisations that happen away from finX: on the redirect bank's own pages, or in the
//! decoupled bank's app. Unlike session handles these have state (what the user did at the
//! bank), held in this instance's memory, bounded in number and age.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::TimeDelta;
use finx_domain::Timestamp;
use finx_ports::ReturnTo;

use crate::catalog::{Approach, Bank, User};

/// The most authorisations held at once; older ones go first.
const CAPACITY: usize = 10_000;

/// How long an unfinished authorisation is kept.
pub(crate) const LIFETIME: TimeDelta = TimeDelta::hours(1);

/// What happened at the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nothing yet.
    Pending,
    /// The user approved.
    Approved,
    /// The user declined, or failed the bank's checks too often.
    Rejected,
    /// The user cancelled.
    Cancelled,
    /// The login is locked.
    Locked,
    /// The bank could not serve the user.
    Unavailable,
}

/// Where the user is on the redirect bank's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// The login form, after this many wrong tries.
    Login(u8),
    /// The TAN form, after this many wrong tries.
    Tan(u8),
}

/// One authorisation.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The bank.
    pub(crate) bank: &'static Bank,
    /// The login, once known.
    pub(crate) user: Option<User>,
    /// When it started.
    pub(crate) started: Timestamp,
    /// The redirect bank's page the user is on.
    pub(crate) page: Page,
    /// What happened.
    pub(crate) decision: Decision,
    /// Where the redirect bank sends the user back to (unused for decoupled).
    pub(crate) return_to: ReturnTo,
}

/// The authorisations of one sandbox instance.
#[derive(Debug, Default)]
pub(crate) struct Authorisations(Mutex<HashMap<String, Pending>>);

impl Authorisations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `pending` under `id`, dropping expired ones first; `false` when full.
    pub(crate) fn insert(&self, id: String, pending: Pending, now: Timestamp) -> bool {
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.retain(|_, p| now - p.started < LIFETIME);
        }
        if map.len() >= CAPACITY {
            return false;
        }
        map.insert(id, pending);
        true
    }

    /// A copy of the authorisation `id`, if it is known and not expired.
    pub(crate) fn get(&self, id: &str, now: Timestamp) -> Option<Pending> {
        self.lock()
            .get(id)
            .filter(|p| now - p.started < LIFETIME)
            .cloned()
    }

    /// Changes the authorisation `id` with `change`, if it is known and not expired.
    pub(crate) fn update<T>(
        &self,
        id: &str,
        now: Timestamp,
        change: impl FnOnce(&mut Pending) -> T,
    ) -> Option<T> {
        let mut map = self.lock();
        map.get_mut(id)
            .filter(|p| now - p.started < LIFETIME)
            .map(change)
    }

    /// Forgets `id` (its outcome was handed to finX).
    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The decoupled authorisations still waiting, oldest first.
    pub(crate) fn waiting(&self, now: Timestamp) -> Vec<(String, Pending)> {
        let mut list: Vec<_> = self
            .lock()
            .iter()
            .filter(|(_, p)| {
                p.bank.approach == Approach::Decoupled
                    && p.decision == Decision::Pending
                    && now - p.started < LIFETIME
            })
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect();
        list.sort_by_key(|(_, p)| p.started);
        list
    }
}
