//! The API over real HTTP on loopback: the guide's three calls, every endpoint, every error
//! path, and the headers that come with them.

use finx_domain::ids::FlowId;
use finx_ports::BankCredentials;
use finx_tests::fixtures::{App, DEMO_SECRET, LINK_KEY, REDIRECT, Served};
use reqwest::StatusCode;
use serde_json::{Value, json};

const CLIENT: &str = "demo-app";

async fn served() -> Served {
    Served::start(App::new().await).await
}

/// Asserts the finX error shape and returns (code, data).
fn finx_error(body: &Value) -> (u64, Value) {
    let e = &body["error"];
    assert!(e["code"].is_u64(), "finX shape: {body}");
    assert!(
        e["group"].is_string() && e["description"].is_string() && e["data"].is_object(),
        "finX shape: {body}"
    );
    (e["code"].as_u64().unwrap_or_default(), e["data"].clone())
}

async fn create_link(s: &Served, body: Value) -> reqwest::Response {
    s.http
        .post(s.url("/onetime/access"))
        .basic_auth(CLIENT, Some(DEMO_SECRET))
        .json(&body)
        .send()
        .await
        .expect("send")
}

/// Steps 1 and 2 of the guide: a link over HTTP, the widget through the core, the code
/// exchanged over HTTP. Returns the token response.
async fn tokens(s: &Served, scope: Option<&str>) -> Value {
    let mut body = json!({ "redirect_uri": REDIRECT, "state": "7fe78733", "accounts": [{ "id": "DE82900948150000002881" }] });
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    let res = create_link(s, body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let created: Value = res.json().await.expect("json");
    let location = url::Url::parse(created["location"].as_str().expect("location")).expect("url");
    assert!(location.as_str().starts_with(s.url("/widget").as_str()));
    let token = location
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("token");
    let flow = finx_http::link::verify(
        &finx_http::LinkKey::new(LINK_KEY.to_vec()),
        &token,
        s.app.finx.now(),
    )
    .expect("a valid link");
    assert_eq!(flow.to_string(), created["id"].as_str().expect("id"));
    let url = widget(s, flow).await;
    assert_eq!(
        url.query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .as_deref(),
        Some("7fe78733")
    );
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let res = s
        .http
        .post(s.url("/auth/token"))
        .basic_auth(CLIENT, Some(DEMO_SECRET))
        .json(
            &json!({ "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT }),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.expect("json")
}

/// The widget's steps, through the core until the widget is served.
async fn widget(s: &Served, flow: FlowId) -> url::Url {
    let f = &s.app.finx;
    f.submit_credentials(
        flow,
        &BankCredentials {
            user: "demo".into(),
            secret: "demo".into(),
        },
    )
    .await
    .expect("login");
    f.choose_method(flow, "push").await.expect("method");
    let view = f.submit_tan(flow, "123456").await.expect("tan");
    let chosen = view
        .preselected()
        .into_iter()
        .map(|a| a.external_id.clone())
        .collect();
    f.choose_accounts(flow, chosen).await.expect("choose");
    f.complete(flow).await.expect("complete")
}

async fn get(s: &Served, path: &str, token: &str) -> (StatusCode, Value) {
    let res = s
        .http
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_guide_runs_over_http() {
    let s = served().await;
    let t = tokens(&s, None).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "accounts=ro balance=ro transactions=ro offline");
    let access = t["access_token"].as_str().expect("access token");

    let (status, accounts) = get(&s, "/rest/accounts", access).await;
    assert_eq!(status, StatusCode::OK);
    let list = accounts["accounts"].as_array().expect("accounts");
    assert_eq!(list.len(), 1);
    let account = &list[0];
    assert_eq!(account["iban"], "DE82900948150000002881");
    assert_eq!(account["type"], "Giro account");
    assert!(
        account["balance"]["balance"].is_number(),
        "amounts are JSON numbers: {account}"
    );
    let id = account["account_id"].as_str().expect("id");

    let (status, one) = get(&s, &format!("/rest/accounts/{id}"), access).await;
    assert_eq!((status, &one["account_id"]), (StatusCode::OK, &json!(id)));
    let (status, balance) = get(&s, &format!("/rest/accounts/{id}/balance"), access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(balance["currency"], "EUR");

    let (status, page) = get(
        &s,
        "/rest/transactions?count=10&sort=asc&include_pending=true",
        access,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let txs = page["transactions"].as_array().expect("transactions");
    assert_eq!(txs.len(), 10);
    let dates: Vec<&str> = txs
        .iter()
        .map(|t| t["booked_at"].as_str().expect("date"))
        .collect();
    assert!(
        dates.windows(2).all(|w| w[0] <= w[1]),
        "ascending: {dates:?}"
    );
    for t in txs {
        assert!(
            t["amount"].is_number()
                && t["transaction_id"]
                    .as_str()
                    .is_some_and(|i| i.starts_with('T')),
            "{t}"
        );
    }
    let (status, same) = get(
        &s,
        &format!("/rest/accounts/{id}/transactions?count=10&sort=asc&include_pending=true"),
        access,
    )
    .await;
    assert_eq!(
        (status, &same["transactions"]),
        (StatusCode::OK, &page["transactions"])
    );
    let tid = txs[0]["transaction_id"].as_str().expect("id");
    let (status, one) = get(&s, &format!("/rest/transactions/{tid}"), access).await;
    assert_eq!((status, &one), (StatusCode::OK, &txs[0]));

    // A refresh with a standard form request and client credentials in the body.
    let res = s
        .http
        .post(s.url("/auth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                t["refresh_token"].as_str().expect("refresh"),
            ),
            ("client_id", CLIENT),
            ("client_secret", DEMO_SECRET),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let next: Value = res.json().await.expect("json");
    assert_ne!(next["refresh_token"], t["refresh_token"]);

    // Revocation (RFC 7009): the refresh token revokes the grant.
    let res = s
        .http
        .post(s.url("/auth/revoke"))
        .basic_auth(CLIENT, Some(DEMO_SECRET))
        .form(&[
            ("token", next["refresh_token"].as_str().expect("refresh")),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let (status, body) = get(
        &s,
        "/rest/accounts",
        next["access_token"].as_str().expect("access"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(finx_error(&body).0, 1003);
}

#[tokio::test]
async fn creating_a_link_refuses_bad_input_with_the_field_named() {
    let s = served().await;
    let cases = [
        (
            json!({ "redirect_uri": "https://evil.example/cb" }),
            "redirect_uri",
        ),
        (json!({}), "redirect_uri"),
        (
            json!({ "redirect_uri": REDIRECT, "sync_period": 1000 }),
            "sync_period",
        ),
        (
            json!({ "redirect_uri": REDIRECT, "sync_period": "90" }),
            "sync_period",
        ),
        (
            json!({ "redirect_uri": REDIRECT, "surprise": true }),
            "surprise",
        ),
        (
            json!({ "redirect_uri": REDIRECT, "accounts": [{ "id": "DE00123" }] }),
            "accounts",
        ),
        (
            json!({ "redirect_uri": REDIRECT, "accounts": [{ "iban": "DE82900948150000002881" }] }),
            "accounts[0].iban",
        ),
        (json!({ "redirect_uri": REDIRECT, "state": "" }), "state"),
        (
            json!({ "redirect_uri": REDIRECT, "scope": "everything" }),
            "scope",
        ),
        (
            json!({ "redirect_uri": REDIRECT, "provider_id": "no-such-bank" }),
            "provider_id",
        ),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in cases {
        let res = create_link(&s, body.clone()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let (code, data) = finx_error(&res.json().await.expect("json"));
        assert_eq!(code, 1000, "{body}");
        assert!(
            data.get(field).is_some(),
            "{body}: field {field} named in {data}"
        );
    }
}

#[tokio::test]
async fn creating_a_link_refuses_bad_clients_media_types_and_bodies() {
    let s = served().await;
    let url = s.url("/onetime/access");
    let body = json!({ "redirect_uri": REDIRECT }).to_string();
    let send = |req: reqwest::RequestBuilder| async move { req.send().await.expect("send") };

    let res = send(
        s.http
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body.clone()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Basic")
    );
    assert_eq!(finx_error(&res.json().await.expect("json")).0, 1004);

    let res = send(
        s.http
            .post(url.clone())
            .basic_auth(CLIENT, Some("fxs_wrong"))
            .header("content-type", "application/json")
            .body(body.clone()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = send(
        s.http
            .post(url.clone())
            .basic_auth(CLIENT, Some(DEMO_SECRET))
            .header("content-type", "text/plain")
            .body(body.clone()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    finx_error(&res.json().await.expect("json"));

    let res = send(
        s.http
            .post(url.clone())
            .basic_auth(CLIENT, Some(DEMO_SECRET))
            .header("content-type", "application/json")
            .body(vec![b'{', 0xff, b'}']),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    finx_error(&res.json().await.expect("json"));

    let huge = format!(
        "{{\"redirect_uri\":\"{REDIRECT}\",\"state\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let res = send(
        s.http
            .post(url.clone())
            .basic_auth(CLIENT, Some(DEMO_SECRET))
            .header("content-type", "application/json")
            .body(huge),
    )
    .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(finx_error(&res.json().await.expect("json")).0, 1009);
}

async fn token_call(s: &Served, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.expect("send");
    let status = res.status();
    assert_eq!(
        res.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("no-store"),
        "{status}"
    );
    let _ = s;
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_token_endpoint_speaks_rfc_6749_errors() {
    let s = served().await;
    let url = s.url("/auth/token");
    let basic = || {
        s.http
            .post(url.clone())
            .basic_auth(CLIENT, Some(DEMO_SECRET))
    };
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            basic().form(&[("code", "x")]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic().form(&[("grant_type", "password")]),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            basic().form(&[
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT),
            ]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic().form(&[
                ("grant_type", "authorization_code"),
                ("code", "fxc_nope"),
                ("redirect_uri", REDIRECT),
            ]),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            basic().form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "fxr_nope"),
            ]),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            s.http
                .post(url.clone())
                .form(&[("grant_type", "refresh_token"), ("refresh_token", "fxr_x")]),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            s.http
                .post(url.clone())
                .basic_auth(CLIENT, Some("fxs_wrong"))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            basic().form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", CLIENT),
                ("client_secret", DEMO_SECRET),
            ]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic()
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=refresh_token&grant_type=refresh_token"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic()
                .header("content-type", "text/plain")
                .body("grant_type=refresh_token"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic().json(&json!({ "grant_type": "refresh_token", "extra": 1 })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (i, (req, status, error)) in cases.into_iter().enumerate() {
        let (got, body) = token_call(&s, req).await;
        assert_eq!(got, status, "case {i}: {body}");
        assert_eq!(body["error"], error, "case {i}: {body}");
        assert!(body["error_description"].is_string(), "case {i}: {body}");
    }
    // Unknown form parameters are ignored (RFC 6749 §3.2), and a wider scope is invalid_scope.
    let t = tokens(&s, Some("accounts=ro offline")).await;
    let (status, body) = token_call(
        &s,
        basic().form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                t["refresh_token"].as_str().expect("refresh"),
            ),
            ("scope", "accounts=ro transactions=ro"),
            ("unknown_extension", "x"),
        ]),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_scope")),
        "{body}"
    );
}

#[tokio::test]
async fn a_replayed_code_is_invalid_grant_and_kills_the_tokens() {
    let s = served().await;
    let res = create_link(&s, json!({ "redirect_uri": REDIRECT })).await;
    let created: Value = res.json().await.expect("json");
    let flow = FlowId::parse(created["id"].as_str().expect("id")).expect("flow id");
    s.app
        .finx
        .select_bank(flow, "sandbox-90094815")
        .await
        .expect("select");
    let url = widget(&s, flow).await;
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let exchange = || {
        s.http
            .post(s.url("/auth/token"))
            .basic_auth(CLIENT, Some(DEMO_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
            ])
    };
    let (status, first) = token_call(&s, exchange()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = token_call(&s, exchange()).await;
    assert_eq!(
        (status, &again["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
    let (status, _) = get(
        &s,
        "/rest/accounts",
        first["access_token"].as_str().expect("access"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_data_endpoints_check_tokens_scopes_and_queries() {
    let s = served().await;
    let t = tokens(&s, None).await;
    let access = t["access_token"].as_str().expect("access");

    let res = s
        .http
        .get(s.url("/rest/accounts"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer")
    );
    let res = s
        .http
        .get(s.url("/rest/accounts"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = get(&s, "/rest/accounts", "fxa_forged").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    for (query, field) in [
        ("count=0", "count"),
        ("count=abc", "count"),
        ("offset=-1", "offset"),
        ("sort=sideways", "sort"),
        ("since=2026-02-30", "since"),
        ("include_pending=maybe", "include_pending"),
        ("cont=10", "cont"),
        ("count=1&count=2", "count"),
        ("filter=purpose", "filter"),
        ("since_type=later", "since_type"),
        ("accounts=", "accounts"),
        ("since=%FF", "since"),
    ] {
        let (status, body) = get(&s, &format!("/rest/transactions?{query}"), access).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let (code, data) = finx_error(&body);
        assert_eq!(code, 1000, "{query}");
        assert!(data.get(field).is_some(), "{query}: {data}");
    }
    let (status, body) = get(&s, "/rest/transactions?accounts=Anotmine", access).await;
    assert_eq!((status, finx_error(&body).0), (StatusCode::NOT_FOUND, 1002));
    for path in [
        "/rest/accounts/Anotmine",
        "/rest/accounts/not-an-id/balance",
        "/rest/transactions/Tnotmine",
        "/rest/accounts/%FF",
    ] {
        let (status, body) = get(&s, path, access).await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
            "{path}: {status}"
        );
        finx_error(&body);
    }

    let narrow = tokens(&s, Some("accounts=ro")).await;
    let narrow = narrow["access_token"].as_str().expect("access");
    let (status, body) = get(&s, "/rest/transactions", narrow).await;
    assert_eq!((status, finx_error(&body).0), (StatusCode::FORBIDDEN, 1007));
    let (status, body) = get(&s, "/rest/accounts", narrow).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["accounts"][0]["balance"].is_null(),
        "no balance=ro, no balance"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_finx_shape() {
    let s = served().await;
    let res = s.http.get(s.url("/nope")).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(finx_error(&res.json().await.expect("json")).0, 1002);
    let res = s
        .http
        .delete(s.url("/rest/accounts"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(finx_error(&res.json().await.expect("json")).0, 1005);
    let res = s
        .http
        .get(s.url("/onetime/access"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn every_response_has_a_request_id_and_echoes_the_callers() {
    let s = served().await;
    let res = s.http.get(s.url("/healthz")).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let generated = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let res = s
        .http
        .get(s.url("/nope"))
        .header("x-request-id", "my-trace-42")
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["x-request-id"], "my-trace-42");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let res = s.http.get(s.url("/readyz")).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_openapi_document_parses_and_every_operation_in_it_is_served() {
    let s = served().await;
    let text = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    let spec = oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    let paths = spec.paths.clone().unwrap_or_default();
    assert!(paths.len() >= 11, "{} paths", paths.len());
    for (path, item) in &paths {
        let concrete = path
            .replace("{account_id}", "Aabc")
            .replace("{transaction_id}", "Tabc");
        for (method, _) in item.methods() {
            let res = s
                .http
                .request(method.clone(), s.url(&concrete))
                .send()
                .await
                .expect("send");
            assert_ne!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );

            let body: Value = res.json().await.unwrap_or(Value::Null);
            let missing_route = body["error"]["description"] == "No such endpoint."
                || body["error"]["code"] == 1005;
            assert!(
                !missing_route,
                "{method} {path} is documented but not routed"
            );
        }
    }
    // And every route is documented.
    for p in [
        "/onetime/access",
        "/auth/token",
        "/auth/revoke",
        "/rest/accounts",
        "/rest/transactions",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "{p} undocumented");
    }
    // One account's transactions take the same query as /rest/transactions (but
    // `accounts`), amounts are exact decimals, and the version is Cargo's.
    let raw: Value = serde_json::from_str(&text).expect("json");
    let params: Vec<&str> =
        raw["paths"]["/rest/accounts/{account_id}/transactions"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
    for q in [
        "count",
        "offset",
        "sort",
        "since",
        "until",
        "since_type",
        "include_pending",
        "filter",
    ] {
        assert!(params.contains(&q), "{q} missing from {params:?}");
    }
    assert_eq!(
        raw["components"]["schemas"]["TransactionDto"]["properties"]["amount"]["format"],
        "decimal"
    );
    assert_eq!(raw["info"]["version"], env!("CARGO_PKG_VERSION"));
    // Both transaction endpoints document the same query (`accounts` aside), with the
    // closed sets as enums and the page size's bounds.
    let names = |path: &str| -> Vec<Value> {
        raw["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter(|p| p["in"] == "query" && p["name"] != "accounts")
            .cloned()
            .collect()
    };
    assert_eq!(
        names("/rest/transactions"),
        names("/rest/accounts/{account_id}/transactions")
    );
    let param = |name: &str| {
        names("/rest/transactions")
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(param("sort")["schema"]["enum"], json!(["asc", "desc"]));
    assert_eq!(
        param("since_type")["schema"]["enum"],
        json!(["booked", "created", "modified"])
    );
    assert_eq!(param("count")["schema"]["maximum"], 1000);
    // Closed sets are enums, taken from the domain's lists.
    let schemas = &raw["components"]["schemas"];
    let set =
        |schema: &str, property: &str| schemas[schema]["properties"][property]["enum"].clone();
    assert_eq!(
        set("AccountDto", "type"),
        json!([
            "Giro account",
            "Savings account",
            "Credit card",
            "Loan account",
            "Depot",
            "Unknown"
        ])
    );
    assert_eq!(
        set("TransactionDto", "type").as_array().map(Vec::len),
        Some(8)
    );
    assert_eq!(
        set("AccessDto", "status"),
        json!(["valid", "expiring", "expired", "revoked"])
    );
    assert_eq!(
        set("SyncDto", "status"),
        json!(["queued", "running", "succeeded", "failed"])
    );
    assert_eq!(set("SyncDto", "kind"), json!(["scheduled", "manual"]));
    assert_eq!(set("BalanceDto", "status"), json!(["booked", "available"]));
    assert_eq!(
        set("TokenBody", "grant_type"),
        json!(["authorization_code", "refresh_token"])
    );
    assert!(
        set("OAuthErrorBody", "error")
            .as_array()
            .is_some_and(|e| e.contains(&json!("invalid_grant")))
    );
    assert_eq!(set("WebhookDto", "status"), json!(["enabled", "disabled"]));
    assert_eq!(set("ErrorRef", "name").as_array().map(Vec::len), Some(6));
    // Every operation documents 503, and every one a client authenticates for, 429; both
    // with Retry-After and the finX error shape.
    for (path, item) in raw["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let answers = &op["responses"];
            assert_eq!(
                answers["503"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
            if path != "/readyz" {
                assert!(
                    answers["503"]["headers"]["Retry-After"].is_object(),
                    "{method} {path}"
                );
            }
            let by_client = op["security"].to_string().contains("client_basic");
            if by_client || path.starts_with("/auth/") {
                assert!(answers["429"].is_object(), "{method} {path} lacks 429");
            }
        }
    }
    // Links lead from an answer to the calls it makes possible.
    let link = &raw["paths"]["/rest/accounts"]["get"]["responses"]["200"]["links"]["account"];
    assert_eq!(link["operationId"], "account");
    assert_eq!(
        link["parameters"]["account_id"],
        "$response.body#/accounts/0/account_id"
    );
    let operation_ids: Vec<&str> = raw["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("item").values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let mut links = 0;
    for item in raw["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("item").values() {
            for answer in op["responses"].as_object().expect("responses").values() {
                for l in answer["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.values())
                {
                    let target = l["operationId"].as_str().expect("operationId");
                    assert!(operation_ids.contains(&target), "a link to {target}");
                    links += 1;
                }
            }
        }
    }
    assert_eq!(links, 14, "every link is in the document");
    assert!(
        set("TransactionDto", "category_source")
            .as_array()
            .is_some_and(|v| v.contains(&json!("counterparty")) && v.contains(&Value::Null)),
        "a nullable closed set also takes null"
    );
    assert!(
        set("RuleBody", "category")
            .as_array()
            .is_some_and(|v| v.contains(&json!("food.groceries")))
    );
}

#[tokio::test]
async fn the_demo_callback_shows_the_code_escaped() {
    let s = served().await;
    let res = s
        .http
        .get(s.url("/demo/callback?code=fxc_abc&state=%3Cscript%3E"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("text");
    assert!(html.contains("fxc_abc"));
    assert!(
        html.contains("&lt;script&gt;") && !html.contains("<script>"),
        "values are escaped"
    );
    assert!(
        html.contains(&format!("curl -s -u demo-app:{DEMO_SECRET} ")),
        "the next command carries the demo client's real credentials: {html}"
    );
    assert!(!html.contains("CLIENT_SECRET"));
}

#[tokio::test]
async fn a_client_id_beside_basic_must_name_the_same_client() {
    let s = served().await;
    let send = |id: &'static str| {
        s.http
            .post(s.url("/auth/token"))
            .basic_auth(CLIENT, Some(DEMO_SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "fxr_unknown"),
                ("client_id", id),
            ])
            .send()
    };
    let same: Value = send(CLIENT)
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        same["error"], "invalid_grant",
        "authenticated, then the token is judged: {same}"
    );
    let other = send("someone-else").await.expect("send");
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        other.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );
}

/// `/docs`: Swagger UI from the binary itself. Every asset the page names is on this server
/// and answers, the page reads finX's own `/openapi.json`, and no other host is named (the
/// server may run offline; the online validator is off).
#[tokio::test]
async fn the_docs_page_is_served_from_the_binary_and_names_no_other_host() {
    let s = served().await;
    let page = s.http.get(s.url("/docs/")).send().await.expect("send");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html.as_str();
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let value = rest.split('"').next().unwrap_or_default().to_owned();
            assert!(!value.contains("//"), "an asset from another host: {value}");
            assets.push(value);
        }
    }
    assert!(assets.len() >= 3, "{assets:?}");
    let mut initializer = String::new();
    for a in &assets {
        let url = s.url("/docs/").join(a).expect("asset URL");
        let res = s.http.get(url.clone()).send().await.expect("asset");
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        let body = res.text().await.expect("asset body");
        assert!(!body.is_empty(), "{url}");
        if a.contains("initializer") {
            initializer = body;
        }
    }
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    let compact: String = initializer.split_whitespace().collect();
    assert!(
        compact.contains("\"validatorUrl\":\"none\""),
        "{initializer}"
    );
    assert!(!initializer.contains("https://"), "{initializer}");
}
