//! Transaction uploads (`/uploads`): accounts and transactions a customer sends for
//! enrichment without a bank login, read back categorised through `/rest/*`.

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use finx_domain::upload::{
    MAX_ACCOUNTS, MAX_TRANSACTIONS, RawAccount, RawTransaction, RawUpload, Upload, UploadStatus,
};
use finx_domain::values::Language;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{basic_client, path_id};
use crate::error::{ApiError, code};
use crate::parse::{self, Kind};
use crate::wire::rfc3339;

/// The largest upload body: room for [`MAX_TRANSACTIONS`] transactions with every field
/// filled, and for a body ten times over the limit with few fields, which is then refused
/// with 400 naming the count rather than 413.
pub const UPLOAD_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// `POST /uploads`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    /// The accounts, 1 to 20.
    #[serde(deserialize_with = "capped_accounts")]
    #[schema(min_items = 1, max_items = 20)]
    pub accounts: Vec<UploadAccount>,
    /// The language categories are named in for the upload's token: `de` (default) or `en`.
    #[schema(example = "en")]
    pub language: Option<String>,
}

/// An uploaded account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadAccount {
    /// Its IBAN (required).
    #[schema(example = "DE02120300000000202051")]
    pub iban: Option<String>,
    /// Its BIC.
    pub bic: Option<String>,
    /// Its holder.
    pub owner: Option<String>,
    /// Its balance in major units, with `balance_date`.
    #[serde(default, deserialize_with = "number_text")]
    #[schema(value_type = Option<f64>, format = "decimal")]
    pub balance: Option<String>,
    /// The day of the balance, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub balance_date: Option<String>,
    /// ISO 4217; `EUR` when left out.
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    /// Its transactions, at most 10,000 in one upload.
    #[serde(default, deserialize_with = "capped_transactions")]
    #[schema(max_items = 10000)]
    pub transactions: Vec<UploadTransaction>,
}

/// An uploaded transaction. `iban`, `amount`, `purpose` (may be `""`) and `booked_at` are
/// required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadTransaction {
    /// The counterparty's IBAN (required).
    #[schema(example = "DE89370400440532013000")]
    pub iban: Option<String>,
    /// The counterparty's BIC.
    pub bic: Option<String>,
    /// Major units, negative for money going out (required), at most the currency's
    /// decimals.
    #[serde(default, deserialize_with = "number_text")]
    #[schema(value_type = Option<f64>, format = "decimal", example = -42.5)]
    pub amount: Option<String>,
    /// ISO 4217; the account's when left out.
    pub currency: Option<String>,
    /// The counterparty's name.
    #[schema(example = "REWE Markt GmbH")]
    pub name: Option<String>,
    /// The purpose (required; may be empty).
    pub purpose: Option<String>,
    /// The bank's booking text.
    pub booking_text: Option<String>,
    /// SEPA creditor id.
    pub creditor_id: Option<String>,
    /// SEPA mandate reference.
    pub mandate_reference: Option<String>,
    /// SEPA end-to-end reference.
    pub end_to_end_reference: Option<String>,
    /// SEPA purpose code, e.g. `SALA`.
    pub sepa_purpose_code: Option<String>,
    /// Booking day, `YYYY-MM-DD` (required).
    #[schema(format = Date)]
    pub booked_at: Option<String>,
    /// Value day, `YYYY-MM-DD`; the booking day when left out.
    #[schema(format = Date)]
    pub settled_at: Option<String>,
}

/// An upload's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadDto {
    /// Its id.
    pub id: String,
    /// `QUEUED`, `RUNNING`, `COMPLETED` or `FAILED`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// When it was accepted.
    pub created_at: String,
    /// When writing began.
    pub started_at: Option<String>,
    /// When it completed or failed.
    pub ended_at: Option<String>,
    /// When it and its data are deleted (one-time retention).
    pub expires_at: String,
    /// Once `COMPLETED`: a new bearer token for `/rest/accounts` and `/rest/transactions`
    /// on the uploaded data, categorised (each poll hands out another).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Seconds until `access_token` expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// Once `FAILED`: why, in finX's error shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::wire::ErrorDetail>,
}

impl UploadDto {
    fn of(u: &Upload, token: Option<finx_core::TokenResponse>) -> Self {
        Self {
            id: u.id.to_string(),
            status: u.status.as_str(),
            created_at: rfc3339(u.created_at),
            started_at: u.started_at.map(rfc3339),
            ended_at: u.ended_at.map(rfc3339),
            expires_at: rfc3339(u.expires_at),
            expires_in: token.as_ref().map(|t| t.expires_in),
            access_token: token.map(|t| t.access_token.expose().to_owned()),
            error: u
                .error
                .as_ref()
                .map(|(c, description)| crate::wire::ErrorDetail::new(*c, description.clone())),
        }
    }
}

/// Reads a JSON number as the exact text it was written in (serde_json keeps it with
/// `arbitrary_precision`), so no amount ever passes through a float.
fn number_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<serde_json::Number>::deserialize(d).map(|n| n.map(|n| n.to_string()))
}

/// A list that stops reading at `MAX + 1` items: a body far over the limit is refused
/// without building every item first.
struct Capped<T, const MAX: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for Capped<T, MAX> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a list of at most {MAX} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX));
        while let Some(item) = seq.next_element()? {
            if out.len() == MAX {
                return Err(de::Error::custom(format!("at most {MAX} items")));
            }
            out.push(item);
        }
        Ok(out)
    }
}

fn capped_transactions<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<UploadTransaction>, D::Error> {
    d.deserialize_seq(Capped::<UploadTransaction, MAX_TRANSACTIONS>(PhantomData))
}

fn capped_accounts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<UploadAccount>, D::Error> {
    d.deserialize_seq(Capped::<UploadAccount, MAX_ACCOUNTS>(PhantomData))
}

impl UploadBody {
    fn into_raw(self) -> RawUpload {
        RawUpload {
            accounts: self
                .accounts
                .into_iter()
                .map(|a| RawAccount {
                    iban: a.iban,
                    bic: a.bic,
                    owner: a.owner,
                    balance: a.balance,
                    balance_date: a.balance_date,
                    currency: a.currency,
                    transactions: a
                        .transactions
                        .into_iter()
                        .map(|t| RawTransaction {
                            iban: t.iban,
                            bic: t.bic,
                            amount: t.amount,
                            currency: t.currency,
                            name: t.name,
                            purpose: t.purpose,
                            booking_text: t.booking_text,
                            creditor_id: t.creditor_id,
                            mandate_reference: t.mandate_reference,
                            end_to_end_reference: t.end_to_end_reference,
                            sepa_purpose_code: t.sepa_purpose_code,
                            booked_at: t.booked_at,
                            settled_at: t.settled_at,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Upload accounts and transactions for enrichment. Everything is checked first: a wrong
/// field is refused with 400 naming it, and nothing is stored. An accepted upload is
/// written in the background; poll `GET /uploads/{upload_id}`.
#[utoipa::path(
    post, path = "/uploads", operation_id = "create_upload", tag = "enrichment",
    request_body = UploadBody,
    security(("client_basic" = [])),
    responses(
        (status = 202, description = "Accepted and queued", body = UploadDto),
        (status = 400, description = "A wrong field, named by its path (e.g. `accounts[0].transactions[3].amount`)", body = crate::wire::ErrorBody),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 413, description = "Body over 32 MiB", body = crate::wire::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Request,
) -> Result<(StatusCode, Json<UploadDto>), ApiError> {
    // The client first: nobody unknown gets a large body read.
    let client = basic_client(&state, &headers, peer).await?;
    parse::kind(&headers, &[Kind::Json])?;
    // Read under the route's own limit (`DefaultBodyLimit` on the route).
    let body = Bytes::from_request(request, &()).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::finx(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::PAYLOAD_TOO_LARGE,
                format!("The body exceeds {UPLOAD_BODY_LIMIT} bytes."),
            )
        } else {
            ApiError::invalid("body", "could not be read")
        }
    })?;
    let b: UploadBody = parse::json(&body)?;
    let language = b
        .language
        .as_deref()
        .map(Language::from_tag)
        .unwrap_or_default();
    let accepted = state
        .finx
        .accept_upload(&client, &b.into_raw(), language)
        .await?;
    let answer = UploadDto::of(&accepted.upload, None);
    let finx = state.finx.clone();
    let scope = client.scope;
    tokio::spawn(async move {
        if let Err(e) = finx.process_upload(accepted, scope).await {
            tracing::error!(error = %e, "an upload could not be recorded");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// An upload's state; once `COMPLETED`, with a new access token for its data.
#[utoipa::path(
    get, path = "/uploads/{upload_id}", operation_id = "upload", tag = "enrichment",
    params(("upload_id" = String, Path, description = "The `id` `POST /uploads` answered")),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "The upload", body = UploadDto),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 404, description = "No such upload of this client, or past its retention", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<UploadDto>, ApiError> {
    let client = basic_client(&state, &headers, peer).await?;
    let id = path_id(id, "upload_id")?;
    let (upload, token) = state.finx.upload_status(&client.id, &id).await?;
    debug_assert!(token.is_none() || upload.status == UploadStatus::Completed);
    Ok(Json(UploadDto::of(&upload, token)))
}
