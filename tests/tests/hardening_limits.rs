//! Abuse: brute-forcing client secrets and hammering the token endpoint meet 429s with
//! Retry-After; oversized requests are refused.

use finx_http::limit::{Rate, RateLimits};
use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT, Served};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn tight() -> RateLimits {
    RateLimits {
        token_per_ip: Rate {
            burst: 1000,
            per_minute: 60_000,
        },
        token_per_client: Rate {
            burst: 4,
            per_minute: 6,
        },
        auth_failures_per_ip: Rate {
            burst: 5,
            per_minute: 6,
        },
        auth_failures_per_ip_and_client: Rate {
            burst: 100,
            per_minute: 60,
        },
    }
}

async fn assert_throttled(res: reqwest::Response) {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], 1021, "{body}");
}

#[tokio::test]
async fn guessing_client_secrets_is_cut_off_before_the_secret_is_checked() {
    let s = Served::start_with(App::new().await, tight()).await;
    let guess = |secret: &'static str| {
        s.http
            .post(s.url("/onetime/access"))
            .basic_auth("demo-app", Some(secret))
            .json(&json!({ "redirect_uri": REDIRECT }))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(
            guess("fxs_guess").await.expect("send").status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_throttled(guess("fxs_guess").await.expect("send")).await;
    // From this IP even the right secret waits: the budget protects against guessing.
    assert_throttled(guess(DEMO_SECRET).await.expect("send")).await;
    // The token endpoint shares the budget.
    let res = s
        .http
        .post(s.url("/auth/token"))
        .basic_auth("demo-app", Some("fxs_guess"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .expect("send");
    assert_throttled(res).await;
}

#[tokio::test]
async fn the_token_endpoint_is_limited_per_client() {
    let s = Served::start_with(App::new().await, tight()).await;
    let call = || {
        s.http
            .post(s.url("/auth/token"))
            .basic_auth("demo-app", Some(DEMO_SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "fxr_unknown"),
            ])
            .send()
    };
    for _ in 0..4 {
        assert_eq!(
            call().await.expect("send").status(),
            StatusCode::BAD_REQUEST,
            "invalid_grant, but counted"
        );
    }
    assert_throttled(call().await.expect("send")).await;
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_refused() {
    let s = Served::start(App::new().await).await;
    let res = s
        .http
        .get(s.url("/healthz"))
        .header("x-padding", "x".repeat(200_000))
        .send()
        .await;
    match res {
        Ok(r) => assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        // hyper itself closes the connection on headers past its buffer: refused either way.
        Err(e) => assert!(e.is_request() || e.is_connect(), "{e}"),
    }
    let res = s
        .http
        .get(s.url("/healthz"))
        .header("x-padding", "x".repeat(20_000))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let res = s
        .http
        .get(format!(
            "{}rest/transactions?filter=purpose:{}",
            s.base,
            "y".repeat(10_000)
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::URI_TOO_LONG);
    let big = "x".repeat(200_000);
    // RFC 6749 §5.2 on the token endpoint: 400 invalid_request; elsewhere 413.
    let res = s
        .http
        .post(s.url("/auth/token"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .form(&[("grant_type", big.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );
    let res = s
        .http
        .post(s.url("/onetime/access"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // And the server still serves.
    assert_eq!(
        s.http
            .get(s.url("/healthz"))
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::OK
    );
}
