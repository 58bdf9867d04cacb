//! The widget in a real browser (headless Chromium over WebDriver): the flows an end user
//! walks, each ending with the code exchanged and transactions read over HTTP. Screenshots
//! of every step land in `target/screenshots/<test>/`.

use axum::extract::Query;
use axum::response::Html;
use axum::routing::get;
use finx_tests::browser::Browser;
use finx_tests::fixtures::{App, Served};
use serde_json::{Value, json};

const CLIENT: &str = "browser-app";
const SECRET: &str = "fxs_browser-app-secret-0123456789";

/// The customer's side: `/callback` (where the user lands) and `/host` (a page that frames
/// the widget and shows what it posts).
async fn customer() -> String {
    #[derive(serde::Deserialize)]
    struct Host {
        src: String,
    }
    let app = axum::Router::new()
        .route("/callback", get(|| async { Html("<!doctype html><title>callback</title><h1 id=landed>Back at the app</h1>") }))
        .route(
            "/host",
            get(|Query(h): Query<Host>| async move {
                let src = h.src.replace('&', "&amp;").replace('"', "&quot;");
                Html(format!(
                    "<!doctype html><title>host</title><h1>Customer app</h1>\
                     <iframe id=finx src=\"{src}\" width=400 height=700></iframe><pre id=result></pre>\
                     <script>window.addEventListener('message', function (e) {{\
                     document.getElementById('result').textContent = JSON.stringify({{ origin: e.origin, data: e.data }}); }});</script>"
                ))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

struct Setup {
    served: Served,
    customer: String,
    redirect: String,
}

async fn setup() -> Setup {
    let app = App::new().await;
    app.finx
        .register_client(finx_core::NewClient {
            id: Some(CLIENT.into()),
            name: "Browser App".into(),
            // Loopback: any port matches.
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            scope: None,
            secret: Some(
                finx_domain::secret::ClientSecret::from_presented(SECRET).expect("secret"),
            ),
        })
        .await
        .expect("register");
    let served = Served::start(app).await;
    let customer = customer().await;
    let redirect = format!("{customer}/callback");
    Setup {
        served,
        customer,
        redirect,
    }
}

impl Setup {
    async fn link(&self, extra: Value) -> String {
        let mut body = json!({ "redirect_uri": self.redirect, "state": "st-42" });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let res: Value = self
            .served
            .http
            .post(self.served.url("/onetime/access"))
            .basic_auth(CLIENT, Some(SECRET))
            .json(&body)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        res["location"]
            .as_str()
            .unwrap_or_else(|| panic!("no location: {res}"))
            .to_owned()
    }

    /// Step 2 and 3 over HTTP: the code for tokens, then transactions.
    async fn exchange_and_read(&self, code: &str) -> usize {
        let s = &self.served;
        let t: Value = s
            .http
            .post(s.url("/auth/token"))
            .basic_auth(CLIENT, Some(SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.redirect.as_str()),
            ])
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let access = t["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {t}"));
        let txs: Value = s
            .http
            .get(s.url("/rest/transactions?count=50"))
            .bearer_auth(access)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let n = txs["transactions"].as_array().map_or(0, Vec::len);
        assert!(n > 0, "transactions over HTTP: {txs}");
        n
    }
}

fn param(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Login, method choice, TAN, accounts at the embedded bank: the steps after the bank is
/// chosen.
async fn login_tan_accounts(b: &mut Browser) {
    login_method(b, "push").await;
    assert!(
        !b.text("#tan-method").await.is_empty(),
        "the SCA method is shown"
    );
    b.screenshot("tan").await;
    b.type_into("#tan", "123456").await;
    b.click("#confirm").await;
    b.find("#share").await;
    b.screenshot("accounts").await;
    b.click("#share").await;
}

/// The login form and the choice of `method`, up to the TAN page.
async fn login_method(b: &mut Browser, method: &str) {
    b.find("#f-user").await;
    b.screenshot("login").await;
    b.type_into("#f-user", "demo").await;
    b.type_into("#f-pin", "demo").await;
    b.click("#login").await;
    b.find("#choose-method").await;
    let names = b
        .execute("return Array.from(document.querySelectorAll('input[name=method]')).map(i => i.labels[0].textContent.trim()).join(',')")
        .await;
    assert_eq!(
        names, "pushTAN,chipTAN optisch,photoTAN",
        "the bank's names"
    );
    b.screenshot("method").await;
    b.click(&format!("#method-{method}")).await;
    b.click("#choose-method").await;
    b.find("#tan").await;
}

fn tmp() -> &'static str {
    env!("CARGO_TARGET_TMPDIR")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_flow_in_a_full_page() {
    let s = setup().await;
    let mut b = Browser::start("full_page", tmp()).await;
    b.goto(&s.link(json!({})).await).await;
    assert_eq!(b.text("h1").await, "Bank auswählen", "German by default");
    b.screenshot("banks").await;
    b.type_into("#q", "Sparkasse").await;
    b.click("form.search button").await;
    // The search filters: the other banks go, the Sparkasse stays.
    b.wait_gone("button.bank-choice[data-bank-code='90094815']")
        .await;
    b.find("button.bank-choice[data-bank-code='90094816']")
        .await;
    b.screenshot("search").await;
    b.click("button.bank-choice[data-bank-code='90094816']")
        .await;
    // A redirect bank: on to its own pages, and back.
    b.find("#to-bank").await;
    b.screenshot("to_bank").await;
    b.click("#to-bank").await;
    b.find("#bank-login").await;
    assert!(b.url().await.contains("/sandbox-bank/authorise/"));
    b.screenshot("bank_login").await;
    b.type_into("#user", "demo").await;
    b.type_into("#pin", "demo").await;
    b.click("#bank-submit").await;
    b.find("#bank-tan").await;
    b.screenshot("bank_tan").await;
    b.type_into("#tan", "123456").await;
    b.click("#bank-submit").await;
    b.find("#share").await;
    b.screenshot("accounts").await;
    b.click("#share").await;
    let url = b.wait_for_url(&s.redirect).await;
    b.screenshot("callback").await;
    assert_eq!(param(&url, "success").as_deref(), Some("true"));
    assert_eq!(param(&url, "state").as_deref(), Some("st-42"));
    assert!(param(&url, "flow_id").is_some());
    s.exchange_and_read(&param(&url, "code").expect("code"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iban_skips_bank_selection() {
    let s = setup().await;
    let mut b = Browser::start("iban_prefilled", tmp()).await;
    b.goto(
        &s.link(json!({ "accounts": [{ "id": "DE82900948150000002881" }] }))
            .await,
    )
    .await;
    assert_eq!(b.text("#bank-name").await, "finX Sandbox Bank");
    assert!(b.has("#f-user").await, "straight to the bank login");
    login_tan_accounts(&mut b).await;
    let url = b.wait_for_url(&s.redirect).await;
    s.exchange_and_read(&param(&url, "code").expect("code"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_sends_the_user_back_with_cancel_true() {
    let s = setup().await;
    let mut b = Browser::start("cancel", tmp()).await;
    let link = s
        .link(json!({ "accounts": [{ "id": "DE82900948150000002881" }] }))
        .await;
    b.goto(&link).await;
    b.find("#f-user").await;
    b.click("#cancel").await;
    let url = b.wait_for_url(&s.redirect).await;
    b.screenshot("cancelled").await;
    assert_eq!(param(&url, "success").as_deref(), Some("false"));
    assert_eq!(param(&url, "cancel").as_deref(), Some("true"));
    assert_eq!(param(&url, "state").as_deref(), Some("st-42"));
    assert_eq!(param(&url, "code"), None);
    // The link is spent: it now shows the cancelled page, with no form to go on.
    b.goto(&link).await;
    b.find("#message").await;
    assert!(!b.has("#f-user").await);
    b.screenshot("link_after_cancel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_tan_is_explained_and_the_right_one_goes_through() {
    let s = setup().await;
    let mut b = Browser::start("wrong_tan", tmp()).await;
    b.goto(
        &s.link(json!({ "accounts": [{ "id": "DE82900948150000002881" }] }))
            .await,
    )
    .await;
    // photoTAN: the challenge is an image, shown inline.
    login_method(&mut b, "photo").await;
    assert_eq!(
        b.execute("return document.getElementById('tan-image').naturalWidth")
            .await,
        200,
        "the PNG challenge decodes in the browser"
    );
    b.screenshot("photo_tan").await;
    b.type_into("#tan", "000000").await;
    b.click("#confirm").await;
    let error = b.text("#tan-error").await;
    assert!(
        error.contains("TAN ist falsch") && error.contains('2'),
        "{error}"
    );
    assert_eq!(
        b.attribute("#tan", "aria-describedby").await.as_deref(),
        Some("tan-error"),
        "the error is tied to the field"
    );
    b.screenshot("wrong_tan").await;
    b.type_into("#tan", "123456").await;
    b.click("#confirm").await;
    b.click("#share").await;
    let url = b.wait_for_url(&s.redirect).await;
    s.exchange_and_read(&param(&url, "code").expect("code"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_english_flow_speaks_english() {
    let s = setup().await;
    let mut b = Browser::start("english", tmp()).await;
    b.goto(&s.link(json!({ "language": "en" })).await).await;
    assert_eq!(b.text("h1").await, "Choose your bank");
    assert_eq!(
        b.execute("return document.documentElement.lang").await,
        "en"
    );
    b.click("button.bank-choice[data-bank-code='90094817']")
        .await;
    b.find("#f-user").await;
    assert_eq!(b.text("h1").await, "Log in to your bank");
    b.type_into("#f-user", "demo").await;
    b.type_into("#f-pin", "wrong").await;
    b.click("#login").await;
    assert!(
        b.text("#login-error")
            .await
            .contains("Login name or PIN is wrong")
    );
    b.screenshot("wrong_pin_en").await;
    b.type_into("#f-user", "demo").await;
    b.type_into("#f-pin", "demo").await;
    b.click("#login").await;
    // A decoupled bank: the page waits, refreshing itself, until the app approves (the demo
    // user's does by itself after three seconds of the bank's time).
    b.find("#decoupled-text").await;
    assert_eq!(b.text("h1").await, "Confirm in your banking app");
    b.screenshot("decoupled_en").await;
    s.served.app.clock.advance(chrono::TimeDelta::seconds(3));
    b.find("#share").await;
    b.screenshot("accounts_en").await;
    b.click("#share").await;
    let url = b.wait_for_url(&s.redirect).await;
    s.exchange_and_read(&param(&url, "code").expect("code"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_an_iframe_the_result_is_posted_to_the_parent() {
    let s = setup().await;
    let mut b = Browser::start("iframe", tmp()).await;
    let link = s
        .link(json!({ "accounts": [{ "id": "DE82900948150000002881" }] }))
        .await;
    let host = format!(
        "{}/host?src={}",
        s.customer,
        form_urlencoded::byte_serialize(link.as_bytes()).collect::<String>()
    );
    b.goto(&host).await;
    b.enter_frame("#finx").await;
    login_tan_accounts(&mut b).await;
    b.leave_frames().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let posted = loop {
        let text = b.text("#result").await;
        if !text.is_empty() {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was posted to the parent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    b.screenshot("host_after_post").await;
    assert!(
        b.url().await.starts_with(&s.customer),
        "the top page stays the customer's"
    );
    let posted: Value = serde_json::from_str(&posted).expect("json");
    let data = &posted["data"];
    assert_eq!(
        posted["origin"],
        s.served.base.as_str().trim_end_matches('/')
    );
    assert_eq!(data["location"], s.redirect);
    assert_eq!(data["query"]["success"], true);
    assert_eq!(data["query"]["abort"], false);
    assert_eq!(data["query"]["state"], "st-42");
    assert!(
        data["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&s.redirect))
    );
    s.exchange_and_read(data["query"]["code"].as_str().expect("code"))
        .await;
}

/// At the decoupled bank, up to the page that waits for the app.
async fn to_decoupled(s: &Setup, b: &mut Browser, user: &str) -> String {
    let link = s.link(json!({ "provider_id": "sandbox-90094817" })).await;
    b.goto(&link).await;
    b.type_into("#f-user", user).await;
    b.type_into("#f-pin", "demo").await;
    b.click("#login").await;
    b.find("#decoupled-text").await;
    assert!(
        b.has("meta[http-equiv=refresh]").await,
        "it refreshes by itself"
    );
    link
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoupled_approval_in_the_bank_app_goes_through() {
    let s = setup().await;
    let mut b = Browser::start("decoupled_app", tmp()).await;
    let link = to_decoupled(&s, &mut b, "demo").await;
    b.screenshot("waiting").await;
    // The bank app, in the same browser.
    b.goto(s.served.url("/sandbox-bank/app").as_str()).await;
    b.find("button.approve").await;
    b.screenshot("bank_app").await;
    b.type_into("input[name=tan]", "123456").await;
    b.click("button.approve").await;
    assert!(b.text("#app-message").await.contains("Freigegeben"));
    b.screenshot("bank_app_approved").await;
    // Back in the widget, the next poll (once the bank's interval has passed) sees it.
    b.goto(&link).await;
    s.served.app.clock.advance(chrono::TimeDelta::seconds(2));
    b.find("#share").await;
    b.screenshot("accounts").await;
    b.click("#share").await;
    let url = b.wait_for_url(&s.redirect).await;
    s.exchange_and_read(&param(&url, "code").expect("code"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoupled_rejection_fails_with_sca_rejected() {
    let s = setup().await;
    let mut b = Browser::start("decoupled_reject", tmp()).await;
    to_decoupled(&s, &mut b, "decoupled-reject").await;
    s.served.app.clock.advance(chrono::TimeDelta::seconds(3));
    b.find("#return").await;
    assert!(b.text("#message").await.contains("abgelehnt"));
    b.screenshot("rejected").await;
    b.click("#return").await;
    let url = b.wait_for_url(&s.redirect).await;
    assert_eq!(param(&url, "success").as_deref(), Some("false"));
    assert_eq!(param(&url, "error").as_deref(), Some("sca_rejected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_at_the_bank_sends_the_user_back_with_cancel_true() {
    let s = setup().await;
    let mut b = Browser::start("cancel_at_bank", tmp()).await;
    b.goto(&s.link(json!({ "provider_id": "sandbox-90094816" })).await)
        .await;
    b.click("#to-bank").await;
    b.type_into("#user", "redirect-cancel").await;
    b.type_into("#pin", "demo").await;
    b.screenshot("bank_login").await;
    b.click("#bank-submit").await;
    let url = b.wait_for_url(&s.redirect).await;
    b.screenshot("back_at_app").await;
    assert_eq!(param(&url, "success").as_deref(), Some("false"));
    assert_eq!(param(&url, "cancel").as_deref(), Some("true"));
    assert_eq!(param(&url, "code"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_button_at_the_bank_cancels_too() {
    let s = setup().await;
    let mut b = Browser::start("cancel_button_at_bank", tmp()).await;
    b.goto(&s.link(json!({ "provider_id": "sandbox-90094816" })).await)
        .await;
    b.click("#to-bank").await;
    b.find("#bank-cancel").await;
    b.screenshot("bank_login").await;
    b.click("#bank-cancel").await;
    let url = b.wait_for_url(&s.redirect).await;
    assert_eq!(param(&url, "cancel").as_deref(), Some("true"));
}
