use finx_domain::bank::AccountType;
use finx_domain::flow::{Flow, FlowParams};
use finx_domain::ids::{FlowId, InstitutionId};
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

impl Finx {
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
        };
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
