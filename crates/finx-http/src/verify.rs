//! Account verification: `POST /onetime/account-verification` creates a one-time widget
//! flow; its token reads `GET /rest/account-verifications/{id}`, how well the holder of
//! the account the end user connected matches the name given (docs/verification.md).

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use finx_core::{AccountVerificationRequest, VerificationResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{authorized, basic_client, path_id, widget_link};
use crate::error::ApiError;
use crate::parse;
use crate::wire::OnetimeAccessResponse;

/// `POST /onetime/account-verification`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationBody {
    /// Where to send the end user back; registered for the client.
    #[schema(example = "https://app.example/callback")]
    pub redirect_uri: String,
    /// The name the account holder should have.
    #[schema(example = "Erika Mustermann")]
    pub name: String,
    /// The IBAN of the account it should be: its bank and account are preselected.
    #[schema(example = "DE02120300000000202051")]
    pub account: Option<String>,
    /// Echoed back on the redirect.
    pub state: Option<String>,
    /// `de` (default) or `en`.
    pub language: Option<String>,
    /// What the token may read besides the result: `ACCOUNTS` (the account and its
    /// balance), `TRANSACTIONS` (and its transactions). Nothing else when left out.
    pub readout: Option<Vec<String>>,
}

/// What the customer asked to verify.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidedDto {
    /// The name given.
    pub name: String,
    /// The IBAN given, if any.
    pub iban: Option<String>,
}

/// The holder's name and how well it matches.
#[derive(Debug, Serialize, ToSchema)]
pub struct MatchedDto {
    /// The holder's name as the bank reports it.
    pub name: String,
    /// `VERY_HIGH` or `HIGH` count as a match; `MEDIUM` is for a person to look at;
    /// `LOW` is no match.
    #[schema(value_type = String)]
    pub affinity: &'static str,
}

/// The account the end user connected.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifiedAccountDto {
    /// The bank's name for it.
    pub name: String,
    /// Its type, as accounts have it.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub account_type: &'static str,
    /// Its holders as the bank reports them.
    pub owners: Vec<String>,
    /// Its IBAN.
    pub iban: Option<String>,
    /// Its currency.
    pub currency: String,
}

/// `GET /rest/account-verifications/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationDto {
    /// The verification's id (the `id` its creation answered).
    pub id: String,
    /// What was asked.
    pub provided: ProvidedDto,
    /// What the bank says, and how well it matches.
    pub matched: MatchedDto,
    /// The account.
    pub account: VerifiedAccountDto,
}

impl VerificationDto {
    fn of(r: &VerificationResult) -> Self {
        let d = &r.account.details;
        Self {
            id: r.id.to_string(),
            provided: ProvidedDto {
                name: r.provided.name.clone(),
                iban: r.provided.iban.as_ref().map(|i| i.as_str().to_owned()),
            },
            matched: MatchedDto {
                name: d.owner.clone(),
                affinity: r.affinity.as_str(),
            },
            account: VerifiedAccountDto {
                name: d.name.clone(),
                account_type: d.account_type.as_str(),
                owners: if d.owner.trim().is_empty() {
                    Vec::new()
                } else {
                    vec![d.owner.clone()]
                },
                iban: d.iban.as_ref().map(|i| i.as_str().to_owned()),
                currency: d.currency.as_str().to_owned(),
            },
        }
    }
}

/// Create a widget link that verifies the holder of the account the end user connects.
#[utoipa::path(
    post, path = "/onetime/account-verification", operation_id = "create_account_verification", tag = "flow",
    request_body = VerificationBody,
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "The widget link and the verification's id", body = OnetimeAccessResponse),
        (status = 400, description = "Invalid request", body = crate::wire::ErrorBody),
        (status = 401, description = "Invalid client authorization", body = crate::wire::ErrorBody),
        (status = 413, description = "Body too large", body = crate::wire::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<OnetimeAccessResponse>, ApiError> {
    let client = basic_client(&state, &headers, peer).await?;
    let b: VerificationBody = parse::json_body(&headers, body)?;
    let flow = state
        .finx
        .create_account_verification(
            &client,
            AccountVerificationRequest {
                redirect_uri: b.redirect_uri,
                state: b.state,
                name: b.name,
                account: b.account,
                language: b.language,
                readout: b.readout.unwrap_or_default(),
            },
        )
        .await?;
    widget_link(&state, &flow)
}

/// The result of an account verification, with the token of its flow.
#[utoipa::path(
    get, path = "/rest/account-verifications/{verification_id}", operation_id = "account_verification", tag = "data",
    params(("verification_id" = String, Path, description = "The `id` `POST /onetime/account-verification` answered")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The result", body = VerificationDto),
        (status = 401, description = "Missing or invalid token", body = crate::wire::ErrorBody),
        (status = 404, description = "The token is not this verification's", body = crate::wire::ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<axum::extract::Path<String>, PathRejection>,
) -> Result<Json<VerificationDto>, ApiError> {
    let auth = authorized(&state, &headers).await?;
    let id = path_id(id, "verification_id")?;
    let result = state.finx.account_verification(&auth, &id).await?;
    Ok(Json(VerificationDto::of(&result)))
}
