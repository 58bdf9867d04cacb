//! The bank catalog: which banks finX reaches, and the `provider_id` each goes by.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use finx_domain::bank::Institution;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::basic_client;
use crate::error::ApiError;
use crate::parse;

/// One bank of the catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogBank {
    /// What `provider_id` of `POST /onetime/access` and `/ongoing/access` accepts.
    pub provider_id: String,
    /// Its name.
    pub name: String,
    /// BIC.
    pub bic: Option<String>,
    /// National bank code (Bankleitzahl in Germany).
    pub bank_code: Option<String>,
    /// ISO 3166 country code.
    pub country: String,
}

impl CatalogBank {
    fn of(i: &Institution) -> Self {
        Self {
            provider_id: i.id.to_string(),
            name: i.name.clone(),
            bic: i.bic.clone(),
            bank_code: i.bank_code.clone(),
            country: i.country.clone(),
        }
    }
}

/// `GET /rest/catalog/banks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogPage {
    /// Banks, by name.
    pub banks: Vec<CatalogBank>,
    /// Whether more follow (ask again with `offset` + `count`).
    pub has_more: bool,
}

/// Search the banks finX reaches by name, BIC or bank code.
#[utoipa::path(
    get, path = "/rest/catalog/banks", tag = "flow",
    params(
        ("q" = Option<String>, Query, max_length = 200, description = "Part of the name, or a whole BIC or bank code; every bank without one"),
        ("country" = Option<String>, Query, pattern = r"^[A-Za-z]{2}$", description = "ISO 3166 country code, e.g. `DE`"),
        ("offset" = Option<u32>, Query, minimum = 0, maximum = 100000, description = "Banks to skip, default 0"),
        ("count" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 50"),
    ),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "One page of banks", body = CatalogPage),
        (status = 400, description = "Invalid query", body = crate::wire::ErrorBody),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn banks(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<CatalogPage>, ApiError> {
    basic_client(&state, &headers, peer).await?;
    let p = parse::pairs(
        raw.as_deref().unwrap_or_default(),
        Some(&["q", "country", "offset", "count"]),
        "query",
    )?;
    let number = |name: &'static str, default: u32| {
        p.get(name).map_or(Ok(default), |v| {
            v.parse::<u32>()
                .map_err(|_| ApiError::invalid(name, "must be a whole number"))
        })
    };
    let (offset, count) = (number("offset", 0)?, number("count", 50)?);
    let (banks, has_more) = state
        .finx
        .bank_catalog(
            p.get("q").map_or("", String::as_str),
            p.get("country").map(String::as_str),
            offset,
            count,
        )
        .await?;
    Ok(Json(CatalogPage {
        banks: banks.iter().map(CatalogBank::of).collect(),
        has_more,
    }))
}
