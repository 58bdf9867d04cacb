//! What `/openapi.json` says beyond the handlers' annotations: the closed sets of values
//! (taken from the domain's own lists, so they cannot drift), the answers every endpoint
//! can give (429, 503), and the links between operations that a client, or a stateful
//! test, follows from one answer to the next call.

use finx_domain::access::{JobKind, JobStatus, SyncFailure};
use finx_domain::bank::{AccountType, TransactionType};
use finx_domain::schedule::AccessStatus;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::{Object, Schema, Type};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// The OAuth error codes `/auth/*` answers (RFC 6749 §5.2 and RFC 7009).
pub(crate) const OAUTH_ERRORS: [&str; 8] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
];

/// The balance statuses `BalanceDto::of` writes.
pub(crate) const BALANCE_STATUSES: [&str; 2] = ["booked", "available"];

/// The webhook endpoint states `WebhookDto` shows.
pub(crate) const ENDPOINT_STATES: [&str; 2] = ["enabled", "disabled"];

/// Every closed set: (schema, property, values). A nullable property also takes `null`.
pub(crate) fn closed_sets() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let categories: Vec<&'static str> = finx_domain::enrich::TREE.iter().map(|c| c.id).collect();
    vec![
        ("CategoryDto", "id", categories.clone()),
        ("CategoryInfo", "id", categories.clone()),
        ("RuleBody", "category", categories.clone()),
        ("RuleDto", "category", categories),
        (
            "TransactionDto",
            "category_source",
            finx_domain::enrich::Source::ALL
                .iter()
                .map(|s| s.as_str())
                .collect(),
        ),
        (
            "AccountDto",
            "type",
            AccountType::ALL.iter().map(|t| t.as_str()).collect(),
        ),
        (
            "TransactionDto",
            "type",
            TransactionType::ALL.iter().map(|t| t.as_str()).collect(),
        ),
        ("BalanceDto", "status", BALANCE_STATUSES.to_vec()),
        (
            "AccessDto",
            "status",
            AccessStatus::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "SyncDto",
            "kind",
            JobKind::ALL.iter().map(|k| k.as_str()).collect(),
        ),
        (
            "SyncDto",
            "status",
            JobStatus::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "ErrorRef",
            "name",
            SyncFailure::ALL.iter().map(|f| f.as_str()).collect(),
        ),
        ("TokenResponse", "token_type", vec!["Bearer"]),
        (
            "TokenBody",
            "grant_type",
            vec!["authorization_code", "refresh_token"],
        ),
        ("OAuthErrorBody", "error", OAUTH_ERRORS.to_vec()),
        ("WebhookDto", "status", ENDPOINT_STATES.to_vec()),
        ("Health", "status", vec!["ok"]),
        (
            "UploadDto",
            "status",
            finx_domain::upload::UploadStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect(),
        ),
        (
            "MatchedDto",
            "affinity",
            finx_domain::enrich::names::Affinity::ALL
                .iter()
                .rev()
                .map(|a| a.as_str())
                .collect(),
        ),
        (
            "VerifiedAccountDto",
            "type",
            AccountType::ALL.iter().map(|t| t.as_str()).collect(),
        ),
        (
            "VerificationBody",
            "readout",
            finx_domain::verify::Readout::ALL
                .iter()
                .map(|r| r.as_str())
                .collect(),
        ),
    ]
}

/// Puts the closed sets into the schemas as `enum`s.
pub(crate) struct ClosedSets;

impl utoipa::Modify for ClosedSets {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (schema, property, values) in closed_sets() {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
                continue;
            };
            let mut property = object.properties.get_mut(property);
            // A list of a closed set: the enum goes on its items.
            if let Some(RefOr::T(Schema::Array(a))) = property {
                property = match &mut a.items {
                    utoipa::openapi::schema::ArrayItems::RefOrSchema(items) => Some(items.as_mut()),
                    utoipa::openapi::schema::ArrayItems::False => None,
                };
            }
            if let Some(RefOr::T(Schema::Object(p))) = property {
                let nullable = matches!(
                    &p.schema_type,
                    utoipa::openapi::schema::SchemaType::Array(types) if types.contains(&Type::Null)
                );
                let mut values: Vec<serde_json::Value> =
                    values.into_iter().map(Into::into).collect();
                if nullable {
                    values.push(serde_json::Value::Null);
                }
                p.enum_values = Some(values);
            }
        }
    }
}

/// 429 and 503 where they can happen, in the finX error shape with `Retry-After`: 503 on
/// every operation (the database gone, a request past its time, shutdown), 429 on every
/// one a client authenticates with its secret (the failure budgets) and on `/auth/*`.
pub(crate) struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        let answer = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(Object::with_type(Type::Integer))
                            .description(Some("Seconds to wait before trying again"))
                            .build(),
                    )
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in &mut openapi.paths.paths {
            for op in operations(item) {
                let by_client = op.security.as_ref().is_some_and(|s| {
                    serde_json::to_string(s).is_ok_and(|j| j.contains("client_basic"))
                });
                if by_client || path.starts_with("/auth/") {
                    op.responses.responses.entry("429".into()).or_insert_with(|| {
                        answer("Too many requests (failed client authentications, or token requests from one address): wait `Retry-After` seconds")
                    });
                }
                op.responses.responses.entry("503".into()).or_insert_with(|| {
                    answer("Unavailable for now (the database, a request past its time limit, the instance shutting down): try again after `Retry-After` seconds")
                });
            }
        }
    }
}

/// The operations of a path item.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// A link: (path, method, status, link name, target operation id, parameters as runtime
/// expressions).
type LinkSpec = (
    &'static str,
    HttpMethod,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Links from an answer to the calls it makes possible.
const LINKS: &[LinkSpec] = &[
    (
        "/rest/accounts",
        HttpMethod::Get,
        "200",
        "account",
        "account",
        &[("account_id", "$response.body#/accounts/0/account_id")],
    ),
    (
        "/rest/accounts",
        HttpMethod::Get,
        "200",
        "balance",
        "balance",
        &[("account_id", "$response.body#/accounts/0/account_id")],
    ),
    (
        "/rest/accounts",
        HttpMethod::Get,
        "200",
        "transactions",
        "account_transactions",
        &[("account_id", "$response.body#/accounts/0/account_id")],
    ),
    (
        "/rest/transactions",
        HttpMethod::Get,
        "200",
        "transaction",
        "transaction",
        &[(
            "transaction_id",
            "$response.body#/transactions/0/transaction_id",
        )],
    ),
    (
        "/rest/transactions/sync",
        HttpMethod::Get,
        "200",
        "next_page",
        "transactions_feed",
        &[("cursor", "$response.body#/next_cursor")],
    ),
    (
        "/rest/accesses",
        HttpMethod::Get,
        "200",
        "access",
        "access",
        &[("access_id", "$response.body#/accesses/0/access_id")],
    ),
    (
        "/rest/accesses",
        HttpMethod::Get,
        "200",
        "sync",
        "start_sync",
        &[("access_id", "$response.body#/accesses/0/access_id")],
    ),
    (
        "/rest/accesses/{access_id}/syncs",
        HttpMethod::Post,
        "202",
        "sync",
        "sync",
        &[
            ("access_id", "$request.path.access_id"),
            ("sync_id", "$response.body#/sync_id"),
        ],
    ),
    (
        "/webhooks",
        HttpMethod::Post,
        "201",
        "attempts",
        "attempts",
        &[("endpoint_id", "$response.body#/endpoint_id")],
    ),
    (
        "/webhooks",
        HttpMethod::Post,
        "201",
        "rotate",
        "rotate",
        &[("endpoint_id", "$response.body#/endpoint_id")],
    ),
    (
        "/webhooks",
        HttpMethod::Post,
        "201",
        "enable",
        "enable",
        &[("endpoint_id", "$response.body#/endpoint_id")],
    ),
    (
        "/category-rules",
        HttpMethod::Post,
        "201",
        "delete",
        "delete_rule",
        &[("rule_id", "$response.body#/rule_id")],
    ),
    (
        "/webhooks",
        HttpMethod::Post,
        "201",
        "remove",
        "remove",
        &[("endpoint_id", "$response.body#/endpoint_id")],
    ),
    (
        "/uploads",
        HttpMethod::Post,
        "202",
        "upload",
        "upload",
        &[("upload_id", "$response.body#/id")],
    ),
];

/// The document as served: utoipa's, with [`LINKS`] added to the answers they start from.
/// The links are written as JSON because utoipa 5.5's `Link` serialises its fields in
/// snake case (`operation_id`), which OpenAPI readers do not know.
pub(crate) fn document(doc: &OpenApi) -> serde_json::Value {
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    for (path, method, status, name, target, parameters) in LINKS {
        let method = match method {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
            _ => continue,
        };
        let Some(answer) = value
            .pointer_mut(&format!(
                "/paths/{}/{method}/responses/{status}",
                path.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        let parameters: serde_json::Map<String, serde_json::Value> = parameters
            .iter()
            .map(|(p, e)| ((*p).to_owned(), (*e).into()))
            .collect();
        let links = answer
            .entry("links")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(links) = links.as_object_mut() {
            links.insert(
                (*name).to_owned(),
                serde_json::json!({ "operationId": target, "parameters": parameters }),
            );
        }
    }
    value
}
