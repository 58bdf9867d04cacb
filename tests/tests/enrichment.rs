//! Enrichment over HTTP (issue 17): every transaction carries `categories` (top level first,
//! leaf last, named in the grant's language) and `category_source`, on the list, on one
//! transaction and on the feed. Real parts: the core on the memory store, the sandbox bank,
//! the widget walked over loopback HTTP.

use finx_tests::fixtures::{App, DEMO_SECRET, REDIRECT, Served, walk_widget};
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
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens: Value = s
        .http
        .post(s.url("/auth/token"))
        .basic_auth("demo-app", Some(DEMO_SECRET))
        .json(
            &json!({ "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT }),
        )
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{tokens}"))
        .to_owned()
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
