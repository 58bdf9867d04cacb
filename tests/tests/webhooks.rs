//! Webhooks (issue 14), in process: the app on the in-memory store with a clock the tests
//! move, a real receiver on loopback, real HTTP between them. Signatures are checked with
//! the SDK's verifier here; `webhooks_process.rs` checks them with Python's
//! `standardwebhooks` against the server binary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::TimeDelta;
use finx_client::WebhookVerifier;
use finx_domain::ids::{AccessId, ClientId, EventId, FlowId};
use finx_domain::webhook::{Event, EventData, RevokeReason};
use finx_ports::Clock as _;
use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT, Served};
use reqwest::StatusCode as Status;
use serde_json::{Value, json};

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Accept,
    Fail,
    Slow(Duration),
}

/// A webhook receiver on loopback that keeps what it was sent.
#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    url: String,
}

impl Receiver {
    async fn start() -> Self {
        let mode = Arc::new(Mutex::new(Mode::Accept));
        let got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
        let (m, g) = (mode.clone(), got.clone());
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let (m, g) = (m.clone(), g.clone());
                async move {
                    let mode = *m.lock().expect("lock");
                    g.lock().expect("lock").push((headers, body));
                    match mode {
                        Mode::Accept => StatusCode::NO_CONTENT,
                        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
                        Mode::Slow(d) => {
                            tokio::time::sleep(d).await;
                            StatusCode::OK
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { mode, got, url }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    fn received(&self) -> Vec<(HeaderMap, Bytes)> {
        self.got.lock().expect("lock").clone()
    }
}

/// What the runner does: sends every due delivery. Returns how many were sent.
async fn deliver_due(app: &App) -> usize {
    let due = app.finx.claim_webhooks(100).await.expect("claim");
    for d in &due {
        app.finx.deliver_webhook(d).await.expect("deliver");
    }
    due.len()
}

/// The events received, verified with `verifier` at the app's time.
fn verified(app: &App, r: &Receiver, verifier: &WebhookVerifier) -> Vec<finx_client::WebhookEvent> {
    let now = app.clock.now().timestamp();
    r.received()
        .iter()
        .map(|(h, b)| verifier.verify_at(h, b, now).expect("a valid signature"))
        .collect()
}

/// An ongoing grant's token answer (access and refresh token).
async fn ongoing_tokens(s: &Served, user_id: &str) -> Value {
    let t = finx_tests::fixtures::connect_ongoing(s, "moving", user_id).await;
    assert!(t["refresh_token"].is_string(), "{t}");
    t
}

/// An event of the demo client, for the delivery tests.
fn event(app: &App, n: u8) -> Event {
    Event {
        id: EventId::from_random([n; 16]),
        client_id: ClientId::parse("demo-app").expect("id"),
        at: app.clock.now(),
        data: EventData::GrantRevoked {
            flow_id: FlowId::from_random([n; 16]),
            access_id: AccessId::parse("Xtest").expect("id"),
            reason: RevokeReason::Revoked,
        },
    }
}

/// The demo client's endpoint at the receiver.
async fn endpoint(s: &Served, r: &Receiver) -> finx_domain::webhook::Endpoint {
    s.app
        .finx
        .add_webhook("demo-app", &r.url)
        .await
        .expect("add")
}

/// Writes the test event `n` to the outbox; returns the deliveries it made.
async fn enqueue(app: &App, n: u8) -> u64 {
    app.store
        .enqueue_events(&[event(app, n)])
        .await
        .expect("enqueue")
}

/// The grant's only access, a manual sync of it asked over HTTP and run as the runner
/// does, and the sync resource after it.
async fn sync_now(s: &Served, bearer: &str) -> (String, Value) {
    let accesses: Value = s
        .http
        .get(s.url("/rest/accesses"))
        .bearer_auth(bearer)
        .json_body()
        .await;
    let access_id = accesses["accesses"][0]["access_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let res = s
        .http
        .post(s.url(&format!("/rest/accesses/{access_id}/syncs")))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), Status::ACCEPTED);
    let location = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    for j in s.app.finx.claim_syncs(10).await.expect("claim") {
        s.app.finx.run_sync(&j).await.expect("sync");
    }
    let sync = s
        .http
        .get(s.url(&location))
        .bearer_auth(bearer)
        .json_body()
        .await;
    (access_id, sync)
}

/// Sends a request and reads its JSON answer.
trait JsonBody {
    async fn json_body(self) -> Value;
}

impl JsonBody for reqwest::RequestBuilder {
    async fn json_body(self) -> Value {
        self.send().await.expect("send").json().await.expect("json")
    }
}

#[tokio::test]
async fn a_flow_a_sync_and_a_revocation_reach_the_endpoint_signed_with_ids_and_counts_only() {
    let s = Served::start(App::new().await).await;
    let r = Receiver::start().await;
    let endpoint = endpoint(&s, &r).await;
    let secret = endpoint.secret.expose();
    assert!(
        secret.starts_with("whsec_"),
        "shown once, in the standard form"
    );
    assert!(
        !format!("{endpoint:?}").contains(&secret[6..]),
        "redacted in Debug"
    );
    let verifier = WebhookVerifier::new(&secret).expect("secret");

    // A flow ends with a grant: flow.completed.
    let tokens = ongoing_tokens(&s, "user-1").await;
    let bearer = tokens["access_token"].as_str().expect("token").to_owned();
    assert_eq!(deliver_due(&s.app).await, 1);
    // A sync: access.synced with the counts the sync resource shows.
    let (access_id, sync) = sync_now(&s, &bearer).await;
    assert_eq!(sync["status"], "succeeded", "{sync}");
    assert_eq!(deliver_due(&s.app).await, 1);
    // The customer revokes the grant: grant.revoked.
    let res = s
        .http
        .post(s.url("/auth/revoke"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .form(&[("token", tokens["refresh_token"].as_str().expect("refresh"))])
        .send()
        .await
        .expect("send");
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(deliver_due(&s.app).await, 1);
    assert_eq!(deliver_due(&s.app).await, 0, "each delivered once");

    let events = verified(&s.app, &r, &verifier);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["flow.completed", "access.synced", "grant.revoked"]);
    assert_eq!(events[0].data["access_id"], access_id.as_str());
    assert_eq!(events[0].data["user_id"], "user-1");
    assert_eq!(events[1].data["sync_id"], sync["sync_id"]);
    for k in ["added", "modified", "removed"] {
        assert_eq!(events[1].data[k], sync[k], "{k}");
    }
    assert_eq!(events[2].data["reason"], "revoked");
    // Ids and counts only: no amount, IBAN, name or purpose anywhere.
    for (_, body) in r.received() {
        let text = String::from_utf8_lossy(&body).to_lowercase();
        for bank_data in ["amount", "iban", "purpose", "counterparty", "balance"] {
            assert!(!text.contains(bank_data), "{bank_data} in {text}");
        }
        // No German IBAN either: "de" and 20 digits (ids are hex and may hold "de8").
        let bytes = text.as_bytes();
        let iban_at = |i: usize| {
            bytes[i..].starts_with(b"de")
                && bytes.len() >= i + 22
                && bytes[i + 2..i + 22].iter().all(u8::is_ascii_digit)
        };
        assert!(!(0..bytes.len()).any(iban_at), "an IBAN in {text}");
    }
    // Every attempt is in the endpoint's log.
    let log = s
        .app
        .finx
        .webhook_log("demo-app", &endpoint.id.to_string(), 50)
        .await
        .expect("log");
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|a| a.status == Some(204) && a.error.is_none())
    );
    // Another client sees none of it.
    assert!(
        s.app
            .finx
            .webhook_log("other-app", &endpoint.id.to_string(), 50)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_replayed_refresh_token_revokes_the_grant_and_says_so() {
    let s = Served::start(App::new().await).await;
    let r = Receiver::start().await;
    let endpoint = endpoint(&s, &r).await;
    let verifier = WebhookVerifier::new(&endpoint.secret.expose()).expect("secret");
    let tokens = ongoing_tokens(&s, "user-2").await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    for expected in [Status::OK, Status::BAD_REQUEST] {
        let res = s
            .http
            .post(s.url("/auth/token"))
            .basic_auth("demo-app", Some(DEMO_SECRET))
            .json(&json!({ "grant_type": "refresh_token", "refresh_token": refresh }))
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), expected);
    }
    assert_eq!(deliver_due(&s.app).await, 2);
    let events = verified(&s.app, &r, &verifier);
    let revoked = events
        .iter()
        .find(|e| e.event_type == "grant.revoked")
        .expect("grant.revoked");
    assert_eq!(revoked.data["reason"], "token_reuse");
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_growing_waits_for_a_day_then_disabled() {
    let s = Served::start(App::new().await).await;
    let r = Receiver::start().await;
    r.set(Mode::Fail);
    let endpoint = endpoint(&s, &r).await;
    let id = endpoint.id.to_string();
    let start = s.app.clock.now();
    assert_eq!(
        enqueue(&s.app, 1).await,
        1,
        "one delivery for the one endpoint"
    );
    // Walk the day in 30-second steps, sending whatever is due.
    let mut sent_at = Vec::new();
    while s.app.clock.now() < start + TimeDelta::hours(25) {
        if deliver_due(&s.app).await > 0 {
            sent_at.push(s.app.clock.now());
        }
        s.app.clock.advance(TimeDelta::seconds(30));
    }
    let received = r.received();
    assert_eq!(received.len(), sent_at.len());
    assert!(
        (8..=14).contains(&sent_at.len()),
        "{} attempts in a day",
        sent_at.len()
    );
    // The same event every time: the same webhook-id, body and a valid signature then.
    let ids: std::collections::HashSet<_> = received
        .iter()
        .map(|(h, _)| h["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), 1);
    // Growing waits: each at least 2.5 times the one before (×4 with ±25 % jitter),
    // capped at 4 hours; the last attempt within 24 hours of the event.
    let gaps: Vec<TimeDelta> = sent_at.windows(2).map(|w| w[1] - w[0]).collect();
    for w in gaps.windows(2) {
        if w[0] < TimeDelta::hours(1) {
            assert!(w[1] * 2 >= w[0] * 5 - TimeDelta::seconds(150), "{gaps:?}");
        }
    }
    assert!(
        gaps.iter().all(|g| *g <= TimeDelta::minutes(301)),
        "{gaps:?}"
    );
    assert!(*sent_at.last().expect("some") <= start + TimeDelta::hours(24));
    // Failed for a whole day: disabled, and `list` says so.
    let listed = s.app.finx.list_webhooks("demo-app").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].disabled_at.is_some(), "{listed:?}");
    assert!(listed[0].last_success_at.is_none());
    let log = s
        .app
        .finx
        .webhook_log("demo-app", &id, 100)
        .await
        .expect("log");
    assert_eq!(log.len(), sent_at.len());
    assert!(log.iter().all(|a| a.status == Some(500)));
    // A disabled endpoint gets no new deliveries; enabled again, it does.
    assert_eq!(enqueue(&s.app, 2).await, 0);
    r.set(Mode::Accept);
    s.app
        .finx
        .enable_webhook("demo-app", &id)
        .await
        .expect("enable");
    enqueue(&s.app, 3).await;
    assert_eq!(deliver_due(&s.app).await, 1);
    let listed = s.app.finx.list_webhooks("demo-app").await.expect("list");
    assert!(listed[0].disabled_at.is_none() && listed[0].last_success_at.is_some());
}

#[tokio::test]
async fn a_timeout_or_a_500_is_retried_and_one_success_ends_the_retries() {
    let s = Served::start(App::new().await).await;
    let r = Receiver::start().await;
    let endpoint = endpoint(&s, &r).await;
    let verifier = WebhookVerifier::new(&endpoint.secret.expose()).expect("secret");
    // The fixture's sender gives up after 500 ms.
    r.set(Mode::Slow(Duration::from_secs(2)));
    enqueue(&s.app, 1).await;
    assert_eq!(deliver_due(&s.app).await, 1);
    assert_eq!(deliver_due(&s.app).await, 0, "not due again at once");
    r.set(Mode::Fail);
    s.app.clock.advance(TimeDelta::seconds(7));
    assert_eq!(deliver_due(&s.app).await, 1);
    r.set(Mode::Accept);
    s.app.clock.advance(TimeDelta::seconds(30));
    assert_eq!(deliver_due(&s.app).await, 1);
    s.app.clock.advance(TimeDelta::hours(30));
    assert_eq!(deliver_due(&s.app).await, 0, "delivered: no more attempts");
    let log = s
        .app
        .finx
        .webhook_log("demo-app", &endpoint.id.to_string(), 10)
        .await
        .expect("log");
    let seen: Vec<(Option<u16>, Option<&str>)> = log
        .iter()
        .rev()
        .map(|a| (a.status, a.error.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (None, Some("timeout")),
            (Some(500), Some("HTTP 500")),
            (Some(204), None)
        ]
    );
    // Three sends of one event, each signed for the moment it was sent.
    let got = r.received();
    assert_eq!(got.len(), 3);
    let (h, b) = &got[2];
    verifier
        .verify_at(h, b, s.app.clock.now().timestamp() - 30 * 3600)
        .expect("the last one verifies at its time");
    assert_eq!(got[0].0["webhook-id"], got[2].0["webhook-id"]);
}

#[tokio::test]
async fn a_rotated_secret_keeps_signing_beside_the_new_one_for_the_overlap() {
    let s = Served::start(App::new().await).await;
    let r = Receiver::start().await;
    let first = endpoint(&s, &r).await;
    let old = first.secret.expose();
    let rotated = s
        .app
        .finx
        .rotate_webhook_secret("demo-app", &first.id.to_string())
        .await
        .expect("rotate");
    let new = rotated.secret.expose();
    assert_ne!(old, new);
    enqueue(&s.app, 1).await;
    assert_eq!(deliver_due(&s.app).await, 1);
    let now = s.app.clock.now().timestamp();
    let (h, b) = r.received().remove(0);
    assert_eq!(
        h["webhook-signature"]
            .to_str()
            .expect("ascii")
            .split(' ')
            .count(),
        2
    );
    for secret in [&old, &new] {
        WebhookVerifier::new(secret)
            .expect("secret")
            .verify_at(&h, &b, now)
            .expect("either secret verifies during the overlap");
    }
    // After the overlap (24 hours) only the new one signs.
    s.app.clock.advance(TimeDelta::hours(25));
    enqueue(&s.app, 2).await;
    assert_eq!(deliver_due(&s.app).await, 1);
    let now = s.app.clock.now().timestamp();
    let (h, b) = r.received().remove(1);
    assert!(
        WebhookVerifier::new(&old)
            .expect("secret")
            .verify_at(&h, &b, now)
            .is_err()
    );
    WebhookVerifier::new(&new)
        .expect("secret")
        .verify_at(&h, &b, now)
        .expect("the new one");
}

#[tokio::test]
async fn endpoints_must_be_https_or_loopback_in_sandbox_and_belong_to_a_known_client() {
    let app = App::new().await;
    for bad in [
        "http://example.com/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest",
        "ftp://example.com/",
        "https://user:pw@example.com/",
    ] {
        assert!(
            matches!(
                app.finx.add_webhook("demo-app", bad).await,
                Err(finx_core::CoreError::Invalid { field: "url", .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        app.finx
            .add_webhook("no-such-client", "https://example.com/")
            .await,
        Err(finx_core::CoreError::NotFound(_))
    ));
    let e = app
        .finx
        .add_webhook("demo-app", "https://example.com/hook")
        .await
        .expect("https to a public name");
    app.finx
        .remove_webhook("demo-app", &e.id.to_string())
        .await
        .expect("remove");
    assert!(
        app.finx
            .list_webhooks("demo-app")
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn a_customer_manages_its_endpoints_over_the_api_and_sees_no_one_elses() {
    let s = Served::start(App::new().await).await;
    let r = Receiver::start().await;
    let basic = |req: reqwest::RequestBuilder| req.basic_auth("demo-app", Some(DEMO_SECRET));
    // Registered over the API: 201 with the secret, once.
    let res = basic(s.http.post(s.url("/webhooks")))
        .json(&json!({ "url": r.url }))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), Status::CREATED);
    let made: Value = res.json().await.expect("json");
    let id = made["endpoint_id"].as_str().expect("id").to_owned();
    let secret = made["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(made["status"], "enabled");
    let listed: Value = basic(s.http.get(s.url("/webhooks"))).json_body().await;
    assert_eq!(listed["webhooks"][0]["endpoint_id"], id.as_str());
    assert!(
        !listed.to_string().contains(&secret[6..]),
        "the list never shows a secret"
    );
    // Bad URLs and bad bodies: 400 naming the field.
    for body in [
        json!({ "url": "http://example.com/hook" }),
        json!({ "url": "https://192.168.0.10/hook" }),
        json!({ "url": 7 }),
        json!({ "url": "https://example.com/", "extra": true }),
    ] {
        let res = basic(s.http.post(s.url("/webhooks")))
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), Status::BAD_REQUEST, "{body}");
        let v: Value = res.json().await.expect("json");
        assert!(v["error"]["code"].is_number(), "{v}");
    }
    // No client, no list; a wrong secret is 401.
    let res = s.http.get(s.url("/webhooks")).send().await.expect("send");
    assert_eq!(res.status(), Status::UNAUTHORIZED);
    // Rotation over the API: a new secret, and both sign for the overlap.
    let rotated: Value = basic(s.http.post(s.url(&format!("/webhooks/{id}/rotate"))))
        .json_body()
        .await;
    let new = rotated["secret"].as_str().expect("secret");
    assert_ne!(new, secret);
    assert!(rotated["previous_secret_until"].is_string());
    enqueue(&s.app, 1).await;
    assert_eq!(deliver_due(&s.app).await, 1);
    let verifier = WebhookVerifier::with_secrets(&[new]).expect("secret");
    assert_eq!(verified(&s.app, &r, &verifier).len(), 1);
    // The attempts, newest first.
    let attempts: Value = basic(
        s.http
            .get(s.url(&format!("/webhooks/{id}/attempts?count=5"))),
    )
    .json_body()
    .await;
    assert_eq!(attempts["attempts"][0]["status"], 204);
    assert_eq!(attempts["attempts"][0]["event_type"], "grant.revoked");
    let res = basic(
        s.http
            .get(s.url(&format!("/webhooks/{id}/attempts?count=0"))),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(res.status(), Status::BAD_REQUEST);
    // Another client can neither see nor touch it.
    s.app
        .finx
        .register_client(finx_core::NewClient {
            id: Some("other-app".into()),
            name: "Other".into(),
            redirect_uris: vec![REDIRECT.into()],
            scope: None,
            secret: Some(
                finx_domain::secret::ClientSecret::from_presented("fxs_other-secret-0123456789")
                    .expect("secret"),
            ),
        })
        .await
        .expect("register");
    let other = |req: reqwest::RequestBuilder| {
        req.basic_auth("other-app", Some("fxs_other-secret-0123456789"))
    };
    let theirs: Value = other(s.http.get(s.url("/webhooks"))).json_body().await;
    assert_eq!(theirs["webhooks"], json!([]));
    for res in [
        other(s.http.delete(s.url(&format!("/webhooks/{id}")))),
        other(s.http.post(s.url(&format!("/webhooks/{id}/rotate")))),
        other(s.http.get(s.url(&format!("/webhooks/{id}/attempts")))),
    ] {
        assert_eq!(res.send().await.expect("send").status(), Status::NOT_FOUND);
    }
    // Removed by its owner.
    let res = basic(s.http.delete(s.url(&format!("/webhooks/{id}"))))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), Status::NO_CONTENT);
    let res = basic(s.http.delete(s.url(&format!("/webhooks/{id}"))))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), Status::NOT_FOUND);
}

#[tokio::test]
async fn a_consent_says_it_is_expiring_once_and_expired_when_its_last_day_is_over() {
    let s = Served::start(App::new().await).await;
    let r = Receiver::start().await;
    let endpoint = endpoint(&s, &r).await;
    let verifier = WebhookVerifier::new(&endpoint.secret.expose()).expect("secret");
    ongoing_tokens(&s, "user-3").await;
    // Live through the consent's 90 days and two more, running the scheduled syncs as
    // they come due and sending the webhooks.
    let end = s.app.clock.now() + TimeDelta::days(92);
    let mut events = Vec::new();
    while s.app.clock.now() < end {
        for j in s.app.finx.claim_syncs(10).await.expect("claim") {
            s.app.finx.run_sync(&j).await.expect("sync");
        }
        deliver_due(&s.app).await;
        events.extend(verified(&s.app, &r, &verifier));
        r.got.lock().expect("lock").clear();
        // Hourly: a sync runs within the hour of its slot (the server looks every 0.5 s).
        s.app.clock.advance(TimeDelta::hours(1));
    }
    let count = |t: &str| events.iter().filter(|e| e.event_type == t).count();
    assert_eq!(count("flow.completed"), 1);
    assert_eq!(count("access.consent_expiring"), 1, "once per consent");
    assert_eq!(count("access.consent_expired"), 1);
    assert_eq!(count("access.sync_failed"), 0);
    // Four syncs a day for the consent's 90 days (the first day's slots may have passed).
    let synced = count("access.synced");
    assert!((86 * 4..=90 * 4).contains(&synced), "{synced} syncs");
    let expiring = events
        .iter()
        .find(|e| e.event_type == "access.consent_expiring")
        .expect("expiring");
    let expired = events
        .iter()
        .find(|e| e.event_type == "access.consent_expired")
        .expect("expired");
    assert_eq!(expiring.data["valid_until"], expired.data["valid_until"]);
    assert_eq!(expired.data["error"]["code"], 10020);
    // Expiring came a week before the end, expired after it: the order is right.
    let at = |e: &finx_client::WebhookEvent| {
        chrono::DateTime::parse_from_rfc3339(&e.timestamp).expect("rfc 3339")
    };
    let gap = at(expired) - at(expiring);
    assert!(
        (TimeDelta::days(6)..=TimeDelta::days(8)).contains(&gap),
        "{gap}"
    );
    // And nothing more is planned for the access, however long we wait.
    s.app.clock.advance(TimeDelta::days(30));
    let later = s.app.finx.claim_syncs(10).await.expect("claim");
    assert!(
        later.is_empty(),
        "a sync after the consent's end: {later:?}"
    );
}

#[tokio::test]
async fn a_flow_cancelled_or_left_to_expire_says_so() {
    let s = Served::start(App::new().await).await;
    let r = Receiver::start().await;
    let e = endpoint(&s, &r).await;
    let verifier = WebhookVerifier::new(&e.secret.expose()).expect("secret");
    let link = |s: &Served| {
        s.http
            .post(s.url("/onetime/access"))
            .basic_auth("demo-app", Some(DEMO_SECRET))
            .json(&json!({ "redirect_uri": REDIRECT }))
    };
    // Left alone past its link's lifetime: the next look at it ends it.
    let left = link(&s).json_body().await;
    s.app.clock.advance(TimeDelta::hours(2));
    let page = s
        .http
        .get(left["location"].as_str().expect("location"))
        .send()
        .await
        .expect("send");
    assert!(page.status().is_client_error() || page.status().is_success());
    // Cancelled by the end user.
    let cancelled = link(&s).json_body().await;
    let flow = FlowId::parse(cancelled["id"].as_str().expect("id")).expect("flow id");
    s.app.finx.cancel(flow).await.expect("cancel");
    assert_eq!(deliver_due(&s.app).await, 2);
    let events = verified(&s.app, &r, &verifier);
    let reason_of = |id: &Value| {
        events
            .iter()
            .find(|e| e.data["flow_id"] == *id)
            .map(|e| (e.event_type.clone(), e.data["reason"].clone()))
    };
    assert_eq!(
        reason_of(&left["id"]),
        Some(("flow.failed".to_owned(), json!("link_expired")))
    );
    assert_eq!(
        reason_of(&cancelled["id"]),
        Some(("flow.failed".to_owned(), json!("cancelled")))
    );
}

#[tokio::test]
async fn a_failed_sync_says_so_with_its_finx_error_and_no_bank_text() {
    let s = Served::start(App::new().await).await;
    let r = Receiver::start().await;
    let endpoint = endpoint(&s, &r).await;
    let verifier = WebhookVerifier::new(&endpoint.secret.expose()).expect("secret");
    // The throttled login's bank answers ACCESS_EXCEEDED after the consent's first read.
    let t = finx_tests::fixtures::connect_ongoing(&s, "throttled", "user-9").await;
    let bearer = t["access_token"].as_str().expect("token").to_owned();
    assert_eq!(deliver_due(&s.app).await, 1, "flow.completed");
    let (access_id, sync) = sync_now(&s, &bearer).await;
    assert_eq!(sync["status"], "failed", "{sync}");
    assert_eq!(deliver_due(&s.app).await, 1, "then the failure");
    let events = verified(&s.app, &r, &verifier);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["flow.completed", "access.sync_failed"]);
    let failed = &events[1].data;
    assert_eq!(failed["access_id"], access_id.as_str());
    assert_eq!(failed["user_id"], "user-9");
    assert_eq!(failed["sync_id"], sync["sync_id"]);
    assert_eq!(failed["error"]["code"], 20001);
    assert_eq!(failed["error"]["name"], "bank_rate_limited");
    assert_eq!(failed["error"], sync["error"], "the sync resource's error");
    let (_, body) = r.received().pop().expect("received");
    let text = String::from_utf8_lossy(&body).to_lowercase();
    assert!(!text.contains("access_exceeded"), "no bank text: {text}");
}
