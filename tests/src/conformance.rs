//! The storage conformance suite: one check per port contract, run by every store.
//!
//! A store's test file calls [`conformance_suite!`](crate::conformance_suite) with an
//! expression that builds a fresh store; the macro expands to one test per check, so a
//! failure names the contract that broke. Checks use unique ids, so they may share a store.

use std::sync::Arc;

use chrono::TimeDelta;
use finx_domain::Timestamp;
use finx_domain::bank::{Account, Transaction, TransactionDetails};
use finx_domain::flow::{Flow, FlowParams, FlowStatus};
use finx_domain::ids::{AccessId, ClientId, FlowId};
use finx_domain::money::{Currency, Money};
use finx_domain::query::{ResolvedBound, ResolvedQuery, SinceType, SortOrder, TxFilter};
use finx_domain::scope::Scope;
use finx_domain::token::{CodeRecord, RedeemError, RotateError};
use finx_domain::values::{Language, RedirectUri, State, SyncPeriod};
use finx_domain::webhook::RevokeReason;
use finx_ports::{
    BankDataStore, BankRegistry, Client, ClientRegistry, FlowStore, GrantStore, RedeemFailure,
    RotateFailure, StoreError,
};
use rust_decimal::Decimal;

use crate::fixtures::{account, grant_with_code, hash, t0, tokens, transaction, unique16};

/// Every storage port at once.
pub trait Store:
    ClientRegistry
    + FlowStore
    + GrantStore
    + BankDataStore
    + BankRegistry
    + finx_ports::AccessStore
    + finx_ports::WebhookStore
    + finx_ports::InvalidationBus
    + Send
    + Sync
    + 'static
{
}
impl<
    T: ClientRegistry
        + FlowStore
        + GrantStore
        + BankDataStore
        + BankRegistry
        + finx_ports::AccessStore
        + finx_ports::WebhookStore
        + finx_ports::InvalidationBus
        + Send
        + Sync
        + 'static,
> Store for T
{
}

/// Expands to one `#[tokio::test]` per conformance check for the store built by `$make`
/// (an async expression yielding `Arc<impl Store>`).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
            clients_are_unique_and_listed_by_id,
            category_rules_keep_their_order_and_their_limit,
            flows_round_trip_and_update_by_compare_and_swap,
                        concurrent_flow_updates_have_one_winner,
            expired_flows_are_purged,
            a_code_is_redeemed_once_and_replay_revokes_the_grant,
            concurrent_code_redemptions_have_exactly_one_winner,
            refresh_rotation_detects_reuse_and_revokes_the_family,
            concurrent_refreshes_of_one_token_have_exactly_one_winner,
            expired_codes_and_refresh_tokens_are_refused,
            revocation_is_idempotent_and_covers_every_token,
            purge_keeps_used_refresh_tokens_until_they_expire,
            accounts_round_trip_every_field,
                        transactions_round_trip_every_field,
            deleting_a_connection_deletes_its_accounts_and_transactions,
            sync_updates_in_place_and_drops_vanished_pending_transactions,
            queries_match_the_reference_semantics,
            revocation_deletes_the_bank_data_unless_another_live_grant_holds_it,
            reuse_revokes_the_grant_and_deletes_its_bank_data,
            purge_ends_grants_at_their_absolute_end_and_deletes_orphaned_data,
            the_bank_registry_upserts_and_searches_by_name_bic_and_code,
            accesses_round_trip_and_update_by_compare_and_swap,
            jobs_are_claimed_once_and_finished_only_by_the_latest_claim,
            deleting_an_access_revokes_its_grants_and_deletes_everything,
            a_pending_transaction_that_books_under_a_new_id_keeps_its_id,
            the_feed_numbers_every_change_and_every_removal,
            webhook_deliveries_fan_out_and_are_claimed_once_per_attempt,
            events_are_written_with_the_change_they_report,
            uploads_round_trip_and_go_with_their_retention,
            access_tokens_are_added_only_to_live_grants,
        );
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let store = $make.await;
                $crate::conformance::$check(store).await;
            }
        )*
    };
}

fn flow(n: u32) -> Flow {
    let params = FlowParams {
        redirect_uri: RedirectUri::parse("https://app.example/cb")
            .unwrap_or_else(|_| unreachable!()),
        state: State::parse("ßtate ✓").ok(),
        language: Language::En,
        accounts: vec![],
        account_types: vec![],
        allow_multi_selection: false,
        sync_period: SyncPeriod::new(365).unwrap_or_default(),
        provider_id: None,
        scope: Scope::parse("accounts=ro offline").unwrap_or(Scope::FULL),
        ongoing: None,
        verification: finx_domain::verify::Verification::new(
            "Müller-Lüdenscheidt, Dr. Erika",
            finx_domain::reference::Iban::parse("DE89370400440532013000").ok(),
        )
        .ok(),
    };
    Flow::new(
        FlowId::from_random(unique16(9, n)),
        ClientId::parse("c").unwrap_or_else(|_| unreachable!()),
        params,
        t0(),
        TimeDelta::hours(1),
        None,
    )
}

/// `insert_client` refuses a taken id and `list_clients` orders by id.
pub async fn clients_are_unique_and_listed_by_id(store: Arc<impl Store>) {
    let mk = |id: &str, name: &str| Client {
        id: ClientId::parse(id).unwrap_or_else(|_| unreachable!()),
        name: name.into(),
        secret_hash: hash(7, 1),
        redirect_uris: vec![
            RedirectUri::parse("https://app.example/cb").unwrap_or_else(|_| unreachable!()),
            RedirectUri::parse("http://127.0.0.1/cb").unwrap_or_else(|_| unreachable!()),
        ],
        scope: Scope::parse("accounts=ro offline").unwrap_or(Scope::FULL),
        created_at: t0(),
        secret_key_id: "0a1b2c3d".into(),
        previous_secret: None,
        disabled_at: None,
        category_rules: Vec::new(),
    };
    store
        .insert_client(&mk("zeta", "Zeta"))
        .await
        .expect("insert");
    store
        .insert_client(&mk("alpha", "Älpha"))
        .await
        .expect("insert");
    let dup = store.insert_client(&mk("zeta", "Other")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let found = store
        .find_client(&ClientId::parse("zeta").expect("id"))
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(
        found,
        mk("zeta", "Zeta"),
        "a conflicting insert must not change the client"
    );
    let ids: Vec<_> = store
        .list_clients()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id.to_string())
        .collect();
    let pos = |s: &str| ids.iter().position(|i| i == s).expect("listed");
    assert!(pos("alpha") < pos("zeta"));
    assert!(
        store
            .find_client(&ClientId::parse("nobody").expect("id"))
            .await
            .expect("find")
            .is_none()
    );
    // Every field of an update round-trips: a rotated secret with its overlap, a disabled
    // client.
    let zeta = ClientId::parse("zeta").expect("id");
    let changed = Client {
        name: "Zeta 2".into(),
        secret_hash: hash(7, 2),
        secret_key_id: "ffeeddcc".into(),
        previous_secret: Some(finx_ports::PreviousSecret {
            hash: hash(7, 1),
            key_id: "0a1b2c3d".into(),
            until: t0() + chrono::TimeDelta::hours(24),
        }),
        disabled_at: Some(t0() + chrono::TimeDelta::seconds(5)),
        ..mk("zeta", "Zeta")
    };
    assert!(store.update_client(&changed).await.expect("update"));
    assert_eq!(
        store.find_client(&zeta).await.expect("find"),
        Some(changed.clone())
    );
    let back = Client {
        previous_secret: None,
        disabled_at: None,
        ..changed
    };
    assert!(store.update_client(&back).await.expect("update"));
    assert_eq!(store.find_client(&zeta).await.expect("find"), Some(back));
    // Deleting removes the record, once.
    assert!(store.delete_client(&zeta).await.expect("delete"));
    assert!(!store.delete_client(&zeta).await.expect("delete"));
    assert!(store.find_client(&zeta).await.expect("find").is_none());
    assert!(
        !store
            .update_client(&mk("zeta", "Zeta"))
            .await
            .expect("update")
    );
}

/// A client's categorisation rules come back with it, in the order they were added, with
/// every field; the limit holds; a deleted rule, and a deleted client's rules, are gone.
pub async fn category_rules_keep_their_order_and_their_limit(store: Arc<impl Store>) {
    use finx_domain::enrich::{CustomerRule, NewCustomerRule};
    let client = Client {
        id: ClientId::parse("ruled").unwrap_or_else(|_| unreachable!()),
        name: "Ruled".into(),
        secret_hash: hash(8, 1),
        redirect_uris: vec![
            RedirectUri::parse("https://app.example/cb").unwrap_or_else(|_| unreachable!()),
        ],
        scope: Scope::FULL,
        created_at: t0(),
        secret_key_id: String::new(),
        previous_secret: None,
        disabled_at: None,
        category_rules: Vec::new(),
    };
    store.insert_client(&client).await.expect("insert");
    let rule = |n: u32| {
        CustomerRule::new(
            format!("R{n}"),
            NewCustomerRule {
                category: "family.childcare".into(),
                name_contains: Some(format!("Kita Nummer {n}")),
                purpose_contains: (n == 1).then(|| "Beitrag".into()),
                creditor_id: (n == 2).then(|| "DE98ZZZ09999999999".into()),
                iban: (n == 2).then(|| "DE89370400440532013000".into()),
                min_amount: (n == 3).then(|| rust_decimal::Decimal::new(-25_050, 2)),
                max_amount: (n == 3).then(|| rust_decimal::Decimal::new(-1, 2)),
            },
        )
        .expect("valid")
    };
    for n in [3, 1, 2] {
        assert!(
            store
                .add_category_rule(&client.id, &rule(n), 3)
                .await
                .expect("add")
        );
    }
    let kept = store
        .find_client(&client.id)
        .await
        .expect("find")
        .expect("exists")
        .category_rules;
    assert_eq!(
        kept,
        vec![rule(3), rule(1), rule(2)],
        "in the order added, every field"
    );
    let full = store.add_category_rule(&client.id, &rule(4), 3).await;
    assert!(matches!(full, Err(StoreError::Conflict(_))), "{full:?}");
    let unknown = ClientId::parse("nobody").unwrap_or_else(|_| unreachable!());
    assert!(
        !store
            .add_category_rule(&unknown, &rule(5), 3)
            .await
            .expect("add")
    );
    assert!(
        store
            .delete_category_rule(&client.id, "R1")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_category_rule(&client.id, "R1")
            .await
            .expect("delete")
    );
    // An update of the client leaves its rules alone.
    assert!(
        store
            .update_client(&Client {
                name: "Ruled 2".into(),
                ..client.clone()
            })
            .await
            .expect("update")
    );
    let listed = store.list_clients().await.expect("list");
    let listed = listed.iter().find(|c| c.id == client.id).expect("listed");
    assert_eq!(listed.category_rules, vec![rule(3), rule(2)]);
    assert!(store.delete_client(&client.id).await.expect("delete"));
    store.insert_client(&client).await.expect("insert again");
    assert!(
        store
            .find_client(&client.id)
            .await
            .expect("find")
            .expect("exists")
            .category_rules
            .is_empty(),
        "a deleted client's rules went with it"
    );
}

/// Flows round-trip; `update_flow` is a compare-and-swap on the version.
pub async fn flows_round_trip_and_update_by_compare_and_swap(store: Arc<impl Store>) {
    let mut f = flow(1);
    store.insert_flow(&f).await.expect("insert");
    assert!(matches!(
        store.insert_flow(&f).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.find_flow(f.id).await.expect("find"), Some(f.clone()));
    let v = f.version;
    f.apply(finx_domain::flow::FlowEvent::Cancelled, t0())
        .expect("cancel");
    store
        .update_flow(&f, v, &[])
        .await
        .expect("update from the stored version");
    assert!(
        matches!(
            store.update_flow(&f, v, &[]).await,
            Err(StoreError::Conflict(_))
        ),
        "a stale version must lose"
    );
    let stored = store.find_flow(f.id).await.expect("find").expect("exists");
    assert_eq!(stored.status, FlowStatus::Cancelled);
    assert_eq!(stored.version, v + 1);
    assert!(store.find_flow(flow(2).id).await.expect("find").is_none());
}

/// Of 16 concurrent updates from one version, exactly one wins.
pub async fn concurrent_flow_updates_have_one_winner(store: Arc<impl Store>) {
    let f = flow(3);
    store.insert_flow(&f).await.expect("insert");
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = store.clone();
        let mut next = f.clone();
        tasks.push(tokio::spawn(async move {
            next.login_attempts = i;
            next.version += 1;
            store.update_flow(&next, f.version, &[]).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

/// `purge_flows` deletes the flows whose link expired before the given time, and only them.
pub async fn expired_flows_are_purged(store: Arc<impl Store>) {
    let old = flow(4);
    let mut young = flow(5);
    young.expires_at = old.expires_at + TimeDelta::hours(2);
    store.insert_flow(&old).await.expect("insert");
    store.insert_flow(&young).await.expect("insert");
    let n = store.purge_flows(old.expires_at).await.expect("purge");
    assert!(n >= 1, "{n}");
    assert!(store.find_flow(old.id).await.expect("find").is_none());
    assert!(store.find_flow(young.id).await.expect("find").is_some());
}

/// A code redeems once; a second redemption fails `AlreadyUsed` and revokes the grant.
pub async fn a_code_is_redeemed_once_and_replay_revokes_the_grant(store: Arc<impl Store>) {
    let now = t0();
    let (g, code) = grant_with_code(10, now);
    store.insert_grant(&g, &code).await.expect("insert");
    assert!(matches!(
        store.insert_grant(&g, &code).await,
        Err(StoreError::Conflict(_))
    ));
    let (other, _) = grant_with_code(11, now);
    let reused = store
        .insert_grant(
            &other,
            &CodeRecord {
                grant_id: other.id,
                ..code.clone()
            },
        )
        .await;
    assert!(
        matches!(reused, Err(StoreError::Conflict(_))),
        "a code hash is unique: {reused:?}"
    );
    assert!(
        store.find_grant(other.id).await.expect("find").is_none(),
        "nothing of a refused grant is stored"
    );
    let (found, fg) = store
        .find_code(&code.hash)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(
        (found, fg),
        (code.clone(), g.clone()),
        "grant and code round-trip"
    );
    let redeemed = store
        .redeem_code(&code.hash, now, &tokens(&g, 10, now))
        .await
        .expect("redeem");
    assert_eq!(redeemed.id, g.id);
    let (a, ag) = store
        .find_access_token(&hash(4, 10))
        .await
        .expect("find")
        .expect("access token stored");
    assert_eq!(a, tokens(&g, 10, now).access);
    assert!(!ag.is_revoked());
    let replay = store
        .redeem_code(&code.hash, now, &tokens(&g, 11, now))
        .await;
    assert!(
        matches!(replay, Err(RedeemFailure::Rejected(RedeemError::AlreadyUsed { grant_id })) if grant_id == g.id),
        "{replay:?}"
    );
    assert!(
        store
            .find_grant(g.id)
            .await
            .expect("find")
            .expect("exists")
            .is_revoked(),
        "replay revokes the grant"
    );
    let (_, after) = store
        .find_refresh_token(&hash(5, 10))
        .await
        .expect("find")
        .expect("kept");
    assert!(after.is_revoked());
    assert!(
        store
            .find_access_token(&hash(4, 11))
            .await
            .expect("find")
            .is_none(),
        "a failed redemption stores nothing"
    );
    assert!(
        store
            .find_code(&code.hash)
            .await
            .expect("find")
            .expect("used codes are still found")
            .0
            .used_at
            .is_some()
    );
    let unknown = store
        .redeem_code(&hash(1, 999_999), now, &tokens(&g, 12, now))
        .await;
    assert!(
        matches!(unknown, Err(RedeemFailure::Rejected(RedeemError::NotFound))),
        "{unknown:?}"
    );
}

/// 64 concurrent redemptions of one code: exactly one wins.
pub async fn concurrent_code_redemptions_have_exactly_one_winner(store: Arc<impl Store>) {
    let now = t0();
    let (g, code) = grant_with_code(20, now);
    store.insert_grant(&g, &code).await.expect("insert");
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let (store, g, h) = (store.clone(), g.clone(), code.hash);
        tasks.push(tokio::spawn(async move {
            store.redeem_code(&h, now, &tokens(&g, 1000 + i, now)).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => wins += 1,
            Err(RedeemFailure::Rejected(
                RedeemError::AlreadyUsed { .. } | RedeemError::Revoked,
            )) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one redemption wins");
}

/// Rotation marks the old token used; using it again fails `Reused` and revokes the family,
/// so the newest token stops working too.
pub async fn refresh_rotation_detects_reuse_and_revokes_the_family(store: Arc<impl Store>) {
    let now = t0();
    let (g, code) = grant_with_code(30, now);
    store.insert_grant(&g, &code).await.expect("insert");
    store
        .redeem_code(&code.hash, now, &tokens(&g, 30, now))
        .await
        .expect("redeem");
    let later = now + TimeDelta::minutes(5);
    store
        .rotate_refresh_token(&hash(5, 30), later, &tokens(&g, 31, later))
        .await
        .expect("rotate");
    let (old, _) = store
        .find_refresh_token(&hash(5, 30))
        .await
        .expect("find")
        .expect("used token kept");
    assert_eq!(old.used_at, Some(later));
    let (new, _) = store
        .find_refresh_token(&hash(5, 31))
        .await
        .expect("find")
        .expect("new token stored");
    assert_eq!(new, tokens(&g, 31, later).refresh.expect("refresh"));
    let reuse = store
        .rotate_refresh_token(&hash(5, 30), later, &tokens(&g, 32, later))
        .await;
    assert!(
        matches!(reuse, Err(RotateFailure::Rejected(RotateError::Reused { grant_id })) if grant_id == g.id),
        "{reuse:?}"
    );
    let newest = store
        .rotate_refresh_token(&hash(5, 31), later, &tokens(&g, 33, later))
        .await;
    assert!(
        matches!(newest, Err(RotateFailure::Rejected(RotateError::Revoked))),
        "{newest:?}"
    );
    assert!(
        store
            .find_refresh_token(&hash(5, 33))
            .await
            .expect("find")
            .is_none()
    );
    let unknown = store
        .rotate_refresh_token(&hash(5, 888_888), later, &tokens(&g, 34, later))
        .await;
    assert!(
        matches!(unknown, Err(RotateFailure::Rejected(RotateError::NotFound))),
        "{unknown:?}"
    );
}

/// 64 concurrent rotations of one refresh token: exactly one wins.
pub async fn concurrent_refreshes_of_one_token_have_exactly_one_winner(store: Arc<impl Store>) {
    let now = t0();
    let (g, code) = grant_with_code(40, now);
    store.insert_grant(&g, &code).await.expect("insert");
    store
        .redeem_code(&code.hash, now, &tokens(&g, 40, now))
        .await
        .expect("redeem");
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let (store, g) = (store.clone(), g.clone());
        tasks.push(tokio::spawn(async move {
            store
                .rotate_refresh_token(&hash(5, 40), now, &tokens(&g, 2000 + i, now))
                .await
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("join") {
            Ok(_) => winners.push(i),
            Err(RotateFailure::Rejected(RotateError::Reused { .. } | RotateError::Revoked)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    let mut stored = 0;
    for i in 0..64u32 {
        if store
            .find_refresh_token(&hash(5, 2000 + i))
            .await
            .expect("find")
            .is_some()
        {
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "only the winner's token was stored");
}

/// Codes and refresh tokens at or past their expiry are refused (and revoke nothing).
pub async fn expired_codes_and_refresh_tokens_are_refused(store: Arc<impl Store>) {
    let now = t0();
    let (g, code) = grant_with_code(50, now);
    store.insert_grant(&g, &code).await.expect("insert");
    let late = code.expires_at;
    let r = store
        .redeem_code(&code.hash, late, &tokens(&g, 50, late))
        .await;
    assert!(
        matches!(r, Err(RedeemFailure::Rejected(RedeemError::Expired))),
        "{r:?}"
    );
    let just_in_time = code.expires_at - TimeDelta::seconds(1);
    store
        .redeem_code(&code.hash, just_in_time, &tokens(&g, 51, just_in_time))
        .await
        .expect("redeem just in time");
    let refresh_expiry = tokens(&g, 51, just_in_time)
        .refresh
        .expect("refresh")
        .expires_at;
    let r = store
        .rotate_refresh_token(
            &hash(5, 51),
            refresh_expiry,
            &tokens(&g, 52, refresh_expiry),
        )
        .await;
    assert!(
        matches!(r, Err(RotateFailure::Rejected(RotateError::Expired))),
        "{r:?}"
    );
    assert!(
        !store
            .find_grant(g.id)
            .await
            .expect("find")
            .expect("exists")
            .is_revoked()
    );
}

/// Revoking a grant is idempotent, keeps the first time, and is seen through every token.
pub async fn revocation_is_idempotent_and_covers_every_token(store: Arc<impl Store>) {
    let now = t0();
    let (g, code) = grant_with_code(60, now);
    store.insert_grant(&g, &code).await.expect("insert");
    store
        .redeem_code(&code.hash, now, &tokens(&g, 60, now))
        .await
        .expect("redeem");
    assert!(
        store
            .revoke_access_token(&hash(4, 60), now)
            .await
            .expect("revoke"),
        "a live token was revoked"
    );
    assert!(
        !store
            .revoke_access_token(&hash(4, 60), now)
            .await
            .expect("revoke"),
        "already revoked"
    );
    assert!(
        !store
            .revoke_access_token(&hash(4, 777_777), now)
            .await
            .expect("revoke"),
        "unknown"
    );
    let (a, _) = store
        .find_access_token(&hash(4, 60))
        .await
        .expect("find")
        .expect("kept");
    assert_eq!(a.revoked_at, Some(now));
    store
        .revoke_grant(g.id, now, RevokeReason::Revoked)
        .await
        .expect("revoke");
    store
        .revoke_grant(g.id, now + TimeDelta::hours(1), RevokeReason::Revoked)
        .await
        .expect("again");
    store
        .revoke_grant(
            finx_domain::ids::GrantId::from_random(unique16(99, 60)),
            now,
            RevokeReason::Revoked,
        )
        .await
        .expect("unknown is fine");
    assert_eq!(
        store
            .find_grant(g.id)
            .await
            .expect("find")
            .expect("exists")
            .revoked_at,
        Some(now)
    );
    let r = store
        .rotate_refresh_token(&hash(5, 60), now, &tokens(&g, 61, now))
        .await;
    assert!(
        matches!(r, Err(RotateFailure::Rejected(RotateError::Revoked))),
        "{r:?}"
    );
}

/// Purge drops what expired and keeps used refresh tokens until their own expiry.
pub async fn purge_keeps_used_refresh_tokens_until_they_expire(store: Arc<impl Store>) {
    // Far in the future of the other checks, so their records are not touched by surprise.
    let now = t0() + TimeDelta::days(3650);
    let (g, code) = grant_with_code(70, now);
    store.insert_grant(&g, &code).await.expect("insert");
    store
        .redeem_code(&code.hash, now, &tokens(&g, 70, now))
        .await
        .expect("redeem");
    store
        .rotate_refresh_token(&hash(5, 70), now, &tokens(&g, 71, now))
        .await
        .expect("rotate");
    let report = store
        .purge(now + TimeDelta::days(1), now)
        .await
        .expect("purge");
    assert!(report.access_tokens >= 2, "{report:?}");
    assert!(
        store
            .find_access_token(&hash(4, 70))
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        store
            .find_refresh_token(&hash(5, 70))
            .await
            .expect("find")
            .is_some(),
        "used token kept for reuse detection"
    );
    let reuse = store
        .rotate_refresh_token(&hash(5, 70), now + TimeDelta::days(1), &tokens(&g, 72, now))
        .await;
    assert!(
        matches!(
            reuse,
            Err(RotateFailure::Rejected(RotateError::Reused { .. }))
        ),
        "{reuse:?}"
    );
    let report = store
        .purge(now + TimeDelta::days(91), now)
        .await
        .expect("purge");
    assert!(report.refresh_tokens >= 2, "{report:?}");
    assert!(
        store
            .find_refresh_token(&hash(5, 70))
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        store
            .find_refresh_token(&hash(5, 71))
            .await
            .expect("find")
            .is_none()
    );
}

/// Accounts keep every field exactly, and `find_accounts` keeps the order asked for.
pub async fn accounts_round_trip_every_field(store: Arc<impl Store>) {
    let access = AccessId::derive(&["conformance-accounts"]);
    let a = account(&access, "giro", t0());
    let mut b = account(&access, "savings", t0());
    b.balance = None;
    b.details.iban = None;
    b.details.card_last4 = None;
    b.status.succeeded_at = Some(t0());
    b.status.message = None;
    store.upsert_account(&a).await.expect("upsert");
    store.upsert_account(&b).await.expect("upsert");
    let found = store
        .find_accounts(&[
            b.id.clone(),
            a.id.clone(),
            account(&access, "none", t0()).id,
        ])
        .await
        .expect("find");
    assert_eq!(found, vec![b.clone(), a.clone()]);
    let mut changed = a.clone();
    changed.details.name = "Neuer Name".into();
    store.upsert_account(&changed).await.expect("upsert again");
    assert_eq!(
        store
            .find_accounts(std::slice::from_ref(&a.id))
            .await
            .expect("find"),
        vec![changed]
    );
}

/// Transactions keep every field exactly: `-0.01`, `12345678901234.99`, unicode.
pub async fn transactions_round_trip_every_field(store: Arc<impl Store>) {
    let account_id = account(&AccessId::derive(&["conformance-tx"]), "giro", t0()).id;
    let items: Vec<TransactionDetails> = (0..8).map(|n| transaction(n, n % 3 != 0, t0())).collect();
    let report = store
        .sync_transactions(&account_id, &items, t0())
        .await
        .expect("sync");
    assert_eq!(report.inserted, 8);
    for d in &items {
        let id = Transaction::id_for(&account_id, &d.external_id);
        let t = store
            .find_transaction(&id)
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(
            t,
            Transaction {
                id,
                account_id: account_id.clone(),
                details: d.clone(),
                created_at: t0(),
                modified_at: t0()
            }
        );
    }
    let amounts: Vec<Decimal> = items.iter().map(|d| d.amount.amount()).collect();
    assert!(
        amounts.contains(&Decimal::new(-1, 2))
            && amounts.contains(&Decimal::new(1_234_567_890_123_499, 2))
    );
}

/// `delete_access` removes a connection's accounts and their transactions, nothing else.
pub async fn deleting_a_connection_deletes_its_accounts_and_transactions(store: Arc<impl Store>) {
    let gone = AccessId::derive(&["conformance-delete"]);
    let kept = AccessId::derive(&["conformance-keep"]);
    let (g1, g2, k) = (
        account(&gone, "giro", t0()),
        account(&gone, "card", t0()),
        account(&kept, "giro", t0()),
    );
    for a in [&g1, &g2, &k] {
        store.upsert_account(a).await.expect("upsert");
        store
            .sync_transactions(
                &a.id,
                &[transaction(1, true, t0()), transaction(2, false, t0())],
                t0(),
            )
            .await
            .expect("sync");
    }
    assert_eq!(store.delete_access(&gone).await.expect("delete"), 2);
    assert!(
        store
            .find_accounts(&[g1.id.clone(), g2.id.clone()])
            .await
            .expect("find")
            .is_empty()
    );
    let t = Transaction::id_for(&g1.id, &transaction(1, true, t0()).external_id);
    assert!(store.find_transaction(&t).await.expect("find").is_none());
    assert_eq!(
        store
            .find_accounts(std::slice::from_ref(&k.id))
            .await
            .expect("find")
            .len(),
        1
    );
    let kt = Transaction::id_for(&k.id, &transaction(1, true, t0()).external_id);
    assert!(store.find_transaction(&kt).await.expect("find").is_some());
    assert_eq!(store.delete_access(&gone).await.expect("again"), 0);
}

/// A resync updates in place (keeping `created_at`), and drops pending items the bank no
/// longer reports.
pub async fn sync_updates_in_place_and_drops_vanished_pending_transactions(store: Arc<impl Store>) {
    let account_id = account(&AccessId::derive(&["conformance-sync"]), "giro", t0()).id;
    let pending = transaction(1, false, t0());
    let booked = transaction(2, true, t0());
    store
        .sync_transactions(&account_id, &[pending.clone(), booked.clone()], t0())
        .await
        .expect("sync");
    let later = t0() + TimeDelta::days(2);
    let mut posted = pending.clone();
    posted.external_id = "b-1".into();
    posted.booked = true;
    posted.amount =
        finx_domain::money::Money::new(Decimal::new(-4_712, 2), posted.amount.currency());
    let mut changed = booked.clone();
    changed.purpose = Some("korrigiert".into());
    let report = store
        .sync_transactions(&account_id, &[posted.clone(), changed.clone()], later)
        .await
        .expect("resync");
    assert_eq!(
        (report.inserted, report.updated, report.removed),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(
        store
            .find_transaction(&Transaction::id_for(&account_id, &pending.external_id))
            .await
            .expect("find")
            .is_none()
    );
    let t = store
        .find_transaction(&Transaction::id_for(&account_id, &booked.external_id))
        .await
        .expect("find")
        .expect("kept");
    assert_eq!(
        (t.created_at, t.modified_at, t.details),
        (t0(), later, changed.clone())
    );
    let same = store
        .sync_transactions(&account_id, &[posted, changed], later + TimeDelta::days(1))
        .await
        .expect("again");
    assert_eq!(
        (same.inserted, same.updated, same.removed),
        (0, 0, 0),
        "an unchanged resync changes nothing"
    );
    // A booked transaction the bank stops reporting (outside the window) stays.
    store
        .sync_transactions(&account_id, &[], later)
        .await
        .expect("empty sync");
    assert!(store.find_transaction(&t.id).await.expect("find").is_some());
}

/// `query_transactions` returns exactly what [`ResolvedQuery::apply`] returns, for many
/// queries over one data set.
pub async fn queries_match_the_reference_semantics(store: Arc<impl Store>) {
    let access = AccessId::derive(&["conformance-query"]);
    let a1 = account(&access, "one", t0()).id;
    let a2 = account(&access, "two", t0()).id;
    let other = account(&access, "three", t0()).id;
    let mk = |range: std::ops::Range<u32>| {
        range
            .map(|n| transaction(n, n % 5 != 0, t0()))
            .collect::<Vec<_>>()
    };
    store
        .sync_transactions(&a1, &mk(0..60), t0())
        .await
        .expect("sync");
    store
        .sync_transactions(&a2, &mk(100..140), t0() + TimeDelta::days(1))
        .await
        .expect("sync");
    store
        .sync_transactions(&other, &mk(200..210), t0())
        .await
        .expect("sync");
    let mut all = Vec::new();
    for (acc, range) in [(&a1, 0..60), (&a2, 100..140), (&other, 200..210)] {
        for n in range {
            let d = transaction(n, n % 5 != 0, t0());
            all.push(
                store
                    .find_transaction(&Transaction::id_for(acc, &d.external_id))
                    .await
                    .expect("find")
                    .expect("stored"),
            );
        }
    }
    let pivot = all[17].clone();
    let day = t0().date_naive();
    let base = ResolvedQuery {
        accounts: vec![a1.clone(), a2.clone()],
        count: 1000,
        offset: 0,
        sort: SortOrder::Desc,
        since: None,
        until: None,
        since_type: SinceType::Booked,
        include_pending: false,
        filter: None,
    };
    let queries = vec![
        base.clone(),
        ResolvedQuery {
            sort: SortOrder::Asc,
            include_pending: true,
            ..base.clone()
        },
        ResolvedQuery {
            count: 7,
            offset: 5,
            ..base.clone()
        },
        ResolvedQuery {
            count: 7,
            offset: 95,
            ..base.clone()
        },
        ResolvedQuery {
            accounts: vec![a2.clone()],
            ..base.clone()
        },
        ResolvedQuery {
            since: Some(ResolvedBound::Date(day - TimeDelta::days(10))),
            until: Some(ResolvedBound::Date(day - TimeDelta::days(3))),
            ..base.clone()
        },
        ResolvedQuery {
            since: Some(ResolvedBound::After(
                pivot.details.booked_on,
                pivot.id.clone(),
            )),
            count: 9,
            ..base.clone()
        },
        ResolvedQuery {
            until: Some(ResolvedBound::After(
                pivot.details.booked_on,
                pivot.id.clone(),
            )),
            sort: SortOrder::Asc,
            include_pending: true,
            ..base.clone()
        },
        ResolvedQuery {
            since_type: SinceType::Created,
            since: Some(ResolvedBound::Date(day + TimeDelta::days(1))),
            ..base.clone()
        },
        ResolvedQuery {
            since_type: SinceType::Modified,
            until: Some(ResolvedBound::Date(day)),
            include_pending: true,
            ..base.clone()
        },
        ResolvedQuery {
            filter: Some(TxFilter::Amount(Decimal::new(-1, 2))),
            ..base.clone()
        },
        ResolvedQuery {
            filter: Some(TxFilter::Purpose("brötchen 🥐 10".into())),
            include_pending: true,
            ..base.clone()
        },
        ResolvedQuery {
            filter: Some(TxFilter::Person("bäckerei größe №12".into())),
            ..base.clone()
        },
        ResolvedQuery {
            accounts: vec![],
            ..base.clone()
        },
        ResolvedQuery {
            accounts: vec![a2.clone(), a1.clone(), a2.clone()],
            count: 50,
            ..base.clone()
        },
    ];
    for q in queries {
        let got = store.query_transactions(&q).await.expect("query");
        let want = q.apply(&all);
        assert_eq!(got, want, "query {q:?}");
    }
}

/// Puts an account with one booked and one pending transaction under `access`.
async fn some_data(store: &impl Store, access: &AccessId, now: finx_domain::Timestamp) -> Account {
    let a = account(access, "giro", now);
    store.upsert_account(&a).await.expect("upsert");
    store
        .sync_transactions(
            &a.id,
            &[transaction(1, true, now), transaction(2, false, now)],
            now,
        )
        .await
        .expect("sync");
    a
}

/// Whether the account and its booked transaction are still there.
async fn has_data(store: &impl Store, a: &Account) -> bool {
    let accounts = store
        .find_accounts(std::slice::from_ref(&a.id))
        .await
        .expect("find");
    let t = Transaction::id_for(&a.id, &transaction(1, true, t0()).external_id);
    let tx = store.find_transaction(&t).await.expect("find");
    assert_eq!(
        accounts.is_empty(),
        tx.is_none(),
        "an account and its transactions go together"
    );
    !accounts.is_empty()
}

/// Revoking a grant deletes its access's bank data in the same step, unless another live
/// grant holds the same access.
pub async fn revocation_deletes_the_bank_data_unless_another_live_grant_holds_it(
    store: Arc<impl Store>,
) {
    let now = t0();
    let (g1, c1) = grant_with_code(80, now);
    let (mut g2, c2) = grant_with_code(81, now);
    g2.access_id = g1.access_id.clone();
    store.insert_grant(&g1, &c1).await.expect("insert");
    store.insert_grant(&g2, &c2).await.expect("insert");
    let shared = some_data(&*store, &g1.access_id, now).await;
    let other = some_data(&*store, &AccessId::derive(&["conformance-other"]), now).await;
    store
        .revoke_grant(g1.id, now, RevokeReason::Revoked)
        .await
        .expect("revoke");
    assert!(
        has_data(&*store, &shared).await,
        "g2 still holds the access"
    );
    store
        .revoke_grant(g2.id, now, RevokeReason::Revoked)
        .await
        .expect("revoke");
    assert!(!has_data(&*store, &shared).await, "no live grant holds it");
    assert!(
        has_data(&*store, &other).await,
        "other accesses are untouched"
    );
    // A grant past its absolute end holds nothing either.
    let (g3, c3) = grant_with_code(82, now);
    let (mut g4, c4) = grant_with_code(83, now);
    g4.access_id = g3.access_id.clone();
    g4.expires_at = now + TimeDelta::hours(1);
    store.insert_grant(&g3, &c3).await.expect("insert");
    store.insert_grant(&g4, &c4).await.expect("insert");
    let data = some_data(&*store, &g3.access_id, now).await;
    store
        .revoke_grant(g3.id, now + TimeDelta::hours(2), RevokeReason::Revoked)
        .await
        .expect("revoke");
    assert!(
        !has_data(&*store, &data).await,
        "g4 ended, so it holds nothing"
    );
}

/// Grant `n` with bank data under its access, its code redeemed for tokens `n`.
async fn redeemed_with_data(
    store: &impl Store,
    n: u32,
    now: finx_domain::Timestamp,
) -> (finx_domain::token::Grant, CodeRecord, Account) {
    let (g, code) = grant_with_code(n, now);
    store.insert_grant(&g, &code).await.expect("insert");
    let data = some_data(store, &g.access_id, now).await;
    store
        .redeem_code(&code.hash, now, &tokens(&g, n, now))
        .await
        .expect("redeem");
    (g, code, data)
}

/// A replayed code or a reused refresh token revokes the grant and deletes its bank data.
pub async fn reuse_revokes_the_grant_and_deletes_its_bank_data(store: Arc<impl Store>) {
    let now = t0();
    let (g, code, data) = redeemed_with_data(&*store, 84, now).await;
    assert!(has_data(&*store, &data).await);
    let replay = store
        .redeem_code(&code.hash, now, &tokens(&g, 85, now))
        .await;
    assert!(
        matches!(
            replay,
            Err(RedeemFailure::Rejected(RedeemError::AlreadyUsed { .. }))
        ),
        "{replay:?}"
    );
    assert!(
        !has_data(&*store, &data).await,
        "deleted with the revocation"
    );

    let (g, _, data) = redeemed_with_data(&*store, 86, now).await;
    store
        .rotate_refresh_token(&hash(5, 86), now, &tokens(&g, 87, now))
        .await
        .expect("rotate");
    assert!(has_data(&*store, &data).await);
    let reuse = store
        .rotate_refresh_token(&hash(5, 86), now, &tokens(&g, 88, now))
        .await;
    assert!(
        matches!(
            reuse,
            Err(RotateFailure::Rejected(RotateError::Reused { .. }))
        ),
        "{reuse:?}"
    );
    assert!(
        !has_data(&*store, &data).await,
        "deleted with the revocation"
    );
}

/// A grant ends at its absolute end however often it was refreshed; the purge then deletes
/// it with its credentials, and deletes bank data no live grant holds once it is older than
/// the cut-off.
pub async fn purge_ends_grants_at_their_absolute_end_and_deletes_orphaned_data(
    store: Arc<impl Store>,
) {
    let now = t0();
    let (g, code) = grant_with_code(90, now);
    store.insert_grant(&g, &code).await.expect("insert");
    let held = some_data(&*store, &g.access_id, now).await;
    let orphan = some_data(&*store, &AccessId::derive(&["conformance-orphan"]), now).await;
    let day = TimeDelta::days(1);
    let young = some_data(
        &*store,
        &AccessId::derive(&["conformance-young"]),
        now + day * 2,
    )
    .await;
    store
        .redeem_code(&code.hash, now, &tokens(&g, 90, now))
        .await
        .expect("redeem");
    let report = store
        .purge(now + day, now + day - TimeDelta::hours(1))
        .await
        .expect("purge");
    assert_eq!(report.accounts, 1, "{report:?}");
    assert!(has_data(&*store, &held).await, "a live grant holds it");
    assert!(!has_data(&*store, &orphan).await, "no grant holds it");
    assert!(has_data(&*store, &young).await, "newer than the cut-off");
    // Refreshed at day 80 and day 160: still live at day 179, gone at day 180.
    store
        .rotate_refresh_token(
            &hash(5, 90),
            now + day * 80,
            &tokens(&g, 91, now + day * 80),
        )
        .await
        .expect("rotate");
    store
        .rotate_refresh_token(
            &hash(5, 91),
            now + day * 160,
            &tokens(&g, 92, now + day * 160),
        )
        .await
        .expect("rotate");
    let end = g.expires_at;
    let late = store
        .rotate_refresh_token(&hash(5, 92), end, &tokens(&g, 93, end))
        .await;
    assert!(
        matches!(late, Err(RotateFailure::Rejected(RotateError::Expired))),
        "{late:?}"
    );
    let report = store
        .purge(end, end - TimeDelta::hours(1))
        .await
        .expect("purge");
    assert!(report.grants >= 1, "{report:?}");
    assert!(store.find_grant(g.id).await.expect("find").is_none());
    assert!(
        store
            .find_refresh_token(&hash(5, 92))
            .await
            .expect("find")
            .is_none(),
        "the grant's credentials went with it"
    );
    assert!(!has_data(&*store, &held).await, "its grant ended");
    assert!(
        !has_data(&*store, &young).await,
        "older than the cut-off now"
    );
}

fn registry_bank(name: &str, bic: &str, code: &str) -> finx_domain::registry::RegisteredBank {
    finx_domain::registry::RegisteredBank::from_draft(finx_domain::registry::BankDraft {
        name: name.into(),
        bic: Some(bic.into()),
        bank_code: Some(code.into()),
        url: format!("https://xs2a.{code}.example/api"),
        sca_approaches: vec!["DECOUPLED".into(), "REDIRECT".into()],
        consent_model: Some("available-accounts".into()),
        quirks: vec!["signing-required".into()],
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `upsert_banks` inserts and replaces by id; `search_banks` finds by name (any case, with
/// LIKE's wildcards taken literally), BIC or bank code, ordered by name; `bank_by_code` and
/// `find_bank` read one back with every field.
pub async fn the_bank_registry_upserts_and_searches_by_name_bic_and_code(store: Arc<impl Store>) {
    let a = registry_bank("Zzconf Sparkasse Nord", "ZZCONFA1XXX", "99900001");
    let b = registry_bank("Zzconf Bank 100% Direkt", "ZZCONFB1", "99900002");
    let c = registry_bank("zzconf_volksbank", "ZZCONFC1XXX", "99900003");
    assert_eq!(
        store
            .upsert_banks(&[a.clone(), b.clone(), c.clone()])
            .await
            .ok(),
        Some(3)
    );
    let before = store.count_banks().await.unwrap_or_default();
    let mut renamed = a.clone();
    renamed.name = "Zzconf Sparkasse Nordost".into();
    assert_eq!(store.upsert_banks(&[renamed.clone()]).await.ok(), Some(1));
    assert_eq!(
        store.count_banks().await.ok(),
        Some(before),
        "replaced, not added"
    );
    assert_eq!(
        store.find_bank(&a.id).await.ok().flatten(),
        Some(renamed.clone())
    );

    let names = |v: Vec<finx_domain::registry::RegisteredBank>| -> Vec<String> {
        v.into_iter().map(|b| b.name).collect()
    };
    let hits = store.search_banks("ZZCONF", 10).await.unwrap_or_default();
    assert_eq!(
        names(hits),
        [
            "Zzconf Bank 100% Direkt",
            "Zzconf Sparkasse Nordost",
            "zzconf_volksbank"
        ],
        "any case, by name"
    );
    let hits = store.search_banks("100%", 10).await.unwrap_or_default();
    assert_eq!(names(hits), ["Zzconf Bank 100% Direkt"]);
    let hits = store.search_banks("conf_", 10).await.unwrap_or_default();
    assert_eq!(names(hits), ["zzconf_volksbank"], "_ is no wildcard");
    let hits = store
        .search_banks("zzconfc1xxx", 10)
        .await
        .unwrap_or_default();
    assert_eq!(names(hits), ["zzconf_volksbank"], "by BIC");
    let hits = store
        .search_banks(" 99900002 ", 10)
        .await
        .unwrap_or_default();
    assert_eq!(names(hits), ["Zzconf Bank 100% Direkt"], "by bank code");
    assert_eq!(
        store
            .search_banks("zzconf", 2)
            .await
            .unwrap_or_default()
            .len(),
        2
    );
    assert!(store.search_banks("", 1).await.unwrap_or_default().len() == 1);
    assert_eq!(
        store.bank_by_code("DE", "99900003").await.ok().flatten(),
        Some(c)
    );
    assert_eq!(
        store.bank_by_code("AT", "99900003").await.ok().flatten(),
        None
    );
    // The catalog pages the same search, by name, within a country when given.
    let all = names(
        store
            .catalog_banks("zzconf", Some("de".into()), 0, 10)
            .await
            .expect("catalog"),
    );
    assert_eq!(all.len(), 3, "{all:?}");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "by name");
    let second = names(
        store
            .catalog_banks("zzconf", Some("DE".into()), 1, 1)
            .await
            .expect("catalog"),
    );
    assert_eq!(second, all[1..2]);
    assert!(
        store
            .catalog_banks("zzconf", Some("AT".into()), 0, 10)
            .await
            .expect("catalog")
            .is_empty()
    );
    assert_eq!(
        names(
            store
                .catalog_banks("ZZCONFB1", None, 0, 10)
                .await
                .expect("catalog")
        ),
        ["Zzconf Bank 100% Direkt"]
    );
}

/// An access of `n`'s grant, valid for 90 days, with one giro account.
fn an_access(n: u32, now: finx_domain::Timestamp) -> finx_domain::access::Access {
    use finx_domain::access::{Access, UserId};
    let (g, _) = grant_with_code(n, now);
    Access {
        id: g.access_id.clone(),
        client_id: g.client_id,
        user_id: UserId::parse(&format!("user-ü-{n}")).unwrap_or_else(|_| unreachable!()),
        institution: finx_domain::ids::InstitutionId::parse("sandbox-90094815")
            .unwrap_or_else(|_| unreachable!()),
        session: finx_domain::flow::BankSession::new(format!("session-secret-{n}")),
        consent: finx_domain::sca::Consent {
            id: format!("consent-{n}"),
            status: finx_domain::sca::ConsentStatus::Valid,
            valid_until: now.date_naive() + TimeDelta::days(89),
            frequency_per_day: 4,
            recurring: true,
            accounts: vec!["giro".into()],
        },
        accounts: vec![account(&g.access_id, "giro", now).details],
        sync_period: finx_domain::values::SyncPeriod::default(),
        ledger: finx_domain::schedule::SyncLedger::new(now.date_naive()),
        synced_at: Some(now),
        last_booked: Some(now.date_naive()),
        last_error: None,
        created_at: now,
        version: 0,
    }
}

fn a_job(
    access: &AccessId,
    n: u32,
    kind: finx_domain::access::JobKind,
    run_at: finx_domain::Timestamp,
    now: finx_domain::Timestamp,
) -> finx_domain::access::SyncJob {
    finx_domain::access::SyncJob::queued(
        finx_domain::ids::SyncId::from_random(unique16(11, n)),
        access.clone(),
        kind,
        run_at,
        now,
    )
}

/// Accesses round-trip (the session too), list per customer and user, update by
/// compare-and-swap, and an update can queue a job in the same step.
pub async fn accesses_round_trip_and_update_by_compare_and_swap(store: Arc<impl Store>) {
    use finx_domain::access::{JobKind, SyncFailure};
    let now = t0();
    let a = an_access(300, now);
    let first = a_job(
        &a.id,
        300,
        JobKind::Scheduled,
        now + TimeDelta::hours(1),
        now,
    );
    store.insert_access(&a, &first).await.expect("insert");
    assert!(matches!(
        store
            .insert_access(&a, &a_job(&a.id, 301, JobKind::Scheduled, now, now))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_access(&a.id).await.expect("find"),
        Some(a.clone())
    );
    assert_eq!(
        store
            .list_accesses(&a.client_id, &a.user_id)
            .await
            .expect("list"),
        vec![a.clone()]
    );
    let other = finx_domain::access::UserId::parse("someone").unwrap_or_else(|_| unreachable!());
    assert!(
        store
            .list_accesses(&a.client_id, &other)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store.find_job(first.id).await.expect("job"),
        Some(first.clone())
    );
    assert_eq!(
        store.pending_job(&a.id).await.expect("pending"),
        Some(first.clone())
    );

    let mut b = a.clone();
    b.version = 1;
    b.last_error = Some(SyncFailure::RateLimited);
    b.ledger.used = 2;
    b.ledger.not_before = Some(now + TimeDelta::minutes(15));
    let manual = a_job(&a.id, 302, JobKind::Manual, now, now);
    store
        .update_access(&b, 0, Some(manual.clone()))
        .await
        .expect("swap");
    assert!(matches!(
        store.update_access(&b, 0, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.find_access(&a.id).await.expect("find"), Some(b));
    assert_eq!(
        store
            .pending_job(&a.id)
            .await
            .expect("pending")
            .map(|j| j.id),
        Some(manual.id),
        "the earliest job still to run"
    );
}

/// Of concurrent claims each due job goes to one caller; a job whose lease ended is taken
/// over with its attempt raised, and then only the new claim may finish it. Finishing
/// writes the data, the access, the job's end and the next job in one step.
pub async fn jobs_are_claimed_once_and_finished_only_by_the_latest_claim(store: Arc<impl Store>) {
    use finx_domain::access::{Claim, JobKind, JobStatus};
    use finx_ports::{AccountSync, JobOutcome};
    let now = t0();
    let mut ids = Vec::new();
    for n in 0..20u32 {
        let a = an_access(310 + n, now);
        let j = a_job(&a.id, 310 + n, JobKind::Scheduled, now, now);
        ids.push(j.id);
        store.insert_access(&a, &j).await.expect("insert");
    }
    let lease = TimeDelta::seconds(30);
    let claims = futures::future::join_all((0..4).map(|_| {
        let s = store.clone();
        async move { s.claim_jobs(now, lease, 8).await.expect("claim") }
    }))
    .await;
    let claimed: Vec<_> = claims.into_iter().flatten().collect();
    let distinct: std::collections::HashSet<_> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(claimed.len(), 20, "every due job, once");
    assert_eq!(distinct.len(), 20);
    assert!(
        claimed
            .iter()
            .all(|j| j.status == JobStatus::Running && j.attempt == 1)
    );
    assert!(
        store
            .claim_jobs(now, lease, 8)
            .await
            .expect("claim")
            .is_empty(),
        "all held"
    );
    // A second due job of an access whose sync runs waits until that one ends.
    let busy = store
        .find_access(&claimed[2].access_id)
        .await
        .expect("find")
        .expect("access");
    let mut bumped = busy.clone();
    bumped.version += 1;
    let second = a_job(&busy.id, 399, JobKind::Manual, now, now);
    store
        .update_access(&bumped, busy.version, Some(second.clone()))
        .await
        .expect("queue a second");
    assert!(
        store
            .claim_jobs(now, lease, 8)
            .await
            .expect("claim")
            .is_empty(),
        "not while the access's sync runs"
    );

    // The runner of the first dies; past its lease another takes it over.
    let job = claimed[0].clone();
    let later = now + lease + TimeDelta::seconds(1);
    let taken = store
        .claim_jobs(later, lease, 100)
        .await
        .expect("take over");
    let again = taken.iter().find(|j| j.id == job.id).expect("taken over");
    assert_eq!(again.attempt, 2);
    let renewed = later + lease;
    assert!(
        !store
            .extend_lease(
                Claim {
                    job: job.id,
                    attempt: 1
                },
                renewed
            )
            .await
            .expect("extend"),
        "the dead runner's heartbeat renews nothing"
    );
    assert!(
        store
            .extend_lease(
                Claim {
                    job: job.id,
                    attempt: 2
                },
                renewed
            )
            .await
            .expect("extend")
    );
    assert_eq!(
        store
            .find_job(job.id)
            .await
            .expect("job")
            .and_then(|j| j.lease_until),
        Some(renewed)
    );
    let access = store
        .find_access(&job.access_id)
        .await
        .expect("find")
        .expect("access");
    let mut next_access = access.clone();
    next_access.version += 1;
    next_access.ledger.used = 1;
    let acct = account(&access.id, "giro", later);
    let outcome = JobOutcome {
        status: JobStatus::Succeeded,
        finished_at: later,
        error: None,
        accounts: vec![AccountSync {
            account: acct.clone(),
            transactions: vec![transaction(1, true, later), transaction(2, false, later)],
            window_from: later.date_naive() - TimeDelta::days(60),
        }],
        events: Vec::new(),
    };
    let next = a_job(
        &access.id,
        400,
        JobKind::Scheduled,
        later + TimeDelta::hours(6),
        later,
    );
    let stale = Claim {
        job: job.id,
        attempt: 1,
    };
    assert!(matches!(
        store
            .finish_job(
                stale,
                &outcome,
                &next_access,
                access.version,
                Some(next.clone())
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .find_accounts(std::slice::from_ref(&acct.id))
            .await
            .expect("find")
            .is_empty(),
        "the dead runner wrote nothing"
    );
    let current = Claim {
        job: job.id,
        attempt: 2,
    };
    let report = store
        .finish_job(
            current,
            &outcome,
            &next_access,
            access.version,
            Some(next.clone()),
        )
        .await
        .expect("finish");
    assert_eq!(report.inserted, 2);
    let done = store.find_job(job.id).await.expect("job").expect("kept");
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.counts.map(|c| c.added), Some(2));
    assert_eq!(done.lease_until, None);
    assert_eq!(
        store.find_access(&access.id).await.expect("find"),
        Some(next_access.clone())
    );
    assert_eq!(
        store
            .find_accounts(std::slice::from_ref(&acct.id))
            .await
            .expect("find")
            .len(),
        1
    );
    assert_eq!(
        store
            .pending_job(&access.id)
            .await
            .expect("pending")
            .map(|j| j.id),
        Some(next.id)
    );
    assert!(
        matches!(
            store
                .finish_job(current, &outcome, &next_access, next_access.version, None)
                .await,
            Err(StoreError::Conflict(_))
        ),
        "a job ends once"
    );

    // Handing back: only the latest claim may, and the job is queued again for then.
    let held = taken
        .iter()
        .find(|j| j.id == claimed[1].id)
        .expect("taken over too")
        .clone();
    assert_eq!(held.attempt, 2);
    assert!(
        !store
            .requeue_job(
                Claim {
                    job: held.id,
                    attempt: 1
                },
                now
            )
            .await
            .expect("requeue"),
        "the dead runner's claim"
    );
    assert!(
        store
            .requeue_job(
                Claim {
                    job: held.id,
                    attempt: 2
                },
                now + TimeDelta::days(1)
            )
            .await
            .expect("requeue")
    );
    let back = store.find_job(held.id).await.expect("job").expect("kept");
    assert_eq!(
        (back.status, back.run_at, back.lease_until),
        (JobStatus::Queued, now + TimeDelta::days(1), None)
    );
}

/// Deleting an access revokes the grants that hold it and deletes its data and jobs; an
/// access no live grant holds is an orphan.
pub async fn deleting_an_access_revokes_its_grants_and_deletes_everything(store: Arc<impl Store>) {
    use finx_domain::access::JobKind;
    let now = t0();
    let (g, code) = grant_with_code(320, now);
    store.insert_grant(&g, &code).await.expect("grant");
    let a = an_access(320, now);
    let j = a_job(&a.id, 320, JobKind::Scheduled, now, now);
    store.insert_access(&a, &j).await.expect("insert");
    let orphan = an_access(321, now);
    store
        .insert_access(
            &orphan,
            &a_job(&orphan.id, 321, JobKind::Scheduled, now, now),
        )
        .await
        .expect("insert");
    let data = some_data(&*store, &a.id, now).await;
    assert!(store.access_held(&a.id, now).await.expect("held"));
    assert!(!store.access_held(&orphan.id, now).await.expect("held"));
    let later = now + TimeDelta::seconds(1);
    let orphans = store
        .orphaned_accesses(later, later, 10)
        .await
        .expect("orphans");
    assert_eq!(
        orphans.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        vec![orphan.id.clone()]
    );
    assert!(
        store
            .orphaned_accesses(later, now, 10)
            .await
            .expect("orphans")
            .is_empty(),
        "created before the cut-off only"
    );

    assert!(
        store
            .delete_access_record(&a.id, later)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_access_record(&a.id, later)
            .await
            .expect("again")
    );
    assert_eq!(store.find_access(&a.id).await.expect("find"), None);
    assert_eq!(store.find_job(j.id).await.expect("job"), None);
    assert!(!has_data(&*store, &data).await);
    let grant = store.find_grant(g.id).await.expect("grant").expect("kept");
    assert!(grant.is_revoked(), "the grant holding it is revoked");
    assert!(!store.access_held(&a.id, later).await.expect("held"));
}

/// A pending card payment that books under a new bank id with a tip is one transaction,
/// reported as modified; one that disappears without booking is removed.
pub async fn a_pending_transaction_that_books_under_a_new_id_keeps_its_id(store: Arc<impl Store>) {
    let now = t0();
    let access = AccessId::derive(&["conformance-linking"]);
    let a = some_data(&*store, &access, now).await;
    let mut pending = transaction(7, false, now);
    pending.end_to_end_reference = None;
    pending.amount = Money::new(Decimal::new(-4_250, 2), Currency::EUR);
    let mut reversed = transaction(8, false, now);
    reversed.end_to_end_reference = None;
    reversed.counterparty.iban = None;
    reversed.counterparty.name = Some("Kiosk".into());
    store
        .sync_transactions(&a.id, &[pending.clone(), reversed.clone()], now)
        .await
        .expect("first sync");
    let id = Transaction::id_for(&a.id, &pending.external_id);
    let later = now + TimeDelta::days(1);
    let booked = TransactionDetails {
        external_id: "b-7-booked".into(),
        amount: Money::new(Decimal::new(-4_800, 2), Currency::EUR),
        booked: true,
        booked_on: pending.booked_on + TimeDelta::days(1),
        ..pending.clone()
    };
    let report = store
        .sync_transactions(&a.id, std::slice::from_ref(&booked), later)
        .await
        .expect("second sync");
    assert_eq!(
        (report.inserted, report.updated, report.removed),
        (0, 1, 1),
        "modified, not added; the reversed one removed"
    );
    let t = store
        .find_transaction(&id)
        .await
        .expect("find")
        .expect("the same id");
    assert_eq!(t.details, booked);
    assert_eq!((t.created_at, t.modified_at), (now, later));
    assert!(
        store
            .find_transaction(&Transaction::id_for(&a.id, "b-7-booked"))
            .await
            .expect("find")
            .is_none(),
        "never added twice"
    );
    // The next sync reports it under its new bank id again: nothing changes.
    let again = store
        .sync_transactions(&a.id, std::slice::from_ref(&booked), later)
        .await
        .expect("third sync");
    assert_eq!((again.inserted, again.updated, again.removed), (0, 0, 0));
}

/// Every change takes the next number of the access's sequence, every removal leaves an
/// entry (one per time), and a read tells the highest number.
pub async fn the_feed_numbers_every_change_and_every_removal(store: Arc<impl Store>) {
    use finx_ports::Changed;
    let now = t0();
    let access = AccessId::derive(&["conformance-feed"]);
    let a = some_data(&*store, &access, now).await;
    let accounts = std::slice::from_ref(&a.id);
    let start = store
        .changes(accounts, -1, 100, None)
        .await
        .expect("read")
        .high;
    let pending = transaction(3, false, now);
    let booked = transaction(4, true, now);
    // some_data's pending one goes in the first sync; then ours goes, comes back, goes.
    for step in [
        vec![pending.clone(), booked.clone()],
        vec![booked.clone()],
        vec![pending.clone(), booked.clone()],
        vec![booked.clone()],
    ] {
        store
            .sync_transactions(&a.id, &step, now)
            .await
            .expect("sync");
    }
    let read = store
        .changes(accounts, start, 100, None)
        .await
        .expect("read");
    let seqs: Vec<i64> = read.changes.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert_eq!(read.high, *seqs.last().expect("some"));
    assert_eq!(
        read.high - start,
        6,
        "two inserts, three removals, one re-insert"
    );
    let pending_id = Transaction::id_for(&a.id, &pending.external_id);
    let removals: Vec<&finx_ports::Change> = read
        .changes
        .iter()
        .filter(|c| matches!(&c.what, Changed::Removed(id) if *id == pending_id))
        .collect();
    assert_eq!(removals.len(), 2, "each removal of ours is kept");
    assert!(
        removals[1].created_seq > removals[0].seq,
        "the second incarnation was written after the first went"
    );
    // A limit cuts the page in number order.
    let first = store.changes(accounts, start, 1, None).await.expect("read");
    assert_eq!(first.changes.len(), 1);
    assert_eq!(first.changes[0].seq, seqs[0]);
    // Whether something first written in a range changed again after a number.
    let r = removals[0];
    let moved = store
        .changes(
            accounts,
            read.high,
            10,
            Some((r.created_seq - 1, r.created_seq, r.seq - 1)),
        )
        .await
        .expect("read");
    assert!(moved.moved, "removed after it was written");
    let still = store
        .changes(accounts, read.high, 10, Some((start, read.high, read.high)))
        .await
        .expect("read");
    assert!(!still.moved, "nothing changed after the last number");
    assert!(still.changes.is_empty());
}

fn an_endpoint(client: &str, n: u8, now: finx_domain::Timestamp) -> finx_domain::webhook::Endpoint {
    use finx_domain::webhook::{Endpoint, UrlPolicy, WebhookSecret, WebhookUrl};
    Endpoint {
        id: finx_domain::ids::EndpointId::from_random([n; 16]),
        client_id: ClientId::parse(client).unwrap_or_else(|_| unreachable!()),
        url: WebhookUrl::parse(
            &format!("https://hooks.example/{n}?ü=1"),
            UrlPolicy::default(),
        )
        .unwrap_or_else(|_| unreachable!()),
        secret: WebhookSecret::from_random([n; 32]),
        previous: None,
        created_at: now + TimeDelta::seconds(i64::from(n)),
        disabled_at: None,
        last_success_at: None,
    }
}

fn an_event(client: &str, n: u8, now: finx_domain::Timestamp) -> finx_domain::webhook::Event {
    use finx_domain::webhook::{Event, EventData};
    Event {
        id: finx_domain::ids::EventId::from_random([n; 16]),
        client_id: ClientId::parse(client).unwrap_or_else(|_| unreachable!()),
        at: now,
        data: EventData::FlowFailed {
            flow_id: FlowId::from_random([n; 16]),
            reason: "cancelled",
        },
    }
}

/// Endpoints round-trip (secrets too); an event fans out to the enabled endpoints of its
/// client only, once per id; a delivery is claimed by one runner per attempt and finished
/// only by the latest claim; giving up with `disable` disables the endpoint and fails its
/// other pending deliveries; deleting an endpoint deletes its deliveries and log; the purge
/// keeps what is pending.
pub async fn webhook_deliveries_fan_out_and_are_claimed_once_per_attempt(store: Arc<impl Store>) {
    use finx_domain::webhook::{Attempt, AttemptOutcome, DeliveryStatus, WebhookSecret};
    use finx_ports::WebhookStore;
    let now = t0();
    let mut a1 = an_endpoint("hook-client", 1, now);
    let a2 = an_endpoint("hook-client", 2, now);
    let other = an_endpoint("hook-other", 3, now);
    for e in [&a1, &a2, &other] {
        WebhookStore::insert_endpoint(store.as_ref(), e)
            .await
            .expect("insert");
    }
    assert!(matches!(
        WebhookStore::insert_endpoint(store.as_ref(), &a1).await,
        Err(StoreError::Conflict(_))
    ));
    let stored = store
        .rotate_endpoint_secret(
            a1.id,
            &WebhookSecret::from_random([9; 32]),
            now + TimeDelta::hours(24),
        )
        .await
        .expect("rotate")
        .expect("exists");
    a1.rotate(
        WebhookSecret::from_random([9; 32]),
        now,
        TimeDelta::hours(24),
    );
    assert_eq!(
        stored, a1,
        "the old secret is the previous one, the new one current"
    );
    assert_eq!(
        store.find_endpoint(a1.id).await.expect("find"),
        Some(a1.clone()),
        "round-trips, both secrets included"
    );
    let listed = store.list_endpoints(&a1.client_id).await.expect("list");
    assert_eq!(listed, vec![a1.clone(), a2.clone()]);

    // Fan-out: two endpoints, two deliveries; the same id again, none; a client without
    // endpoints keeps nothing.
    let e1 = an_event("hook-client", 1, now);
    assert_eq!(
        store
            .enqueue_events(std::slice::from_ref(&e1))
            .await
            .expect("enqueue"),
        2
    );
    assert_eq!(
        store
            .enqueue_events(std::slice::from_ref(&e1))
            .await
            .expect("again"),
        0
    );
    assert_eq!(
        store
            .enqueue_events(&[an_event("hook-nobody", 2, now)])
            .await
            .expect("nobody"),
        0
    );
    let lease = now + TimeDelta::minutes(1);
    let claimed = store.claim_deliveries(now, lease, 10).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|d| d.attempt == 1
        && d.status == DeliveryStatus::Pending
        && d.event.id == e1.id
        && d.event.event_type == "flow.failed"
        && d.event.body.contains("\"cancelled\"")));
    assert!(
        store
            .claim_deliveries(now, lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "held under their lease"
    );
    // One runner dies; past the lease another takes its delivery over.
    let d = claimed.iter().find(|d| d.endpoint.id == a1.id).expect("a1");
    let after = lease + TimeDelta::seconds(1);
    let again = store
        .claim_deliveries(after, after + TimeDelta::minutes(1), 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 2);
    let retaken = again.iter().find(|x| x.endpoint.id == a1.id).expect("a1");
    assert_eq!(retaken.attempt, 2);
    let attempt = |n: u32, status: Option<u16>| Attempt {
        event_id: e1.id,
        event_type: "flow.failed".into(),
        endpoint_id: a1.id,
        attempt: n,
        at: after,
        status,
        error: status.filter(|s| *s >= 300).map(|s| format!("HTTP {s}")),
        millis: 12,
    };
    assert!(
        !store
            .finish_delivery(
                d.claim(),
                &attempt(1, Some(500)),
                AttemptOutcome::Retry(after)
            )
            .await
            .expect("finish"),
        "the dead runner's attempt records nothing"
    );
    assert!(
        store
            .finish_delivery(
                retaken.claim(),
                &attempt(2, Some(204)),
                AttemptOutcome::Delivered
            )
            .await
            .expect("finish")
    );
    assert!(
        !store
            .finish_delivery(
                retaken.claim(),
                &attempt(2, Some(204)),
                AttemptOutcome::Delivered
            )
            .await
            .expect("finish"),
        "once"
    );
    let log = store.delivery_log(a1.id, 10).await.expect("log");
    assert_eq!(log, vec![attempt(2, Some(204))]);
    assert_eq!(
        store
            .find_endpoint(a1.id)
            .await
            .expect("find")
            .and_then(|e| e.last_success_at),
        Some(after)
    );

    // a2 fails for good with `disable`: it is disabled, its other pending delivery fails,
    // and it is neither claimed nor given new events.
    let e2 = an_event("hook-client", 4, after);
    assert_eq!(
        store
            .enqueue_events(std::slice::from_ref(&e2))
            .await
            .expect("enqueue"),
        2
    );
    let held_a2 = again.iter().find(|x| x.endpoint.id == a2.id).expect("a2");
    let give_up = Attempt {
        endpoint_id: a2.id,
        ..attempt(2, Some(500))
    };
    assert!(
        store
            .finish_delivery(
                held_a2.claim(),
                &give_up,
                AttemptOutcome::GiveUp { disable: true }
            )
            .await
            .expect("finish")
    );
    assert!(
        store
            .find_endpoint(a2.id)
            .await
            .expect("find")
            .and_then(|e| e.disabled_at)
            .is_some()
    );
    let later = after + TimeDelta::hours(1);
    let due = store
        .claim_deliveries(later, later + TimeDelta::minutes(1), 10)
        .await
        .expect("claim");
    assert_eq!(due.len(), 1, "only a1's delivery of e2");
    assert_eq!(due[0].endpoint.id, a1.id);
    // a1 accepted a delivery since e2 was made: giving up on e2 does not disable it, even
    // when the runner's copy of the endpoint (claimed before) says otherwise.
    let give_up_a1 = Attempt {
        event_id: e2.id,
        at: later,
        ..attempt(1, Some(500))
    };
    assert!(
        store
            .finish_delivery(
                due[0].claim(),
                &give_up_a1,
                AttemptOutcome::GiveUp { disable: true }
            )
            .await
            .expect("finish")
    );
    assert!(
        store
            .find_endpoint(a1.id)
            .await
            .expect("find")
            .and_then(|e| e.disabled_at)
            .is_none(),
        "a success after the event keeps it enabled"
    );
    assert!(
        store
            .enable_endpoint(a2.id)
            .await
            .expect("enable")
            .is_some_and(|e| e.disabled_at.is_none())
    );
    assert!(
        store
            .enable_endpoint(finx_domain::ids::EndpointId::from_random([77; 16]))
            .await
            .expect("enable")
            .is_none()
    );
    assert_eq!(
        store
            .enqueue_events(&[an_event("hook-client", 5, later)])
            .await
            .expect("enqueue"),
        2,
        "enabled again, a2 gets new events"
    );

    // Purge: the old log and the finished e1 go; pending deliveries stay.
    let purged = store
        .purge_webhooks(later + TimeDelta::days(1))
        .await
        .expect("purge");
    assert!(purged >= 2, "{purged}");
    assert!(store.delivery_log(a1.id, 10).await.expect("log").is_empty());
    assert!(
        store
            .enqueue_events(std::slice::from_ref(&e1))
            .await
            .expect("enqueue")
            >= 1,
        "e1 was purged"
    );
    // Deleting an endpoint deletes its deliveries; the other's stay.
    assert!(store.delete_endpoint(a1.id).await.expect("delete"));
    assert!(!store.delete_endpoint(a1.id).await.expect("delete"));
    let left = store
        .claim_deliveries(later + TimeDelta::days(2), later + TimeDelta::days(3), 10)
        .await
        .expect("claim");
    assert!(!left.is_empty());
    assert!(left.iter().all(|d| d.endpoint.id == a2.id), "{left:?}");
}

/// Events join the change they report: a flow update that loses its compare-and-swap
/// writes none; revoking a grant writes one `grant.revoked` (not two when revoked again);
/// a replayed code writes `token_reuse`; deleting an access writes one per grant it
/// revokes; a finished sync writes its events with the counts of what it wrote.
pub async fn events_are_written_with_the_change_they_report(store: Arc<impl Store>) {
    use finx_domain::access::{Claim, JobKind, JobStatus};
    use finx_domain::webhook::RevokeReason;
    use finx_ports::WebhookStore;
    use finx_ports::{AccountSync, JobOutcome};
    let now = t0();
    WebhookStore::insert_endpoint(store.as_ref(), &an_endpoint("conformance-client", 20, now))
        .await
        .expect("endpoint");
    let bodies = |store: Arc<_>| async move {
        let store: Arc<_> = store;
        let mut out = Vec::new();
        loop {
            let batch = WebhookStore::claim_deliveries(
                &*store,
                now + TimeDelta::days(400),
                now + TimeDelta::days(401),
                100,
            )
            .await
            .expect("claim");
            if batch.is_empty() {
                return out;
            }
            for d in batch {
                let attempt = finx_domain::webhook::Attempt {
                    event_id: d.event.id,
                    event_type: d.event.event_type.clone(),
                    endpoint_id: d.endpoint.id,
                    attempt: d.attempt,
                    at: now,
                    status: Some(200),
                    error: None,
                    millis: 1,
                };
                WebhookStore::finish_delivery(
                    &*store,
                    d.claim(),
                    &attempt,
                    finx_domain::webhook::AttemptOutcome::Delivered,
                )
                .await
                .expect("finish");
                out.push(serde_json::from_str::<serde_json::Value>(&d.event.body).expect("json"));
            }
        }
    };

    // A flow's end: the losing update writes nothing.
    let mut f = flow(30);
    f.client_id = ClientId::parse("conformance-client").unwrap_or_else(|_| unreachable!());
    store.insert_flow(&f).await.expect("insert");
    let ended = an_event("conformance-client", 30, now);
    let mut next = f.clone();
    next.version += 1;
    next.status = FlowStatus::Cancelled;
    assert!(matches!(
        store
            .update_flow(&next, f.version + 5, std::slice::from_ref(&ended))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        bodies(store.clone()).await.is_empty(),
        "a lost update writes no event"
    );
    store
        .update_flow(&next, f.version, std::slice::from_ref(&ended))
        .await
        .expect("update");
    let got = bodies(store.clone()).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "flow.failed");

    // Revocation, twice: one event.
    let (g, code) = grant_with_code(31, now);
    store.insert_grant(&g, &code).await.expect("grant");
    store
        .revoke_grant(g.id, now, RevokeReason::Revoked)
        .await
        .expect("revoke");
    store
        .revoke_grant(g.id, now + TimeDelta::seconds(1), RevokeReason::Revoked)
        .await
        .expect("again");
    let got = bodies(store.clone()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "grant.revoked");
    assert_eq!(got[0]["data"]["reason"], "revoked");
    assert_eq!(got[0]["data"]["flow_id"], g.flow_id.to_string());

    // A replayed code.
    let (g2, code2) = grant_with_code(32, now);
    store.insert_grant(&g2, &code2).await.expect("grant");
    store
        .redeem_code(&code2.hash, now, &tokens(&g2, 32, now))
        .await
        .expect("redeem");
    assert!(
        store
            .redeem_code(&code2.hash, now, &tokens(&g2, 33, now))
            .await
            .is_err()
    );
    let got = bodies(store.clone()).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["data"]["reason"], "token_reuse");

    // A sync's end: access.synced with the counts written.
    let access = an_access(34, now);
    let (g3, code3) = grant_with_code(34, now);
    store.insert_grant(&g3, &code3).await.expect("grant");
    let job = a_job(&access.id, 34, JobKind::Manual, now, now);
    store.insert_access(&access, &job).await.expect("access");
    let claimed = store
        .claim_jobs(now, TimeDelta::minutes(5), 10)
        .await
        .expect("claim");
    let job = claimed
        .iter()
        .find(|j| j.access_id == access.id)
        .expect("claimed");
    let mut next_access = access.clone();
    next_access.version += 1;
    let synced = finx_domain::webhook::Event {
        id: finx_domain::ids::EventId::from_random([34; 16]),
        client_id: access.client_id.clone(),
        at: now,
        data: finx_domain::webhook::EventData::AccessSynced {
            access_id: access.id.clone(),
            user_id: access.user_id.clone(),
            sync_id: job.id,
            counts: finx_domain::access::SyncCounts::default(),
        },
    };
    let outcome = JobOutcome {
        status: JobStatus::Succeeded,
        finished_at: now,
        error: None,
        accounts: vec![AccountSync {
            account: account(&access.id, "giro", now),
            transactions: vec![transaction(1, true, now), transaction(2, false, now)],
            window_from: now.date_naive() - TimeDelta::days(60),
        }],
        events: vec![synced],
    };
    store
        .finish_job(
            Claim {
                job: job.id,
                attempt: job.attempt,
            },
            &outcome,
            &next_access,
            access.version,
            None,
        )
        .await
        .expect("finish");
    let got = bodies(store.clone()).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "access.synced");
    assert_eq!(got[0]["data"]["added"], 2);
    assert_eq!(got[0]["data"]["modified"], 0);

    // Deleting the access revokes its grant: grant.revoked.
    assert!(
        store
            .delete_access_record(&access.id, now)
            .await
            .expect("delete")
    );
    let got = bodies(store.clone()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "grant.revoked");
    assert_eq!(got[0]["data"]["access_id"], access.id.as_str());
}

/// `SqlStore::import_grants` leaves grants as `insert_grant` then `redeem_code` would: their
/// tokens are found, the code counts as used, a refresh token rotates once and its reuse
/// revokes the grant; `analyze` runs on a loaded store.
///
/// # Panics
/// When the store breaks that.
pub async fn imported_grants_are_like_redeemed_ones(store: Arc<finx_store_sql::SqlStore>) {
    use finx_domain::token::{RedeemError, RotateError};
    use finx_ports::{RedeemFailure, RotateFailure};
    let now = t0();
    let rows: Vec<_> = (0..1_201)
        .map(|n| {
            let (g, c) = grant_with_code(n, now);
            let t = tokens(&g, n, now);
            (g, c, t)
        })
        .collect();
    store.import_grants(&rows).await.expect("import");
    store.analyze().await.expect("analyze");
    for n in [0, 600, 1_200] {
        let (g, c, t) = &rows[n as usize];
        let (_, found) = store
            .find_access_token(&t.access.hash)
            .await
            .expect("find")
            .expect("the access token");
        assert_eq!(found, *g, "every field of the grant");
        assert!(matches!(
            store
                .redeem_code(&c.hash, now, &tokens(g, 10_000 + n, now))
                .await,
            Err(RedeemFailure::Rejected(RedeemError::AlreadyUsed { .. }))
        ));
    }
    // (That replay revoked grants 0, 600 and 1200; grant 1 rotates.)
    let (g, _, t) = &rows[1];
    let old = &t.refresh.as_ref().expect("refresh").hash;
    let later = now + chrono::TimeDelta::minutes(5);
    store
        .rotate_refresh_token(old, later, &tokens(g, 20_000, later))
        .await
        .expect("rotates once");
    assert!(matches!(
        store
            .rotate_refresh_token(old, later, &tokens(g, 20_001, later))
            .await,
        Err(RotateFailure::Rejected(RotateError::Reused { .. }))
    ));
}

/// Upload records round-trip every field, update in place (keeping client and creation
/// time), refuse a taken id, and are purged at their `expires_at`.
pub async fn uploads_round_trip_and_go_with_their_retention(store: Arc<impl Store>) {
    use finx_domain::upload::{Upload, UploadStatus};
    let now = t0();
    let queued = Upload {
        id: finx_domain::ids::UploadId::from_random(unique16(40, 1)),
        client_id: ClientId::parse("uploader").unwrap_or_else(|_| unreachable!()),
        status: UploadStatus::Queued,
        created_at: now,
        started_at: None,
        ended_at: None,
        expires_at: now + TimeDelta::hours(1),
        grant_id: None,
        error: None,
    };
    store.insert_upload(&queued).await.expect("insert");
    assert!(matches!(
        store.insert_upload(&queued).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_upload(queued.id).await.expect("find"),
        Some(queued.clone())
    );
    let failed = Upload {
        status: UploadStatus::Failed,
        started_at: Some(now + TimeDelta::seconds(1)),
        ended_at: Some(now + TimeDelta::seconds(2)),
        error: Some((30_000, "could not be stored ✓".into())),
        grant_id: Some(finx_domain::ids::GrantId::from_random(unique16(41, 1))),
        // Neither may change.
        client_id: ClientId::parse("someone-else").unwrap_or_else(|_| unreachable!()),
        created_at: now + TimeDelta::days(1),
        ..queued.clone()
    };
    assert!(store.update_upload(&failed).await.expect("update"));
    let read = store
        .find_upload(queued.id)
        .await
        .expect("find")
        .expect("kept");
    assert_eq!(read.status, UploadStatus::Failed);
    assert_eq!(read.error, failed.error);
    assert_eq!(read.grant_id, failed.grant_id);
    assert_eq!(
        (read.started_at, read.ended_at),
        (failed.started_at, failed.ended_at)
    );
    assert_eq!(
        (read.client_id, read.created_at),
        (queued.client_id.clone(), now)
    );
    let unknown = Upload {
        id: finx_domain::ids::UploadId::from_random(unique16(40, 2)),
        ..queued.clone()
    };
    assert!(!store.update_upload(&unknown).await.expect("update"));
    assert!(store.find_upload(unknown.id).await.expect("find").is_none());

    let later = now + TimeDelta::minutes(59);
    assert_eq!(store.purge(later, later).await.expect("purge").uploads, 0);
    let end = now + TimeDelta::hours(1);
    assert_eq!(store.purge(end, end).await.expect("purge").uploads, 1);
    assert!(store.find_upload(queued.id).await.expect("find").is_none());
}

/// `add_access_token` adds a token a lookup then finds, only while the grant is live, and
/// refuses a taken hash.
pub async fn access_tokens_are_added_only_to_live_grants(store: Arc<impl Store>) {
    let now = t0();
    let (mut g, code) = grant_with_code(70, now);
    g.verification = Some(
        finx_domain::verify::Verification::new(
            "Dr. Jürgen Weiß",
            finx_domain::reference::Iban::parse("DE02120300000000202051").ok(),
        )
        .unwrap_or_else(|_| unreachable!()),
    );
    store.insert_grant(&g, &code).await.expect("insert");
    assert_eq!(
        store
            .find_grant(g.id)
            .await
            .expect("find")
            .expect("kept")
            .verification,
        g.verification,
        "a verification's grant keeps what it verifies"
    );
    let token = |n: u32, at: Timestamp| finx_domain::token::AccessTokenRecord {
        hash: hash(6, n),
        grant_id: g.id,
        issued_at: at,
        expires_at: at + TimeDelta::hours(1),
        scope: Scope::parse("transactions=ro").unwrap_or(Scope::FULL),
        revoked_at: None,
    };
    assert!(
        store
            .add_access_token(&token(1, now), now)
            .await
            .expect("add")
    );
    let (found, grant) = store
        .find_access_token(&hash(6, 1))
        .await
        .expect("find")
        .expect("added");
    assert_eq!(found, token(1, now));
    assert_eq!(grant.id, g.id);
    assert!(matches!(
        store.add_access_token(&token(1, now), now).await,
        Err(StoreError::Conflict(_))
    ));
    let past_end = g.expires_at;
    assert!(
        !store
            .add_access_token(&token(2, past_end), past_end)
            .await
            .expect("add"),
        "not past the grant's end"
    );
    store
        .revoke_grant(g.id, now, RevokeReason::Revoked)
        .await
        .expect("revoke");
    assert!(
        !store
            .add_access_token(&token(3, now), now)
            .await
            .expect("add"),
        "not to a revoked grant"
    );
    assert!(
        store
            .find_access_token(&hash(6, 3))
            .await
            .expect("find")
            .is_none()
    );
    let (orphan, _) = grant_with_code(71, now);
    assert!(
        !store
            .add_access_token(
                &finx_domain::token::AccessTokenRecord {
                    grant_id: orphan.id,
                    ..token(4, now)
                },
                now
            )
            .await
            .expect("add"),
        "not to an unknown grant"
    );
}
