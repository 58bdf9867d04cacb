//! Ongoing access over real HTTP (issue 13): the ongoing flow end to end, the accesses API,
//! manual syncs and finX error 1020 once the day's allowance is spent, scheduled syncs at
//! their slots, deletion (the consent ends at the bank, the data goes), a consent revoked at
//! the bank, renewal that keeps the access's ids, and one-time data gone after its
//! retention window.
//!
//! The server's sync runner is a loop over two core calls, `claim_syncs` and `run_sync`;
//! here the test makes those calls itself, on the test clock, where the runner would.

use std::collections::HashSet;

use chrono::TimeDelta;
use finx_ports::{Clock, Presence};
use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT, Served, walk_widget};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BANK: &str = "sandbox-90094815";

/// Creates an ongoing flow (optionally renewing `access`) and walks it as `user`; returns
/// the code.
async fn ongoing_code(s: &Served, user: &str, user_id: &str, access: Option<&str>) -> String {
    let mut body = json!({ "redirect_uri": REDIRECT, "user_id": user_id, "provider_id": BANK });
    if let Some(a) = access {
        body["access_id"] = json!(a);
    }
    let res = s
        .http
        .post(s.url("/ongoing/access"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.expect("json");
    let location = v["location"].as_str().expect("location");
    let back = walk_widget(&s.http, location, BANK, user).await;
    back.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

async fn token(s: &Served, code: &str) -> Value {
    let res = s
        .http
        .post(s.url("/auth/token"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(
            &json!({ "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT }),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("json")
}

async fn bearer(s: &Served, user: &str, user_id: &str) -> String {
    let code = ongoing_code(s, user, user_id, None).await;
    let t = token(s, &code).await;
    assert_eq!(
        t["refresh_token_expires_in"],
        90 * 86_400,
        "an ongoing grant refreshes for 90 days: {t}"
    );
    t["access_token"].as_str().expect("token").to_owned()
}

async fn get(s: &Served, bearer: &str, path: &str) -> (StatusCode, Value) {
    let res = s
        .http
        .get(s.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("send");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn only_access(s: &Served, bearer: &str) -> Value {
    let (status, v) = get(s, bearer, "/rest/accesses").await;
    assert_eq!(status, StatusCode::OK);
    let list = v["accesses"].as_array().expect("list");
    assert_eq!(list.len(), 1, "{v}");
    list[0].clone()
}

/// What the runner does: claims every due sync and runs it. Returns how many ran.
async fn run_due(app: &App) -> usize {
    let jobs = app.finx.claim_syncs(100).await.expect("claim");
    for j in &jobs {
        app.finx.run_sync(j).await.expect("run");
    }
    jobs.len()
}

/// `POST /rest/accesses/{id}/syncs`.
async fn post_sync(s: &Served, bearer: &str, id: &str) -> reqwest::Response {
    s.http
        .post(s.url(&format!("/rest/accesses/{id}/syncs")))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("send")
}

/// The `Retry-After` seconds of a response.
fn retry_after(res: &reqwest::Response) -> i64 {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After")
}

async fn all_transactions(s: &Served, bearer: &str) -> Vec<Value> {
    let (status, v) = get(
        s,
        bearer,
        "/rest/transactions?include_pending=true&count=1000",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["transactions"].as_array().expect("list").clone()
}

#[tokio::test]
async fn an_ongoing_access_syncs_four_times_a_day_then_answers_1020_and_resumes_at_midnight() {
    let s = Served::start(App::new().await).await;
    let t = bearer(&s, "moving", "user-1").await;
    let a = only_access(&s, &t).await;
    let id = a["access_id"].as_str().expect("id").to_owned();
    assert_eq!(a["status"], "valid");
    assert_eq!(a["user_id"], "user-1");
    assert_eq!(a["syncs_left_today"], 4);
    assert_eq!(a["consent"]["frequency_per_day"], 4);
    let today = s.app.clock.now().date_naive();
    assert_eq!(
        a["consent"]["valid_until"],
        (today + TimeDelta::days(89)).to_string(),
        "a 90-day recurring consent"
    );
    assert!(a["next_sync_at"].is_string(), "a sync is planned: {a}");
    assert_eq!(a["accounts"].as_array().map(Vec::len), Some(1));
    let before = all_transactions(&s, &t).await;

    // Four manual syncs: each one moves the moving user's bank one day forward.
    let mut added = 0;
    let mut modified = 0;
    let mut removed = 0;
    let mut took_scheduled = false;
    for n in 0..4 {
        let res = s
            .http
            .post(s.url(&format!("/rest/accesses/{id}/syncs")))
            .bearer_auth(&t)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), StatusCode::ACCEPTED, "sync {n}");
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_owned();
        let job: Value = res.json().await.expect("json");
        assert_eq!(job["status"], "queued");
        // A scheduled sync already due is answered instead of a second one: the
        // access's first slot may fall in these minutes (its jitter is per access).
        if job["kind"] == "scheduled" {
            took_scheduled = true;
            let run_at: chrono::DateTime<chrono::Utc> = job["run_at"]
                .as_str()
                .expect("run_at")
                .parse()
                .expect("rfc 3339");
            assert!(run_at <= s.app.clock.now(), "only a due one: {job}");
        } else {
            assert_eq!(job["kind"], "manual");
        }
        assert_eq!(run_due(&s.app).await, 1);
        let (status, done) = get(&s, &t, &location).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(done["status"], "succeeded", "{done}");
        added += done["added"].as_u64().expect("added");
        modified += done["modified"].as_u64().expect("modified");
        removed += done["removed"].as_u64().expect("removed");
        s.app.clock.advance(TimeDelta::minutes(1));
    }
    assert!(added > 0, "new days bring new transactions");
    assert!(
        modified > 0,
        "pending card payments book under new ids and keep theirs (issue 14)"
    );

    // The fifth is refused with 1020 and Retry-After up to midnight UTC.
    let res = post_sync(&s, &t, &id).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&res);
    let midnight = finx_domain::schedule::start_of(today + TimeDelta::days(1));
    assert_eq!(wait, (midnight - s.app.clock.now()).num_seconds());
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], 1020);
    assert_eq!(only_access(&s, &t).await["syncs_left_today"], 0);

    // Nothing was duplicated: ids are unique, and every pending one of before that is
    // still reported kept its id or went.
    let after = all_transactions(&s, &t).await;
    let pending_before: Vec<&Value> = before.iter().filter(|t| t["booked"] == false).collect();
    assert!(
        !pending_before.is_empty(),
        "the moving login has pending payments"
    );
    let booked_now = pending_before
        .iter()
        .filter(|p| {
            after
                .iter()
                .any(|a| a["transaction_id"] == p["transaction_id"] && a["booked"] == true)
        })
        .count();
    assert!(
        booked_now > 0,
        "a pending payment booked under the bank's new id is the same transaction"
    );
    let ids: HashSet<&str> = after
        .iter()
        .map(|t| t["transaction_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), after.len(), "no duplicates");
    assert_eq!(
        after.len() as u64,
        before.len() as u64 + added - removed,
        "the counts add up"
    );

    // The scheduled sync waits for midnight: its slot today finds the day spent.
    let store = s.app.store.clone();
    let access_id = finx_domain::ids::AccessId::parse(&id).expect("id");
    let planned = store
        .pending_job(&access_id)
        .await
        .expect("job")
        .expect("a scheduled sync is queued");
    assert_eq!(planned.kind, finx_domain::access::JobKind::Scheduled);
    let requeued = if planned.run_at >= midnight {
        // Today's slots were all taken (one of the four was the scheduled one, due
        // meanwhile): the next is planned for tomorrow already.
        assert!(took_scheduled, "{planned:?}");
        planned.clone()
    } else {
        // (Its slot may have come while the four ran: then it is due already.)
        s.app
            .clock
            .advance((planned.run_at - s.app.clock.now()).max(TimeDelta::zero()));
        assert_eq!(run_due(&s.app).await, 1, "claimed at its slot");
        let requeued = store
            .pending_job(&access_id)
            .await
            .expect("job")
            .expect("still queued");
        assert_eq!(requeued.id, planned.id);
        assert_eq!(
            requeued.run_at, midnight,
            "back in the queue until midnight"
        );
        requeued
    };
    // Tomorrow it runs, and the day's count starts again.
    s.app.clock.advance(requeued.run_at - s.app.clock.now());
    assert_eq!(run_due(&s.app).await, 1);
    let done = store
        .find_job(planned.id)
        .await
        .expect("job")
        .expect("kept");
    assert_eq!(done.status, finx_domain::access::JobStatus::Succeeded);
    let access = store
        .find_access(&access_id)
        .await
        .expect("access")
        .expect("kept");
    let policy = finx_domain::schedule::SyncPolicy::default();
    assert_eq!(access.syncs_left(s.app.clock.now(), &policy), 3);
    let next = store
        .pending_job(&access_id)
        .await
        .expect("job")
        .expect("the next one is planned");
    assert!(next.run_at > s.app.clock.now());
}

#[tokio::test]
async fn deleting_an_access_ends_the_consent_at_the_bank_and_deletes_its_data() {
    let s = Served::start(App::new().await).await;
    let t = bearer(&s, "demo", "user-2").await;
    let id = only_access(&s, &t).await["access_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let access_id = finx_domain::ids::AccessId::parse(&id).expect("id");
    let session = s
        .app
        .store
        .find_access(&access_id)
        .await
        .expect("find")
        .expect("stored")
        .session;
    assert!(!all_transactions(&s, &t).await.is_empty());

    let res = s
        .http
        .delete(s.url(&format!("/rest/accesses/{id}")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // At the bank: the consent reads nothing any more.
    use finx_ports::BankConnector;
    assert!(matches!(
        s.app
            .sandbox
            .accounts(&session, &Presence::Unattended)
            .await,
        Err(finx_ports::BankError::ConsentRevoked)
    ));
    // At finX: the access, its data and its grant are gone.
    assert!(
        s.app
            .store
            .find_access(&access_id)
            .await
            .expect("find")
            .is_none()
    );
    let (status, _) = get(&s, &t, "/rest/accounts").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the grant is revoked");
    let account = finx_domain::bank::Account::id_for(&access_id, "giro");
    assert!(
        s.app
            .store
            .find_accounts(&[account])
            .await
            .expect("find")
            .is_empty()
    );
}

#[tokio::test]
async fn a_consent_revoked_at_the_bank_stops_the_syncs_and_renewal_keeps_every_id() {
    let s = Served::start(App::new().await).await;
    let code = ongoing_code(&s, "demo", "user-3", None).await;
    let t = token(&s, &code).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let a = only_access(&s, &t).await;
    let id = a["access_id"].as_str().expect("id").to_owned();
    let access_id = finx_domain::ids::AccessId::parse(&id).expect("id");
    let before: HashSet<String> = all_transactions(&s, &t)
        .await
        .iter()
        .filter(|t| t["booked"] == true)
        .map(|t| t["transaction_id"].as_str().expect("id").to_owned())
        .collect();

    // The user revokes the consent at the bank: the next sync fails and says so.
    let session = s
        .app
        .store
        .find_access(&access_id)
        .await
        .expect("find")
        .expect("stored")
        .session;
    s.app.sandbox.revoke(&session);
    let res = post_sync(&s, &t, &id).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(run_due(&s.app).await, 1);
    let a = only_access(&s, &t).await;
    assert_eq!(a["status"], "revoked", "{a}");
    assert_eq!(a["last_error"]["code"], 10021);
    assert_eq!(a["last_error"]["name"], "consent_revoked");
    assert!(a["next_sync_at"].is_null(), "no sync is planned: {a}");
    let res = post_sync(&s, &t, &id).await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "renew first");

    // Another user of the customer cannot renew it.
    let res = s
        .http
        .post(s.url("/ongoing/access"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(&json!({ "redirect_uri": REDIRECT, "user_id": "someone-else", "access_id": id }))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Renewal: the widget goes straight to the bank; the same access continues.
    let code = ongoing_code(&s, "demo", "user-3", Some(&id)).await;
    let t2 = token(&s, &code).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let renewed = only_access(&s, &t2).await;
    assert_eq!(renewed["access_id"], id.as_str());
    assert_eq!(renewed["status"], "valid");
    assert!(renewed["last_error"].is_null());
    assert!(renewed["next_sync_at"].is_string(), "the schedule resumes");
    assert_eq!(renewed["accounts"], a["accounts"], "the same account ids");
    let after = all_transactions(&s, &t2).await;
    let after_ids: HashSet<String> = after
        .iter()
        .map(|t| t["transaction_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(after_ids.len(), after.len(), "no duplicates");
    assert!(before.is_subset(&after_ids), "history kept under its ids");
    // The old consent's grant still reads the same access.
    let (status, _) = get(&s, &t, "/rest/accounts").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn one_time_data_and_its_grant_are_gone_after_the_retention_window() {
    let app = App::tuned(
        std::sync::Arc::new(finx_store_memory::MemoryStore::new()),
        |settings| settings.onetime_retention = std::time::Duration::from_secs(120),
    )
    .await;
    let s = Served::start(app).await;
    let res = s
        .http
        .post(s.url("/onetime/access"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(&json!({ "redirect_uri": REDIRECT, "provider_id": BANK }))
        .send()
        .await
        .expect("send");
    let v: Value = res.json().await.expect("json");
    let back = walk_widget(&s.http, v["location"].as_str().expect("loc"), BANK, "demo").await;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens = token(&s, &code).await;
    let t = tokens["access_token"].as_str().expect("token").to_owned();
    assert!(
        tokens["expires_in"].as_i64().is_some_and(|e| e <= 120),
        "no token outlives the data: {tokens}"
    );
    assert!(
        tokens["refresh_token"].is_null(),
        "no refresh token that cannot outlive the access token: {tokens}"
    );
    let (status, accounts) = get(&s, &t, "/rest/accounts").await;
    assert_eq!(status, StatusCode::OK);
    let account = accounts["accounts"][0]["account_id"]
        .as_str()
        .expect("account")
        .to_owned();
    let (_, list) = get(&s, &t, "/rest/accesses").await;
    assert_eq!(
        list["accesses"],
        json!([]),
        "one-time grants hold no access"
    );

    s.app.clock.advance(TimeDelta::minutes(3));
    let (status, _) = get(&s, &t, "/rest/accounts").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The cleanup job deletes the data; the purge cut-off spares only flows still fetching.
    s.app.clock.advance(TimeDelta::hours(2));
    s.app.finx.purge_expired().await.expect("purge");
    let id = finx_domain::ids::AccountId::parse(&account).expect("id");
    assert!(
        s.app
            .store
            .find_accounts(&[id])
            .await
            .expect("find")
            .is_empty(),
        "one-time data is deleted"
    );
}

#[tokio::test]
async fn a_bank_that_says_wait_postpones_the_access_and_is_not_asked_again_before() {
    let s = Served::start(App::new().await).await;
    let t = bearer(&s, "throttled", "user-5").await;
    let a = only_access(&s, &t).await;
    let id = a["access_id"].as_str().expect("id").to_owned();
    let access_id = finx_domain::ids::AccessId::parse(&id).expect("id");
    let res = post_sync(&s, &t, &id).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned();
    assert_eq!(run_due(&s.app).await, 1);
    let (_, job) = get(&s, &t, &location).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], 20001);
    assert_eq!(job["error"]["name"], "bank_rate_limited");
    let a = only_access(&s, &t).await;
    assert_eq!(a["status"], "valid", "a rate limit ends nothing");
    assert_eq!(a["last_error"]["code"], 20001);
    let now = s.app.clock.now();
    let postponed = s
        .app
        .store
        .find_access(&access_id)
        .await
        .expect("find")
        .expect("kept")
        .ledger
        .not_before
        .expect("postponed");
    assert!(
        postponed >= now + TimeDelta::hours(2),
        "the bank's Retry-After is obeyed"
    );

    // Before then: a manual sync is refused, and a scheduled one goes back to the queue
    // without asking the bank.
    let res = post_sync(&s, &t, &id).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&res);
    assert_eq!(wait, (postponed - now).num_seconds());
    let planned = s
        .app
        .store
        .pending_job(&access_id)
        .await
        .expect("job")
        .expect("scheduled");
    if planned.run_at < postponed {
        s.app.clock.advance(planned.run_at - now);
        assert_eq!(run_due(&s.app).await, 1);
        let back = s
            .app
            .store
            .find_job(planned.id)
            .await
            .expect("job")
            .expect("kept");
        assert_eq!(back.status, finx_domain::access::JobStatus::Queued);
        assert_eq!(back.run_at, postponed);
    } else {
        assert!(
            planned.run_at >= postponed,
            "planned after the postponement"
        );
    }
}

/// A disabled customer's accesses are not read at the bank: a due sync goes back to the
/// queue without a bank call, and runs again once the customer is enabled.
#[tokio::test]
async fn a_disabled_clients_syncs_wait_without_calling_the_bank() {
    let bank = std::sync::Arc::new(std::sync::OnceLock::new());
    let keep = bank.clone();
    let app = App::with(std::time::Duration::from_millis(10), move |inner| {
        let counting = std::sync::Arc::new(finx_tests::fixtures::CountingBank::new(inner));
        let _ = keep.set(counting.clone());
        counting
    })
    .await;
    let s = Served::start(app).await;
    let t = bearer(&s, "moving", "user-9").await;
    let id = only_access(&s, &t).await["access_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let access_id = finx_domain::ids::AccessId::parse(&id).expect("id");
    let counting: &std::sync::Arc<finx_tests::fixtures::CountingBank> =
        bank.get().expect("wrapped");
    let res = post_sync(&s, &t, &id).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    s.app
        .finx
        .disable_client(&s.app.client.id)
        .await
        .expect("disable");
    let before = counting.fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(run_due(&s.app).await, 1);
    assert_eq!(
        counting.fetches.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "no bank call for a disabled customer"
    );
    let job = s
        .app
        .store
        .pending_job(&access_id)
        .await
        .expect("job")
        .expect("back in the queue");
    assert!(job.run_at > s.app.clock.now(), "{job:?}");
    s.app
        .finx
        .enable_client(&s.app.client.id)
        .await
        .expect("enable");
    s.app.clock.advance(job.run_at - s.app.clock.now());
    assert_eq!(run_due(&s.app).await, 1);
    assert!(
        counting.fetches.load(std::sync::atomic::Ordering::SeqCst) > before,
        "enabled again, it syncs"
    );
}
