//! Categories: the tree finX categorises into, and a customer's own rules, which win over
//! the built-in ones (docs/categories.md).

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use finx_domain::enrich::{CustomerRule, NewCustomerRule, TREE};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::basic_client;
use crate::error::ApiError;
use crate::parse;

/// One category of the tree.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryInfo {
    /// Its stable id.
    #[schema(value_type = String, example = "food.groceries")]
    pub id: &'static str,
    /// Its top level; null for a top level.
    #[schema(value_type = Option<String>, example = "food")]
    pub parent: Option<&'static str>,
    /// German name.
    #[schema(value_type = String)]
    pub name_de: &'static str,
    /// English name.
    #[schema(value_type = String)]
    pub name_en: &'static str,
}

/// `GET /categories`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryTree {
    /// Every category, each top level before its leaves.
    pub categories: Vec<CategoryInfo>,
}

/// The category tree transactions are categorised into.
#[utoipa::path(
    get, path = "/categories", tag = "enrichment",
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "The tree", body = CategoryTree),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn categories(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<CategoryTree>, ApiError> {
    basic_client(&state, &headers, peer).await?;
    Ok(Json(CategoryTree {
        categories: TREE
            .iter()
            .map(|c| CategoryInfo {
                id: c.id,
                parent: (!c.is_top()).then(|| c.top().id),
                name_de: c.de,
                name_en: c.en,
            })
            .collect(),
    }))
}

/// A rule as a customer writes it: every condition given must hold, at least one is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// The category it gives (an id of `GET /categories`).
    #[schema(example = "family.childcare")]
    pub category: String,
    /// Words the counterparty's name contains (whole words; case, umlaut spelling and
    /// punctuation do not matter).
    #[schema(example = "Kita Sonnenschein")]
    pub name_contains: Option<String>,
    /// Words the purpose contains (whole words, as `name_contains`).
    pub purpose_contains: Option<String>,
    /// The SEPA creditor id, exactly.
    pub creditor_id: Option<String>,
    /// The counterparty's IBAN, exactly (spaces ignored).
    pub iban: Option<String>,
    /// The least amount, inclusive (negative for money going out).
    #[serde(default, with = "rust_decimal::serde::arbitrary_precision_option")]
    #[schema(value_type = Option<f64>, format = "decimal")]
    pub min_amount: Option<Decimal>,
    /// The greatest amount, inclusive.
    #[serde(default, with = "rust_decimal::serde::arbitrary_precision_option")]
    #[schema(value_type = Option<f64>, format = "decimal")]
    pub max_amount: Option<Decimal>,
}

/// A customer's rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleDto {
    /// Its id.
    pub rule_id: String,
    /// The category it gives.
    #[schema(value_type = String)]
    pub category: &'static str,
    /// See the request.
    pub name_contains: Option<String>,
    /// See the request.
    pub purpose_contains: Option<String>,
    /// See the request.
    pub creditor_id: Option<String>,
    /// See the request.
    pub iban: Option<String>,
    /// See the request.
    #[serde(with = "rust_decimal::serde::arbitrary_precision_option")]
    #[schema(value_type = Option<f64>, format = "decimal")]
    pub min_amount: Option<Decimal>,
    /// See the request.
    #[serde(with = "rust_decimal::serde::arbitrary_precision_option")]
    #[schema(value_type = Option<f64>, format = "decimal")]
    pub max_amount: Option<Decimal>,
}

impl RuleDto {
    fn of(r: &CustomerRule) -> Self {
        Self {
            rule_id: r.id.clone(),
            category: r.category.id,
            name_contains: r.name_contains.clone(),
            purpose_contains: r.purpose_contains.clone(),
            creditor_id: r.creditor_id.clone(),
            iban: r.iban.clone(),
            min_amount: r.min_amount,
            max_amount: r.max_amount,
        }
    }
}

/// `GET /category-rules`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    /// The rules, in the order they apply.
    pub rules: Vec<RuleDto>,
}

/// Add a categorisation rule. It applies after the client's earlier rules and before every
/// built-in rule, at once, to every transaction its grants read.
#[utoipa::path(
    post, path = "/category-rules", tag = "enrichment",
    request_body = RuleBody,
    security(("client_basic" = [])),
    responses(
        (status = 201, description = "Added", body = RuleDto),
        (status = 400, description = "An unknown category, no condition, or a bad value", body = crate::wire::ErrorBody),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 409, description = "The client has 500 rules already", body = crate::wire::ErrorBody),
        (status = 413, description = "Body too large", body = crate::wire::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn add_rule(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<RuleDto>), ApiError> {
    let client = basic_client(&state, &headers, peer).await?;
    let b: RuleBody = parse::json_body(&headers, body)?;
    let rule = state
        .finx
        .add_category_rule(
            &client.id,
            NewCustomerRule {
                category: b.category,
                name_contains: b.name_contains,
                purpose_contains: b.purpose_contains,
                creditor_id: b.creditor_id,
                iban: b.iban,
                min_amount: b.min_amount,
                max_amount: b.max_amount,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(RuleDto::of(&rule))))
}

/// The client's categorisation rules, in the order they apply.
#[utoipa::path(
    get, path = "/category-rules", tag = "enrichment",
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "Rules", body = RuleList),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn list_rules(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<RuleList>, ApiError> {
    let client = basic_client(&state, &headers, peer).await?;
    Ok(Json(RuleList {
        rules: client.category_rules.iter().map(RuleDto::of).collect(),
    }))
}

/// Delete one of the client's rules.
#[utoipa::path(
    delete, path = "/category-rules/{rule_id}", tag = "enrichment",
    params(("rule_id" = String, Path, description = "`R…`")),
    security(("client_basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 404, description = "No such rule of this client", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let client = basic_client(&state, &headers, peer).await?;
    let Ok(Path(id)) = id else {
        return Err(ApiError::invalid("rule_id", "is not a valid path segment"));
    };
    state.finx.delete_category_rule(&client.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
