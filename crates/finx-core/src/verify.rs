//! Account verification: a one-time flow that checks a name against the holder of the
//! account the end user connects (docs/verification.md).

use finx_domain::bank::Account;
use finx_domain::enrich::names::{self, Affinity};
use finx_domain::flow::Flow;
use finx_domain::ids::FlowId;
use finx_domain::reference::Iban;
use finx_domain::scope::Scope;
use finx_domain::verify::{Readout, Verification};
use finx_ports::Client;

use crate::access::OnetimeAccessRequest;
use crate::error::invalid;
use crate::{Authorization, CoreError, Finx};

/// The body of `POST /onetime/account-verification`, as received.
#[derive(Debug, Clone, Default)]
pub struct AccountVerificationRequest {
    /// Required: where to send the end user back.
    pub redirect_uri: String,
    /// Echoed back on the redirect.
    pub state: Option<String>,
    /// Required: the name to verify.
    pub name: String,
    /// The IBAN of the account it should be: its bank and account are preselected.
    pub account: Option<String>,
    /// `de` (default) or `en`.
    pub language: Option<String>,
    /// What the token may read besides the result: `ACCOUNTS`, `TRANSACTIONS`.
    pub readout: Vec<String>,
}

/// What `GET /rest/account-verifications/{id}` answers.
#[derive(Debug, Clone)]
pub struct VerificationResult {
    /// The verification (its flow's id).
    pub id: FlowId,
    /// What the customer asked to verify.
    pub provided: Verification,
    /// The account the end user connected.
    pub account: Account,
    /// How well its holder's name matches the name provided.
    pub affinity: Affinity,
}

impl Finx {
    /// Creates an account verification: a one-time flow in which the end user connects one
    /// account. Its grant reads the verification's result, and the data `readout` names.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming the first bad field; [`CoreError::InvalidScope`] when
    /// the readout asks for more than the client may read.
    pub async fn create_account_verification(
        &self,
        client: &Client,
        req: AccountVerificationRequest,
    ) -> Result<Flow, CoreError> {
        let readout = req
            .readout
            .iter()
            .map(|r| {
                Readout::parse(r).ok_or_else(|| {
                    invalid(
                        "readout",
                        format!("unknown readout {r:?}; known: ACCOUNTS, TRANSACTIONS"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let iban = req
            .account
            .as_deref()
            .map(Iban::parse)
            .transpose()
            .map_err(|e| invalid("account", e))?;
        let verification =
            Verification::new(&req.name, iban.clone()).map_err(|e| invalid("name", e))?;
        let (mut params, preselected) = self
            .flow_params(
                client,
                OnetimeAccessRequest {
                    redirect_uri: req.redirect_uri,
                    state: req.state,
                    language: req.language,
                    accounts: iban.iter().map(|i| i.as_str().to_owned()).collect(),
                    allow_multi_selection: Some(false),
                    ..OnetimeAccessRequest::default()
                },
            )
            .await?;
        params.scope = Scope::narrow(client.scope, Some(Readout::scope(&readout)))?;
        params.verification = Some(verification);
        self.insert_new_flow(client, params, preselected).await
    }

    /// The result of the verification whose grant `auth` is.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] when the token is not the grant of verification `id`.
    pub async fn account_verification(
        &self,
        auth: &Authorization,
        id: &str,
    ) -> Result<VerificationResult, CoreError> {
        let not_found = || CoreError::NotFound("account verification");
        let id = FlowId::parse(id).map_err(|_| not_found())?;
        let grant = self
            .ports
            .grants
            .find_grant(auth.grant_id)
            .await?
            .filter(|g| g.flow_id == id)
            .ok_or_else(not_found)?;
        let provided = grant.verification.ok_or_else(not_found)?;
        let account = self
            .ports
            .data
            .find_accounts(&grant.account_ids)
            .await?
            .into_iter()
            .next()
            .ok_or_else(not_found)?;
        let affinity = names::affinity(&provided.name, &account.details.owner);
        Ok(VerificationResult {
            id,
            provided,
            account,
            affinity,
        })
    }
}
