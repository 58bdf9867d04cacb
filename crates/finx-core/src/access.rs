use finx_domain::access::{Ongoing, UserId};
use finx_domain::bank::AccountType;
use finx_domain::flow::{Flow, FlowParams};
use finx_domain::ids::{AccessId, FlowId, InstitutionId};
use finx_domain::reference::AccountReference;
use finx_domain::scope::Scope;
use finx_domain::values::{Language, RedirectUri, State, SyncPeriod};
use finx_ports::Client;

use crate::error::invalid;
use crate::{CoreError, Finx};

/// The body of `POST /onetime/access`, as received: every field still unvalidated.
#[derive(Debug, Clone, Default)]
pub struct OnetimeAccessRequest {
    /// Required: where to send the end user back.
    pub redirect_uri: String,
    /// Echoed back on the redirect.
    pub state: Option<String>,
    /// `de` (default) or `en`; unknown values fall back to `de`.
    pub language: Option<String>,
    /// Known accounts: IBAN, account number or PAN.
    pub accounts: Vec<String>,
    /// Only offer these account types.
    pub account_types: Vec<String>,
    /// Default true.
    pub allow_multi_selection: Option<bool>,
    /// Days of history, default 90.
    pub sync_period: Option<i64>,
    /// A bank to preselect.
    pub provider_id: Option<String>,
    /// A narrower scope than the client's.
    pub scope: Option<String>,
}

/// The body of `POST /ongoing/access`, as received.
#[derive(Debug, Clone, Default)]
pub struct OngoingAccessRequest {
    /// The fields it shares with `/onetime/access`.
    pub flow: OnetimeAccessRequest,
    /// Required: the customer's id for its end user.
    pub user_id: String,
    /// An access of this client and user to renew with a new consent.
    pub access_id: Option<String>,
}

impl Finx {
    /// Creates an ongoing access flow for `client`: the same widget, with a recurring
    /// consent, leading to a grant that holds an access synced unattended. With `access_id`
    /// it renews that access (of the same end user): the widget opens at its bank, and the
    /// same access, accounts and transaction ids continue.
    ///
    /// # Errors
    /// As [`create_onetime_access`](Self::create_onetime_access); [`CoreError::NotFound`]
    /// for an access of another client or user.
    pub async fn create_ongoing_access(
        &self,
        client: &Client,
        req: OngoingAccessRequest,
    ) -> Result<Flow, CoreError> {
        let user_id = UserId::parse(&req.user_id).map_err(|e| invalid("user_id", e))?;
        let renews = match req.access_id.as_deref() {
            None => None,
            Some(raw) => {
                let id = AccessId::parse(raw).map_err(|e| invalid("access_id", e))?;
                let access = self
                    .ports
                    .accesses
                    .find_access(&id)
                    .await?
                    .filter(|a| a.client_id == client.id && a.user_id == user_id)
                    .ok_or(CoreError::NotFound("access"))?;
                Some(access)
            }
        };
        let (mut params, mut preselected) = self.flow_params(client, req.flow).await?;
        if let Some(a) = &renews {
            preselected = Some(a.institution.clone());
            params.provider_id = Some(a.institution.clone());
        }
        params.ongoing = Some(Ongoing {
            user_id,
            renews: renews.map(|a| a.id),
        });
        self.insert_new_flow(client, params, preselected).await
    }

    /// Creates a one-time access flow for `client` (step 1 of the guide). The bank is
    /// preselected from `provider_id`, else from the first IBAN's bank code when the
    /// connector knows it.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming the first bad field; [`CoreError::InvalidScope`].
    pub async fn create_onetime_access(
        &self,
        client: &Client,
        req: OnetimeAccessRequest,
    ) -> Result<Flow, CoreError> {
        let (params, preselected) = self.flow_params(client, req).await?;
        self.insert_new_flow(client, params, preselected).await
    }

    pub(crate) async fn insert_new_flow(
        &self,
        client: &Client,
        params: FlowParams,
        preselected: Option<InstitutionId>,
    ) -> Result<Flow, CoreError> {
        let flow = Flow::new(
            FlowId::from_random(self.ports.random.bytes16()),
            client.id.clone(),
            params,
            self.now(),
            self.lifetimes.flow,
            preselected,
        );
        self.ports.flows.insert_flow(&flow).await?;
        Ok(flow)
    }

    /// The flow parameters of a request, and the bank to preselect.
    pub(crate) async fn flow_params(
        &self,
        client: &Client,
        req: OnetimeAccessRequest,
    ) -> Result<(FlowParams, Option<InstitutionId>), CoreError> {
        let redirect_uri =
            RedirectUri::parse(&req.redirect_uri).map_err(|e| invalid("redirect_uri", e))?;
        if !redirect_uri.is_allowed_by(&client.redirect_uris) {
            return Err(invalid("redirect_uri", "is not registered for this client"));
        }
        let state = req
            .state
            .as_deref()
            .map(State::parse)
            .transpose()
            .map_err(|e| invalid("state", e))?;
        let language = req
            .language
            .as_deref()
            .map(Language::from_tag)
            .unwrap_or_default();
        if req.accounts.len() > 20 {
            return Err(invalid("accounts", "at most 20 accounts"));
        }
        let accounts = req
            .accounts
            .iter()
            .map(|a| AccountReference::parse(a).map_err(|e| invalid("accounts", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let account_types = req
            .account_types
            .iter()
            .map(|t| {
                AccountType::parse(t)
                    .ok_or_else(|| invalid("account_types", format!("unknown account type {t:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sync_period = req
            .sync_period
            .map(SyncPeriod::new)
            .transpose()
            .map_err(|e| invalid("sync_period", e))?
            .unwrap_or_default();
        let requested = req.scope.as_deref().map(Scope::parse).transpose()?;
        let scope = Scope::narrow(client.scope, requested)?;
        let provider_id = req
            .provider_id
            .as_deref()
            .map(InstitutionId::parse)
            .transpose()
            .map_err(|e| invalid("provider_id", e))?;

        let preselected = match &provider_id {
            Some(id) => {
                let found = self.ports.bank.institution(id).await?;
                Some(
                    found
                        .ok_or_else(|| invalid("provider_id", "unknown provider"))?
                        .id,
                )
            }
            None => self.bank_of(&accounts).await?,
        };
        let params = FlowParams {
            redirect_uri,
            state,
            language,
            accounts,
            account_types,
            allow_multi_selection: req.allow_multi_selection.unwrap_or(true),
            sync_period,
            provider_id,
            scope,
            ongoing: None,
            verification: None,
        };
        Ok((params, preselected))
    }

    /// The bank named by the first IBAN with a known bank code.
    async fn bank_of(
        &self,
        accounts: &[AccountReference],
    ) -> Result<Option<InstitutionId>, CoreError> {
        for r in accounts {
            if let (AccountReference::Iban(iban), Some(code)) = (r, r.bank_code()) {
                if let Some(i) = self
                    .ports
                    .bank
                    .resolve_bank_code(iban.country(), code)
                    .await?
                {
                    return Ok(Some(i.id));
                }
            }
        }
        Ok(None)
    }
}
