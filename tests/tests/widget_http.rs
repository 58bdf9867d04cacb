//! The widget's rules at the HTTP level: CSRF and origin checks, link tokens, security
//! headers, failure pages and the way back with `error=`.

use chrono::TimeDelta;
use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT, Served, csrf_of, token_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn served() -> Served {
    Served::start(App::new().await).await
}

async fn link(s: &Served, body: Value) -> String {
    let mut b = json!({ "redirect_uri": REDIRECT, "state": "s1" });
    if let (Some(b), Some(e)) = (b.as_object_mut(), body.as_object()) {
        b.extend(e.clone());
    }
    let v: Value = s
        .http
        .post(s.url("/onetime/access"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(&b)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    v["location"].as_str().expect("location").to_owned()
}

async fn page(s: &Served, location: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let res = s.http.get(location).send().await.expect("send");
    (
        res.status(),
        res.headers().clone(),
        res.text().await.expect("text"),
    )
}

async fn post(
    s: &Served,
    path: &str,
    fields: &[(&str, &str)],
    origin: Option<&str>,
) -> reqwest::Response {
    let mut req = s.http.post(s.url(path)).form(fields);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.expect("send")
}

#[tokio::test]
async fn pages_carry_a_strict_policy_framed_only_by_the_clients_origins() {
    let s = served().await;
    let location = link(&s, json!({})).await;
    let (status, headers, html) = page(&s, &location).await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("frame-ancestors 'self' https://app.example"),
        "the client's origin frames it: {csp}"
    );
    assert!(
        !csp.contains("127.0.0.1:*"),
        "no loopback unless registered: {csp}"
    );
    assert!(
        csp.contains("form-action 'self' https://app.example"),
        "{csp}"
    );
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        html.contains("<html lang=\"de\">") && html.contains("<label for=\"q\">"),
        "accessible markup"
    );
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_origin_are_refused() {
    let s = served().await;
    let location = link(&s, json!({})).await;
    let token = token_of(&location);
    let (_, _, html) = page(&s, &location).await;
    let csrf = csrf_of(&html);
    let bank = [
        ("token", token.as_str()),
        ("csrf", "0000"),
        ("institution", "sandbox-90094815"),
    ];
    assert_eq!(
        post(&s, "/widget/bank", &bank, None).await.status(),
        StatusCode::FORBIDDEN
    );
    let ok = [
        ("token", token.as_str()),
        ("csrf", csrf.as_str()),
        ("institution", "sandbox-90094815"),
    ];
    assert_eq!(
        post(&s, "/widget/bank", &ok, Some("https://evil.example"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let other = link(&s, json!({})).await;
    let (_, _, other_html) = page(&s, &other).await;
    let other_csrf = csrf_of(&other_html);
    let crossed = [
        ("token", token.as_str()),
        ("csrf", other_csrf.as_str()),
        ("institution", "sandbox-90094815"),
    ];
    assert_eq!(
        post(&s, "/widget/bank", &crossed, None).await.status(),
        StatusCode::FORBIDDEN,
        "a CSRF token is bound to its link"
    );
    let res = post(
        &s,
        "/widget/bank",
        &ok,
        Some(s.base.as_str().trim_end_matches('/')),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, _, login) = page(&s, &location).await;
    assert!(login.contains("id=\"f-user\""), "the login page follows");
}

#[tokio::test]
async fn a_forged_or_missing_link_shows_an_error_page() {
    let s = served().await;
    for url in ["/widget", "/widget?token=abc.def.ghi", "/widget?token="] {
        let (status, headers, html) = page(&s, s.url(url).as_str()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}");
        assert!(
            html.contains("ungültig") && html.contains("invalid"),
            "{url}: both languages"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .expect("ascii")
                .contains("frame-ancestors 'none'")
        );
    }
}

#[tokio::test]
async fn an_expired_link_offers_the_way_back_with_link_expired() {
    let s = served().await;
    let location = link(&s, json!({})).await;
    s.app.clock.advance(TimeDelta::minutes(61));
    let (status, _, html) = page(&s, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("abgelaufen"), "explains the expiry");
    let res = post(
        &s,
        "/widget/return",
        &[("token", &token_of(&location)), ("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        back.starts_with(REDIRECT)
            && back.contains("success=false")
            && back.contains("error=link_expired"),
        "{back}"
    );
    assert!(back.contains("state=s1"));
}

#[tokio::test]
async fn a_locked_login_fails_the_flow_and_returns_with_its_error() {
    let s = served().await;
    let location = link(
        &s,
        json!({ "accounts": [{ "id": "DE82900948150000002881" }], "language": "en" }),
    )
    .await;
    let token = token_of(&location);
    let (_, _, html) = page(&s, &location).await;
    let csrf = csrf_of(&html);
    let res = post(
        &s,
        "/widget/login",
        &[
            ("token", &token),
            ("csrf", &csrf),
            ("f_user", "locked"),
            ("f_pin", "x"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, _, failed) = page(&s, &location).await;
    assert!(
        failed.contains("locked at the bank"),
        "explained in English"
    );
    let res = post(
        &s,
        "/widget/return",
        &[("token", &token), ("csrf", &csrf)],
        None,
    )
    .await;
    let back = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        back.contains("error=account_locked") && !back.contains("cancel="),
        "{back}"
    );
}

#[tokio::test]
async fn an_unknown_bank_code_falls_back_to_bank_selection_with_a_note() {
    let s = served().await;
    let location = link(
        &s,
        json!({ "accounts": [{ "id": "DE89370400440532013000" }] }),
    )
    .await;
    let (_, _, html) = page(&s, &location).await;
    assert!(
        html.contains("class=\"note\"") && html.contains("IBAN"),
        "a note explains why"
    );
    assert!(html.contains("bank-choice"), "and the banks are listed");
}

#[tokio::test]
async fn single_selection_offers_radio_buttons_and_account_types_filter() {
    let s = served().await;
    let location =
        link(&s, json!({ "accounts": [{ "id": "DE82900948150000002881" }], "allow_multi_selection": false, "account_types": ["Credit card", "Savings account"] }))
            .await;
    let token = token_of(&location);
    let (_, _, html) = page(&s, &location).await;
    let csrf = csrf_of(&html);
    post(
        &s,
        "/widget/login",
        &[
            ("token", &token),
            ("csrf", &csrf),
            ("f_user", "nosca"),
            ("f_pin", "demo"),
        ],
        None,
    )
    .await;
    let (_, _, accounts) = page(&s, &location).await;
    assert_eq!(
        accounts.matches("type=\"radio\"").count(),
        2,
        "savings and card only, as radios"
    );
    assert!(!accounts.contains("Girokonto\n") && accounts.contains("Visa Classic"));
    let res = post(
        &s,
        "/widget/accounts",
        &[("token", &token), ("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text().await.expect("text").contains("accounts-error"),
        "choosing none is explained"
    );
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused_even_with_the_right_tokens() {
    let s = served().await;
    let location = link(&s, json!({})).await;
    let (_, _, html) = page(&s, &location).await;
    let form = [
        ("token", token_of(&location)),
        ("csrf", csrf_of(&html)),
        ("institution", "sandbox-90094815".to_owned()),
    ];
    let res = s
        .http
        .post(s.url("/widget/bank"))
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = s
        .http
        .post(s.url("/widget/bank"))
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}
