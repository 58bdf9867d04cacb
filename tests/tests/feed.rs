//! The transactions sync feed (issue 14): replaying it reproduces exactly what
//! `/rest/transactions` shows, whatever the interleaving of syncs and reads, on the memory
//! store and on SQLite; a change during pagination asks for a restart of the pass; the feed
//! over HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::TimeDelta;
use finx_core::{Authorization, CoreError, Finx};
use finx_domain::bank::Transaction;
use finx_domain::ids::TransactionId;
use finx_domain::query::TransactionQuery;
use finx_ports::Clock;
use finx_tests::fixtures::{App, REDIRECT, Served};
use proptest::prelude::*;
use serde_json::{Value, json};

/// An ongoing access of the `moving` login through the core, and its authorization.
async fn moving(app: &App) -> Authorization {
    let req = finx_core::OngoingAccessRequest {
        flow: finx_core::OnetimeAccessRequest {
            redirect_uri: REDIRECT.into(),
            ..Default::default()
        },
        user_id: "feed-user".into(),
        access_id: None,
    };
    let flow = app
        .finx
        .create_ongoing_access(&app.client, req)
        .await
        .expect("create");
    app.finx
        .select_bank(flow.id, "sandbox-90094815")
        .await
        .expect("select");
    app.through_bank(flow.id, "moving").await;
    app.finx
        .choose_accounts(flow.id, vec!["giro".into()])
        .await
        .expect("choose");
    let url = app.finx.complete(flow.id).await.expect("complete");
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let t = app
        .finx
        .exchange_code(&app.client, &code, REDIRECT)
        .await
        .expect("exchange");
    app.finx
        .authorize(t.access_token.expose())
        .await
        .expect("authorize")
}

/// One scheduled-or-manual sync, as the runner does it, a day later on the test clock.
async fn sync(app: &App, auth: &Authorization) {
    app.clock.advance(TimeDelta::days(1));
    app.finx
        .request_sync(auth, auth.access_id.as_str())
        .await
        .expect("sync asked");
    for j in app.finx.claim_syncs(10).await.expect("claim") {
        app.finx.run_sync(&j).await.expect("run");
    }
}

/// A feed reader: what it has, where it stands, and what it had when its pass began.
struct Reader {
    have: BTreeMap<TransactionId, Transaction>,
    cursor: Option<String>,
    pass_start: (BTreeMap<TransactionId, Transaction>, Option<String>),
    restarts: usize,
}

impl Reader {
    fn new() -> Self {
        Self {
            have: BTreeMap::new(),
            cursor: None,
            pass_start: (BTreeMap::new(), None),
            restarts: 0,
        }
    }

    /// Reads one page of `count`; returns `has_more`.
    async fn page(&mut self, finx: &Finx, auth: &Authorization, count: u32) -> bool {
        match finx
            .transactions_feed(auth, self.cursor.as_deref(), Some(count))
            .await
        {
            Ok(p) => {
                // Within a page: removals first (a transaction may be removed and added back).
                for id in p.removed {
                    assert!(self.have.remove(&id).is_some(), "removed unseen");
                }
                for t in p.added {
                    assert!(self.have.insert(t.id.clone(), t).is_none(), "added twice");
                }
                for t in p.modified {
                    assert!(
                        self.have.insert(t.id.clone(), t).is_some(),
                        "modified before added"
                    );
                }
                self.cursor = Some(p.next_cursor);
                if !p.has_more {
                    self.pass_start = (self.have.clone(), self.cursor.clone());
                }
                p.has_more
            }
            Err(CoreError::FeedRestart { cursor }) => {
                // Discard this pass; go on from where it began.
                self.have = self.pass_start.0.clone();
                self.cursor = Some(cursor);
                self.restarts += 1;
                true
            }
            Err(e) => panic!("feed: {e:?}"),
        }
    }

    async fn read_to_the_end(&mut self, finx: &Finx, auth: &Authorization) {
        for _ in 0..1_000 {
            if !self.page(finx, auth, 50).await {
                return;
            }
        }
        panic!("the feed never ended");
    }
}

/// What `/rest/transactions` shows, pending ones included.
async fn shown(finx: &Finx, auth: &Authorization) -> BTreeMap<TransactionId, Transaction> {
    let q = TransactionQuery {
        count: 1000,
        include_pending: true,
        ..TransactionQuery::default()
    };
    finx.list_transactions(auth, q)
        .await
        .expect("list")
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect()
}

#[derive(Debug, Clone)]
enum Step {
    Sync,
    Read(u32),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![Just(Step::Sync), (1u32..40).prop_map(Step::Read)],
        1..14,
    )
}

async fn replay_matches(store: Arc<dyn finx_tests::conformance::Store>, steps: Vec<Step>) {
    let app = App::on(store).await;
    let auth = moving(&app).await;
    let mut reader = Reader::new();
    for s in steps {
        match s {
            Step::Sync => sync(&app, &auth).await,
            Step::Read(n) => {
                reader.page(&app.finx, &auth, n).await;
            }
        }
    }
    reader.read_to_the_end(&app.finx, &auth).await;
    assert_eq!(reader.have, shown(&app.finx, &auth).await);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any interleaving of syncs (new days, payments that book under new ids, reversals)
    /// and reads of any page size: replaying the feed gives exactly what the API shows.
    #[test]
    fn replaying_the_feed_reproduces_the_transactions_on_memory(steps in steps()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(replay_matches(Arc::new(finx_store_memory::MemoryStore::new()), steps));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// The same on SQLite.
    #[test]
    fn replaying_the_feed_reproduces_the_transactions_on_sqlite(steps in steps()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async {
            let dir = tempfile::tempdir().expect("dir");
            let url = format!("sqlite://{}", dir.path().join("f.db").display());
            let store = finx_store_sql::SqlStore::connect(&url).await.expect("open");
            replay_matches(Arc::new(store), steps).await;
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// The same on PostgreSQL.
    #[test]
    fn replaying_the_feed_reproduces_the_transactions_on_postgres(steps in steps()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async {
            let url = finx_tests::pg::fresh_database().await;
            let store = finx_store_sql::SqlStore::connect(&url).await.expect("open");
            replay_matches(Arc::new(store), steps).await;
        });
    }
}

/// A pending payment the reader got in this pass books while the reader is mid-pass: the
/// next page asks for a restart, and the restarted pass ends consistent.
#[tokio::test]
async fn a_change_during_pagination_restarts_the_pass() {
    let app = App::new().await;
    let auth = moving(&app).await;
    let mut reader = Reader::new();
    // Page by page until a pending transaction was delivered, mid-pass.
    let mut got_pending = false;
    for _ in 0..500 {
        let more = reader.page(&app.finx, &auth, 1).await;
        assert!(more, "a pending one comes before the end");
        if reader.have.values().any(|t| !t.details.booked) {
            got_pending = true;
            break;
        }
    }
    assert!(got_pending);
    // Two bank days on, every pending card payment of then has booked or gone.
    sync(&app, &auth).await;
    sync(&app, &auth).await;
    let cursor = reader.cursor.clone();
    let err = app
        .finx
        .transactions_feed(&auth, cursor.as_deref(), Some(1))
        .await
        .expect_err("mutation during pagination");
    assert!(matches!(err, CoreError::FeedRestart { .. }), "{err:?}");
    reader.page(&app.finx, &auth, 1).await;
    assert_eq!(reader.restarts, 1);
    reader.read_to_the_end(&app.finx, &auth).await;
    assert_eq!(reader.have, shown(&app.finx, &auth).await);
    // A later sync reports what changed as modified (booked) or removed, not as added.
    sync(&app, &auth).await;
    let p = app
        .finx
        .transactions_feed(&auth, reader.cursor.as_deref(), Some(500))
        .await
        .expect("page");
    assert!(!p.has_more);
    assert!(!p.added.is_empty(), "a new bank day");
    for t in &p.modified {
        assert!(reader.have.contains_key(&t.id), "modified ones are known");
    }
    // created_at and modified_at agree with the feed: this sync's changes carry its time,
    // and since_type=modified finds exactly them.
    let at = app.clock.now();
    assert!(
        p.added
            .iter()
            .all(|t| t.created_at == at && t.modified_at == at)
    );
    assert!(
        p.modified
            .iter()
            .all(|t| t.modified_at == at && t.created_at < at)
    );
    let q = TransactionQuery {
        count: 1000,
        include_pending: true,
        since_type: finx_domain::query::SinceType::Modified,
        since: Some(finx_domain::query::Bound::Date(at.date_naive())),
        ..TransactionQuery::default()
    };
    let since: std::collections::BTreeSet<TransactionId> = app
        .finx
        .list_transactions(&auth, q)
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.id)
        .collect();
    let changed: std::collections::BTreeSet<TransactionId> = p
        .added
        .iter()
        .chain(p.modified.iter())
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(since, changed);
}

#[tokio::test]
async fn the_feed_over_http_with_its_errors() {
    let s = Served::start(App::new().await).await;
    let t = finx_tests::fixtures::connect_ongoing(&s, "moving", "u").await;
    let bearer = t["access_token"].as_str().expect("token");
    let get = |q: String| {
        s.http
            .get(s.url(&format!("/rest/transactions/sync{q}")))
            .bearer_auth(bearer)
            .send()
    };
    let page: Value = get("?count=500".into())
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let all: Value = s
        .http
        .get(s.url("/rest/transactions?include_pending=true&count=1000"))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(page["has_more"], false);
    assert_eq!(
        page["added"].as_array().map(Vec::len),
        all["transactions"].as_array().map(Vec::len)
    );
    assert_eq!(page["modified"], json!([]));
    assert_eq!(page["removed"], json!([]));
    let cursor = page["next_cursor"].as_str().expect("cursor");
    // Nothing changed since: an empty page with a cursor that still works.
    let again: Value = get(format!("?cursor={cursor}"))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(again["added"], json!([]));
    assert_eq!(again["has_more"], false);
    // Bad input: a clear 400 naming the field.
    for (q, field) in [
        ("?cursor=fxc1_forged".to_owned(), "cursor"),
        ("?count=0".to_owned(), "count"),
        ("?count=501".to_owned(), "count"),
        ("?count=x".to_owned(), "count"),
        ("?since=1".to_owned(), "since"),
    ] {
        let res = get(q.clone()).await.expect("send");
        assert_eq!(res.status(), reqwest::StatusCode::BAD_REQUEST, "{q}");
        let body: Value = res.json().await.expect("json");
        assert!(body["error"]["data"].get(field).is_some(), "{q}: {body}");
    }
}
