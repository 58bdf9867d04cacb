//! The return route from the bank's own pages, `/widget/callback`, over real HTTP: it
//! resumes only the flow it was made for, only in the browser that holds that flow, and
//! only once. Also the redirect and decoupled banks walked with plain HTTP.

use finx_tests::fixtures::{
    App, DEMO_SECRET, REDIRECT, Served, approve_at_bank, at_the_bank, bank_link_of, browser,
    page_text, unescape, walk_widget,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn link(s: &Served, provider: &str) -> String {
    link_and_id(s, provider).await.0
}

/// A widget link with the bank fixed, and its flow's id.
async fn link_and_id(s: &Served, provider: &str) -> (String, finx_domain::ids::FlowId) {
    let v: Value = s
        .http
        .post(s.url("/onetime/access"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(&json!({ "redirect_uri": REDIRECT, "state": "s1", "provider_id": provider }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    (
        v["location"].as_str().expect("location").to_owned(),
        finx_domain::ids::FlowId::parse(v["id"].as_str().expect("id")).expect("flow id"),
    )
}

/// Opens `location` in `me` twice (the first visit sets the cookie, the second binds the
/// flow) and returns the bank's page the widget links to.
async fn bank_url(me: &reqwest::Client, location: &str) -> String {
    me.get(location).send().await.expect("open");
    bank_link_of(&page_text(me, location).await)
}

#[tokio::test]
async fn the_redirect_bank_walked_over_http_ends_with_a_code() {
    let s = Served::start(App::new().await).await;
    let location = link(&s, "sandbox-90094816").await;
    let back = walk_widget(&s.http, &location, "sandbox-90094816", "demo").await;
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert!(back.query_pairs().any(|(k, _)| k == "code"));
}

#[tokio::test]
async fn a_forged_replayed_foreign_or_cookieless_return_is_refused() {
    let s = Served::start(App::new().await).await;
    let me = browser();
    let location = link(&s, "sandbox-90094816").await;
    let bank = bank_url(&me, &location).await;
    let back = approve_at_bank(&me, &bank, "demo").await;
    assert!(back.contains("/widget/callback?state="), "{back}");

    // Forged: another nonce for this flow, or garbage.
    let url = url::Url::parse(&back).expect("url");
    let state: String = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let (flow, _) = state.split_once('.').expect("flow.nonce");
    for forged in [
        format!("{flow}.fxn_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        format!("{flow}."),
        "not-a-flow.fxn_x".to_owned(),
        String::new(),
    ] {
        let mut u = s.url("/widget/callback");
        u.query_pairs_mut()
            .append_pair("state", &forged)
            .append_pair("ok", "1");
        let res = me.get(u).send().await.expect("send");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{forged}");
    }

    // The right return, from another browser (or one without cookies): refused, and the
    // flow still waits for its own browser.
    for stranger in [browser(), reqwest::Client::new()] {
        let res = stranger.get(&back).send().await.expect("send");
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let html = res.text().await.expect("html");
        assert!(!html.contains("Girokonto"), "no data for strangers");
    }

    // The right return in the right browser resumes the flow, once.
    let res = me.get(&back).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = page_text(&me, &location).await;
    assert!(page.contains("name=\"account\""), "accounts on offer");
    let replay = me.get(&back).send().await.expect("send");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "a replay");
}

#[tokio::test]
async fn a_return_for_another_flow_is_refused_in_this_browser() {
    let s = Served::start(App::new().await).await;
    let (me, other) = (browser(), browser());
    let mine = link(&s, "sandbox-90094816").await;
    let theirs = link(&s, "sandbox-90094816").await;
    bank_url(&me, &mine).await;
    let their_bank = bank_url(&other, &theirs).await;
    let their_back = approve_at_bank(&other, &their_bank, "demo").await;
    // My browser holds my flow, not theirs: their return does nothing here.
    let res = me.get(&their_back).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // It still works for them.
    let res = other.get(&their_back).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_cancel_at_the_bank_returns_to_the_customer_with_cancel_true() {
    let s = Served::start(App::new().await).await;
    let me = browser();
    let location = link(&s, "sandbox-90094816").await;
    let bank = bank_url(&me, &location).await;
    let back = approve_at_bank(&me, &bank, "redirect-cancel").await;
    assert!(back.ends_with("ok=0"), "the failure address: {back}");
    let res = me.get(&back).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = res.headers()["location"].to_str().expect("ascii");
    assert!(to.starts_with(REDIRECT), "{to}");
    assert!(
        to.contains("cancel=true") && to.contains("state=s1"),
        "{to}"
    );
}

#[tokio::test]
async fn the_decoupled_page_polls_at_the_banks_pace_and_fails_a_rejection() {
    let s = Served::start(App::new().await).await;
    let me = browser();
    let (location, flow_id) = link_and_id(&s, "sandbox-90094817").await;
    me.get(&location).send().await.expect("open");
    let html = page_text(&me, &location).await;
    let token = finx_tests::fixtures::token_of(&location);
    let csrf = finx_tests::fixtures::csrf_of(&html);
    let res = me
        .post(s.url("/widget/login"))
        .form(&[
            ("token", token.as_str()),
            ("csrf", csrf.as_str()),
            ("f_user", "decoupled-reject"),
            ("f_pin", "demo"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = page_text(&me, &location).await;
    let page = unescape(&page);
    assert!(
        page.contains("http-equiv=\"refresh\" content=\"2; url=/widget/poll?token="),
        "{page}"
    );
    let poll = s.url(&format!("/widget/poll?token={token}"));
    // Before the bank's interval: no bank call, the same page.
    let res = me.get(poll.clone()).send().await.expect("poll");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let again = page_text(&me, &location).await;
    assert!(again.contains("decoupled-text"));
    // The user declines in the app (the sandbox's scripted user does so after 3 s).
    s.app.clock.advance(chrono::TimeDelta::seconds(3));
    me.get(poll).send().await.expect("poll");
    let failed = page_text(&me, &location).await;
    assert!(failed.contains("id=\"return\""), "{failed}");
    let flow = s.app.finx.flow(flow_id).await.expect("flow");
    assert_eq!(
        flow.status,
        finx_domain::flow::FlowStatus::Failed {
            reason: finx_domain::flow::FailureReason::ScaRejected
        }
    );
}

#[tokio::test]
async fn at_the_bank_helper_works_for_nosca_without_a_tan_page() {
    let s = Served::start(App::new().await).await;
    let me = browser();
    let location = link(&s, "sandbox-90094816").await;
    let bank = bank_url(&me, &location).await;
    at_the_bank(&me, &bank, "nosca").await;
    let page = page_text(&me, &location).await;
    assert!(page.contains("name=\"account\""));
}

#[tokio::test]
async fn a_return_for_a_flow_that_awaits_none_binds_nothing_and_shows_nothing() {
    let s = Served::start(App::new().await).await;
    // A flow finished without the widget (the API, say): no browser holds it.
    let (location, flow) = link_and_id(&s, "sandbox-90094815").await;
    let _ = location;
    s.app.through_bank(flow, "nosca").await;
    let me = browser();
    me.get(s.url("/widget/static/widget.css"))
        .send()
        .await
        .expect("warm");
    let mut u = s.url("/widget/callback");
    u.query_pairs_mut()
        .append_pair(
            "state",
            &format!("{flow}.fxn_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        )
        .append_pair("ok", "1");
    let res = me
        .get(u)
        .header(
            "cookie",
            "finx_browser=fxb_someone-else-entirely-0123456789",
        )
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.headers().get("location").is_none(),
        "no way into the flow"
    );
    let stored = s.app.finx.flow(flow).await.expect("flow");
    assert!(stored.browser.is_none(), "nothing was bound");
}
