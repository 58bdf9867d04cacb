//! Enrichment over HTTP (issue 17): every transaction carries `categories` (top level first,
//! leaf last, named in the grant's language) and `category_source`, on the list, on one
//! transaction and on the feed. Real parts: the core on the memory store, the sandbox bank,
//! the widget walked over loopback HTTP.

use finx_ports::Clock;
use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT, Served, code_of, walk_widget};
use serde_json::{Value, json};

const BANK: &str = "sandbox-90094815";

/// A one-time grant of the `demo` login, its link asked for in `language`.
async fn bearer(s: &Served, language: &str) -> String {
    let link: Value = s
        .http
        .post(s.url("/onetime/access"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(&json!({ "redirect_uri": REDIRECT, "provider_id": BANK, "language": language }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let back = walk_widget(
        &s.http,
        link["location"].as_str().expect("location"),
        BANK,
        "demo",
    )
    .await;
    exchange(s, &back).await
}

async fn get(s: &Served, bearer: &str, path: &str) -> Value {
    let res = s
        .http
        .get(s.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200, "{path}");
    res.json().await.expect("json")
}

/// A request with the demo client's credentials: status and JSON body (null when none).
async fn as_client(
    s: &Served,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s
        .http
        .request(method, s.url(path))
        .basic_auth("demo-app", Some(DEMO_SECRET));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("send");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn find<'a>(txs: &'a [Value], name_part: &str) -> &'a Value {
    txs.iter()
        .find(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.to_uppercase().contains(&name_part.to_uppercase()))
        })
        .unwrap_or_else(|| panic!("no transaction of {name_part}"))
}

#[tokio::test]
async fn transactions_carry_categories_in_the_grants_language_with_what_decided() {
    let s = Served::start(App::new().await).await;
    let de = bearer(&s, "de").await;
    let en = bearer(&s, "en").await;
    let page = get(&s, &en, "/rest/transactions?count=500").await;
    let txs = page["transactions"]
        .as_array()
        .expect("transactions")
        .clone();
    assert!(txs.len() > 50, "{}", txs.len());
    // Every transaction has both fields; a category always names its source.
    let mut covered = 0;
    for t in &txs {
        let categories = t["categories"].as_array().expect("categories");
        assert!(categories.len() <= 2, "{t}");
        if categories.is_empty() {
            assert!(t["category_source"].is_null(), "{t}");
        } else {
            covered += 1;
            assert!(t["category_source"].is_string(), "{t}");
            let top = categories[0]["id"].as_str().expect("id");
            assert!(!top.contains('.'), "the top level first: {t}");
            if let Some(leaf) = categories.get(1) {
                assert!(
                    leaf["id"]
                        .as_str()
                        .is_some_and(|l| l.starts_with(&format!("{top}."))),
                    "then its leaf: {t}"
                );
            }
        }
    }
    // The sandbox's statements are German everyday life: most lines are recognised.
    assert!(
        covered * 10 >= txs.len() * 7,
        "{covered} of {} categorised",
        txs.len()
    );
    // What decides, and in which language.
    let rewe = find(&txs, "REWE");
    assert_eq!(
        rewe["categories"],
        json!([{"id": "food", "name": "Food"}, {"id": "food.groceries", "name": "Groceries"}])
    );
    assert_eq!(rewe["category_source"], "counterparty");
    let telekom = find(&txs, "Telekom");
    assert_eq!(telekom["sepa_purpose_code"], "PHON");
    assert_eq!(telekom["categories"][1]["id"], "housing.telecom");
    assert_eq!(telekom["category_source"], "purpose_code");
    let atm = txs
        .iter()
        .find(|t| t["booking_text"] == "BARGELDAUSZAHLUNG")
        .expect("a cash withdrawal");
    assert_eq!(atm["categories"][1]["id"], "cash.withdrawal", "{atm}");
    assert_eq!(atm["bank_transaction_code"], "PMNT-CCRD-CWDL");
    assert_eq!(atm["category_source"], "bank_transaction_code", "{atm}");
    // The German grant names the same categories in German.
    let german = get(&s, &de, "/rest/transactions?count=500").await;
    let german_txs = german["transactions"].as_array().expect("transactions");
    let rewe_de = find(german_txs, "REWE");
    assert_eq!(rewe_de["categories"][0]["name"], "Essen und Trinken");
    assert_eq!(rewe_de["categories"][1]["name"], "Lebensmittel");
    // One transaction, and the feed, carry the same.
    let id = rewe["transaction_id"].as_str().expect("id");
    let one = get(&s, &en, &format!("/rest/transactions/{id}")).await;
    assert_eq!(one["categories"], rewe["categories"]);
    assert_eq!(one["category_source"], "counterparty");
    let feed = get(&s, &en, "/rest/transactions/sync?count=500").await;
    let added = feed["added"].as_array().expect("added");
    let fed = added
        .iter()
        .find(|t| t["transaction_id"] == rewe["transaction_id"])
        .expect("in the feed");
    assert_eq!(fed["categories"], rewe["categories"]);
}

/// A customer's own rules win over the built-in ones, at once, and go again when deleted.
#[tokio::test]
async fn a_customers_rules_win_over_the_built_in_ones() {
    let s = Served::start(App::new().await).await;
    let en = bearer(&s, "en").await;
    let rewe_of = |page: &Value| -> Value {
        find(
            page["transactions"].as_array().expect("transactions"),
            "REWE",
        )
        .clone()
    };
    let before = rewe_of(&get(&s, &en, "/rest/transactions?count=500").await);
    assert_eq!(before["category_source"], "counterparty");
    // The tree customers write rules against.
    let (_, tree) = as_client(&s, reqwest::Method::GET, "/categories", None).await;
    let categories = tree["categories"].as_array().expect("categories");
    assert!(categories.len() > 50);
    assert!(categories.contains(&json!({
        "id": "food.groceries", "parent": "food", "name_de": "Lebensmittel", "name_en": "Groceries"
    })));
    // Bad rules are refused, naming what is wrong.
    for (body, field) in [
        (
            json!({ "category": "nope", "name_contains": "REWE" }),
            "category",
        ),
        (json!({ "category": "shopping" }), "rule"),
        (
            json!({ "category": "shopping", "name_contains": "--" }),
            "name_contains",
        ),
        (
            json!({ "category": "shopping", "min_amount": 5, "max_amount": 1 }),
            "min_amount",
        ),
    ] {
        let (status, e) = as_client(
            &s,
            reqwest::Method::POST,
            "/category-rules",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(e["error"]["data"][field].is_array(), "{body}: {e}");
    }
    // A rule for REWE, debits only.
    let (status, rule) = as_client(
        &s,
        reqwest::Method::POST,
        "/category-rules",
        Some(json!({ "category": "shopping", "name_contains": "rewe markt", "max_amount": -0.01 })),
    )
    .await;
    assert_eq!(status, 201);
    let id = rule["rule_id"].as_str().expect("id").to_owned();
    assert_eq!(rule["max_amount"], json!(-0.01));
    let after = rewe_of(&get(&s, &en, "/rest/transactions?count=500").await);
    assert_eq!(after["category_source"], "customer_rule", "{after}");
    assert_eq!(
        after["categories"],
        json!([{"id": "shopping", "name": "Shopping"}])
    );
    let (_, listed) = as_client(&s, reqwest::Method::GET, "/category-rules", None).await;
    assert_eq!(listed["rules"], json!([rule]));
    // Deleted: the built-in rules decide again; a second delete is 404.
    for want in [204, 404] {
        let path = format!("/category-rules/{id}");
        let (status, _) = as_client(&s, reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, want);
    }
    let again = rewe_of(&get(&s, &en, "/rest/transactions?count=500").await);
    assert_eq!(again["category_source"], "counterparty");
}

/// The bank catalog: search by name, BIC or bank code, by country, in pages; the ids it
/// gives are what `provider_id` accepts.
#[tokio::test]
async fn the_bank_catalog_finds_banks_by_name_bic_and_code_in_pages() {
    let s = Served::start(App::new().await).await;
    let page = |q: &str| {
        let path = format!("/rest/catalog/banks?{q}");
        let s = &s;
        async move { as_client(s, reqwest::Method::GET, &path, None).await }
    };
    let (status, all) = page("country=DE").await;
    assert_eq!(status, 200, "{all}");
    let banks = all["banks"].as_array().expect("banks").clone();
    assert!(banks.len() >= 3, "{all}");
    let names: Vec<&str> = banks.iter().filter_map(|b| b["name"].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "by name");
    assert_eq!(all["has_more"], false);
    let first = &banks[0];
    // By BIC and by bank code, exactly; by part of the name.
    for q in [
        format!("q={}", first["bic"].as_str().expect("bic")),
        format!("q={}", first["bank_code"].as_str().expect("code")),
    ] {
        let (_, found) = page(&q).await;
        assert_eq!(
            found["banks"][0]["provider_id"], first["provider_id"],
            "{q}"
        );
    }
    // Pages.
    let (_, one) = page("country=DE&count=1&offset=1").await;
    assert_eq!(one["banks"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["banks"][0], banks[1]);
    assert_eq!(one["has_more"], banks.len() > 2);
    let (_, none) = page("country=AT").await;
    assert_eq!(none["banks"], json!([]));
    // Bad queries name the parameter.
    for (q, field) in [
        ("count=0", "count"),
        ("country=DEU", "country"),
        ("offset=x", "offset"),
        ("bank=1", "bank"),
    ] {
        let (status, e) = page(q).await;
        assert_eq!(status, 400, "{q}");
        assert!(e["error"]["data"][field].is_array(), "{q}: {e}");
    }
    // A catalog id starts a flow at that bank.
    let (status, link) = as_client(
        &s,
        reqwest::Method::POST,
        "/onetime/access",
        Some(json!({ "redirect_uri": REDIRECT, "provider_id": first["provider_id"] })),
    )
    .await;
    assert_eq!(status, 200, "{link}");
}

/// The code of a widget walk's redirect, exchanged for the grant's access token.
async fn exchange(s: &Served, back: &url::Url) -> String {
    let code = code_of(back);
    let (status, tokens) = as_client(
        s,
        reqwest::Method::POST,
        "/auth/token",
        Some(json!({ "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT })),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().expect("token").to_owned()
}

/// An upload whose account holds `transactions`.
fn upload_of(transactions: Value) -> Value {
    json!({ "accounts": [{
        "iban": "DE02120300000000202051",
        "owner": "Erika Mustermann",
        "balance": 1234.56,
        "balance_date": "2026-11-30",
        "transactions": transactions,
    }]})
}

/// Polls an upload until it is no longer queued or running.
async fn finished_upload(s: &Served, id: &str) -> Value {
    for _ in 0..100 {
        let (status, u) = as_client(s, reqwest::Method::GET, &format!("/uploads/{id}"), None).await;
        assert_eq!(status, 200, "{u}");
        if u["status"] != "QUEUED" && u["status"] != "RUNNING" {
            return u;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("upload {id} did not finish");
}

/// An upload is checked whole, queued, written, and read back categorised with the token
/// each poll hands out; it follows one-time retention.
#[tokio::test]
async fn an_upload_is_read_back_categorised_through_its_own_token() {
    let s = Served::start(App::new().await).await;
    let body = upload_of(json!([
        { "iban": "DE89370400440532013000", "amount": -42.5, "name": "REWE Markt GmbH",
          "purpose": "REWE SAGT DANKE 12345678", "booked_at": "2026-11-28" },
        { "iban": "DE89370400440532013000", "amount": 3120.00, "name": "Muster GmbH",
          "purpose": "Gehalt November", "sepa_purpose_code": "SALA", "booked_at": "2026-11-27",
          "settled_at": "2026-11-28" },
        { "iban": "DE89370400440532013000", "amount": -9.99, "name": "Unbekannt",
          "purpose": "", "booked_at": "2026-11-26" },
    ]));
    let (status, queued) = as_client(&s, reqwest::Method::POST, "/uploads", Some(body)).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "QUEUED");
    assert!(queued["created_at"].is_string() && queued.get("access_token").is_none());
    let id = queued["id"].as_str().expect("id");

    let done = finished_upload(&s, id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert!(done["started_at"].is_string() && done["ended_at"].is_string());
    let token = done["access_token"].as_str().expect("token").to_owned();
    assert!(
        done["expires_in"]
            .as_i64()
            .is_some_and(|e| e > 0 && e <= 3600)
    );

    let accounts = get(&s, &token, "/rest/accounts").await;
    let account = &accounts["accounts"][0];
    assert_eq!(accounts["accounts"].as_array().map(Vec::len), Some(1));
    assert_eq!(account["iban"], "DE02120300000000202051");
    assert_eq!(account["owner"], "Erika Mustermann");
    assert_eq!(account["balance"]["balance"].to_string(), "1234.56");
    let txs = get(&s, &token, "/rest/transactions").await;
    let txs = txs["transactions"]
        .as_array()
        .expect("transactions")
        .clone();
    assert_eq!(txs.len(), 3);
    let rewe = find(&txs, "REWE");
    assert_eq!(rewe["amount"].to_string(), "-42.5");
    assert_eq!(rewe["categories"][1]["id"], "food.groceries", "{rewe}");
    let salary = find(&txs, "Muster GmbH");
    assert_eq!(salary["categories"][1]["id"], "income.salary", "{salary}");
    assert_eq!(salary["category_source"], "purpose_code");
    assert_eq!(salary["settled_at"], "2026-11-28");
    assert_eq!(find(&txs, "Unbekannt")["categories"], json!([]));

    // Each poll hands out another token; both read.
    let again = finished_upload(&s, id).await;
    let second = again["access_token"].as_str().expect("token");
    assert_ne!(second, token);
    get(&s, second, "/rest/transactions").await;

    // Unknown ids, and malformed ones, are 404.
    for other in ["00000000-0000-4000-8000-000000000000", "nope"] {
        let (status, _) =
            as_client(&s, reqwest::Method::GET, &format!("/uploads/{other}"), None).await;
        assert_eq!(status, 404, "{other}");
    }

    // One-time retention: at its `expires_at`, the upload and its data are gone.
    let later = chrono::DateTime::parse_from_rfc3339(done["expires_at"].as_str().expect("end"))
        .expect("time")
        .to_utc();
    let before = later - chrono::TimeDelta::seconds(1);
    assert_eq!(
        s.app
            .store
            .purge(before, before)
            .await
            .expect("purge")
            .uploads,
        0
    );
    let purged = s.app.store.purge(later, later).await.expect("purge");
    assert_eq!(purged.uploads, 1);
    assert_eq!(purged.accounts, 1);
    let (status, _) = as_client(&s, reqwest::Method::GET, &format!("/uploads/{id}"), None).await;
    assert_eq!(status, 404);
}

/// Bad input gets 400 naming the field, and nothing is stored.
#[tokio::test]
async fn a_bad_upload_is_refused_naming_the_field_and_stores_nothing() {
    let s = Served::start(App::new().await).await;
    let tx = |iban: &str, amount: Value| json!({ "iban": iban, "amount": amount, "purpose": "", "booked_at": "2026-11-28" });
    let good = "DE89370400440532013000";
    let many: Vec<Value> = (0..100_000).map(|_| tx(good, json!(-1))).collect();
    for (body, field) in [
        (
            upload_of(json!([tx("DE89370400440532013001", json!(-1))])),
            "accounts[0].transactions[0].iban",
        ),
        (
            upload_of(json!([tx(good, json!(-12.345))])),
            "accounts[0].transactions[0].amount",
        ),
        (
            upload_of(json!([tx(good, json!("12.00"))])),
            "accounts[0].transactions[0].amount",
        ),
        (
            upload_of(json!([{ "iban": good, "amount": 1, "booked_at": "2026-11-28" }])),
            "accounts[0].transactions[0].purpose",
        ),
        (
            upload_of(
                json!([tx(good, json!(1)), { "iban": good, "amount": 1, "purpose": "",
              "booked_at": "2026-02-30" }]),
            ),
            "accounts[0].transactions[1].booked_at",
        ),
        (upload_of(json!(many)), "accounts[0].transactions"),
        (json!({ "accounts": [] }), "accounts"),
        (json!({ "accounts": [{ "bic": "X" }] }), "accounts[0].iban"),
    ] {
        let (status, e) = as_client(&s, reqwest::Method::POST, "/uploads", Some(body)).await;
        assert_eq!(status, 400, "{field}: {e}");
        assert!(e["error"]["data"][field].is_array(), "{field} named: {e}");
    }
    // An exponent, as written (a JSON number is read as its text, never as a float).
    let res = s
        .http
        .post(s.url("/uploads"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .header("content-type", "application/json")
        .body(
            r#"{"accounts": [{"iban": "DE02120300000000202051", "transactions": [
                {"iban": "DE89370400440532013000", "amount": 1e3, "purpose": "",
                 "booked_at": "2026-11-28"}]}]}"#,
        )
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 400);
    let e: Value = res.json().await.expect("json");
    assert!(
        e["error"]["data"]["accounts[0].transactions[0].amount"].is_array(),
        "{e}"
    );
    // A body that is not UTF-8.
    let res = s
        .http
        .post(s.url("/uploads"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .header("content-type", "application/json")
        .body(b"{\"accounts\": [{\"iban\": \"\xff\xfe\"}]}".to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 400);
    let e: Value = res.json().await.expect("json");
    assert!(e["error"]["data"]["body"].is_array(), "{e}");
    // Without the client's credentials nothing is read.
    let res = s
        .http
        .post(s.url("/uploads"))
        .json(&upload_of(json!([])))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 401);

    // Nothing of it was stored: a purge past every retention finds nothing.
    let later = s.app.clock.now() + chrono::TimeDelta::days(1);
    let purged = s.app.store.purge(later, later).await.expect("purge");
    assert_eq!((purged.uploads, purged.accounts), (0, 0));
}

/// The status a bearer GET answers.
async fn status_of(s: &Served, bearer: &str, path: &str) -> u16 {
    let res = s
        .http
        .get(s.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("send");
    res.status().as_u16()
}

/// An account verification of `fields` (`name`, `account`, `readout`) walked through the
/// widget at `bank` by `demo`: the grant's token, the verification's id and its result.
async fn verification(s: &Served, fields: Value, bank: &str) -> (String, String, Value) {
    let mut body = fields;
    body["redirect_uri"] = json!(REDIRECT);
    let (status, link) = as_client(
        s,
        reqwest::Method::POST,
        "/onetime/account-verification",
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{link}");
    // A bank app approves on the bank's clock, which moves on meanwhile.
    let clock = s.app.clock.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            clock.advance(chrono::TimeDelta::seconds(3));
        }
    });
    let back = walk_widget(
        &s.http,
        link["location"].as_str().expect("location"),
        bank,
        "demo",
    )
    .await;
    ticker.abort();
    let token = exchange(s, &back).await;
    let id = link["id"].as_str().expect("id").to_owned();
    let result = get(s, &token, &format!("/rest/account-verifications/{id}")).await;
    (token, id, result)
}

/// Account verification: the widget flow, then the holder's name against the one given,
/// as each bank writes it; the readout decides what else the token reads.
#[tokio::test]
async fn an_account_verification_matches_the_holder_as_the_bank_writes_it() {
    let s = Served::start(App::new().await).await;
    // finX Sandbox Bank writes "MUSTERMANN, ERIKA".
    let (token, id, result) = verification(
        &s,
        json!({ "name": "Erika Mustermann", "account": "DE82900948150000002881" }),
        "sandbox-90094815",
    )
    .await;
    assert_eq!(result["id"], id);
    assert_eq!(
        result["provided"],
        json!({ "name": "Erika Mustermann", "iban": "DE82900948150000002881" })
    );
    assert_eq!(
        result["matched"],
        json!({ "name": "MUSTERMANN, ERIKA", "affinity": "VERY_HIGH" })
    );
    assert_eq!(result["account"]["iban"], "DE82900948150000002881");
    assert_eq!(result["account"]["type"], "Giro account");
    assert_eq!(result["account"]["owners"], json!(["MUSTERMANN, ERIKA"]));
    assert_eq!(result["account"]["currency"], "EUR");
    // Without a readout the token reads the result only.
    assert_eq!(status_of(&s, &token, "/rest/accounts").await, 403);

    // Testbank Direkt writes "Dr. Erika Müller-Mustermann"; with transactions read out.
    let (second, second_id, result) = verification(
        &s,
        json!({ "name": "Erika Mueller-Mustermann", "account": "DE42900948175550012345",
                "readout": ["TRANSACTIONS"] }),
        "sandbox-90094817",
    )
    .await;
    assert_eq!(result["matched"]["name"], "Dr. Erika Müller-Mustermann");
    assert_eq!(result["matched"]["affinity"], "VERY_HIGH", "{result}");
    let txs = get(&s, &second, "/rest/transactions").await;
    assert!(!txs["transactions"].as_array().expect("list").is_empty());
    // A token reads its own verification only.
    let other = format!("/rest/account-verifications/{second_id}");
    assert_eq!(status_of(&s, &token, &other).await, 404);

    // Sparkasse's joint account: either holder matches.
    let (third, _, result) = verification(
        &s,
        json!({ "name": "Max Mustermann", "account": "DE46900948161002003004",
                "readout": ["ACCOUNTS"] }),
        "sandbox-90094816",
    )
    .await;
    assert_eq!(result["matched"]["name"], "Erika und Max Mustermann");
    assert_eq!(result["matched"]["affinity"], "VERY_HIGH", "{result}");
    get(&s, &third, "/rest/accounts").await;

    // Bad requests name the field.
    for (body, field) in [
        (json!({ "redirect_uri": REDIRECT, "name": " " }), "name"),
        (
            json!({ "redirect_uri": REDIRECT, "name": "Erika", "account": "DE00" }),
            "account",
        ),
        (
            json!({ "redirect_uri": REDIRECT, "name": "Erika", "readout": ["BALANCES"] }),
            "readout",
        ),
        (json!({ "name": "Erika" }), "redirect_uri"),
    ] {
        let (status, e) = as_client(
            &s,
            reqwest::Method::POST,
            "/onetime/account-verification",
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{field}: {e}");
        assert!(e["error"]["data"][field].is_array(), "{field}: {e}");
    }
}
