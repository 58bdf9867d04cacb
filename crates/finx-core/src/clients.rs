use finx_domain::ids::ClientId;
use finx_domain::scope::Scope;
use finx_domain::secret::ClientSecret;
use finx_domain::values::RedirectUri;
use std::time::Duration;

use finx_ports::{Client, PreviousSecret, StoreError};

use crate::error::invalid;
use crate::{CoreError, Finx};

/// A customer to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Its id; a random one when `None`.
    pub id: Option<String>,
    /// Display name, 1 to 200 characters.
    pub name: String,
    /// Allowed redirect URIs (at least one).
    pub redirect_uris: Vec<String>,
    /// The most its grants may read; everything when `None`.
    pub scope: Option<String>,
    /// Its secret; a random one when `None`. Only for fixed demo setups.
    pub secret: Option<ClientSecret>,
}

/// Changes to a registered customer; `None` keeps what is there.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    /// Display name, 1 to 200 characters.
    pub name: Option<String>,
    /// Allowed redirect URIs (at least one), replacing the current ones.
    pub redirect_uris: Option<Vec<String>>,
    /// The most its grants may read (grants already given keep theirs).
    pub scope: Option<String>,
}

/// The most categorisation rules one client may have.
pub const MAX_CATEGORY_RULES: usize = 500;

/// The longest a rotated client secret may stay accepted.
pub const MAX_SECRET_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// What deleting a client ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientDeletion {
    /// Grants revoked (their tokens end, their one-time data is deleted).
    pub grants: u64,
    /// Ongoing accesses deleted, with their consents at the banks, data and syncs.
    pub accesses: u64,
    /// Webhook endpoints deleted.
    pub webhooks: u64,
}

/// A registered customer with its secret, which is shown this once and never stored.
#[derive(Debug)]
pub struct RegisteredClient {
    /// The client.
    pub client: Client,
    /// Its secret.
    pub secret: ClientSecret,
}

impl Finx {
    /// Registers a customer.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] for a bad field, [`CoreError::Store`] with a conflict when the
    /// id is taken.
    pub async fn register_client(&self, new: NewClient) -> Result<RegisteredClient, CoreError> {
        let id = match new.id {
            Some(id) => ClientId::parse(&id).map_err(|e| invalid("id", e))?,
            None => ClientId::parse(&format!("client-{}", hex(&self.ports.random.bytes16())))
                .map_err(|e| invalid("id", e))?,
        };
        let name = client_name(&new.name)?;
        let redirect_uris = redirect_uris(&new.redirect_uris)?;
        let scope = new
            .scope
            .as_deref()
            .map(Scope::parse)
            .transpose()?
            .unwrap_or(Scope::FULL);
        let secret = new
            .secret
            .unwrap_or_else(|| ClientSecret::from_random(self.ports.random.bytes32()));
        let client = Client {
            id,
            name,
            secret_hash: self.hasher.hash(&secret),
            redirect_uris,
            scope,
            created_at: self.now(),
            secret_key_id: self.hasher.current().key_id(),
            previous_secret: None,
            disabled_at: None,
            category_rules: Vec::new(),
        };
        self.ports.clients.insert_client(&client).await?;
        Ok(RegisteredClient { client, secret })
    }

    /// Changes a client's name, redirect URIs or scope, checked as at registration. Takes
    /// effect at once on every instance (the read caches count it as a change).
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown client; [`CoreError::Invalid`] for a bad
    /// value.
    pub async fn update_client(
        &self,
        id: &ClientId,
        update: ClientUpdate,
    ) -> Result<Client, CoreError> {
        let mut client = self.stored_client(id).await?;
        if let Some(name) = update.name {
            client.name = client_name(&name)?;
        }
        if let Some(uris) = update.redirect_uris {
            client.redirect_uris = redirect_uris(&uris)?;
        }
        if let Some(scope) = update.scope {
            client.scope = Scope::parse(&scope)?;
        }
        self.save_client(&client).await?;
        Ok(client)
    }

    /// Disables a client: it can no longer authenticate, start flows or exchange codes,
    /// its tokens read nothing, and its accesses are not synced at the bank, on every
    /// instance at once. Its grants, accesses and
    /// data are kept, so [`Finx::enable_client`] restores it as it was. Disabling a disabled
    /// client changes nothing.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown client.
    pub async fn disable_client(&self, id: &ClientId) -> Result<Client, CoreError> {
        let mut client = self.stored_client(id).await?;
        if client.disabled_at.is_none() {
            client.disabled_at = Some(self.now());
            self.save_client(&client).await?;
        }
        Ok(client)
    }

    /// Enables a disabled client again.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown client.
    pub async fn enable_client(&self, id: &ClientId) -> Result<Client, CoreError> {
        let mut client = self.stored_client(id).await?;
        if client.disabled_at.is_some() {
            client.disabled_at = None;
            self.save_client(&client).await?;
        }
        Ok(client)
    }

    /// Gives a client a new secret. The secret it had stays accepted for `overlap` (zero
    /// ends it at once), so the customer can roll the new one out without an outage; a
    /// secret from an earlier rotation ends now.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown client; [`CoreError::Invalid`] for an overlap
    /// over [`MAX_SECRET_OVERLAP`].
    pub async fn rotate_client_secret(
        &self,
        id: &ClientId,
        overlap: Duration,
    ) -> Result<RegisteredClient, CoreError> {
        if overlap > MAX_SECRET_OVERLAP {
            return Err(invalid("overlap", "must be at most 30 days"));
        }
        let mut client = self.stored_client(id).await?;
        let now = self.now();
        let secret = ClientSecret::from_random(self.ports.random.bytes32());
        client.previous_secret = (!overlap.is_zero()).then(|| PreviousSecret {
            hash: client.secret_hash,
            key_id: client.secret_key_id.clone(),
            until: now + chrono::TimeDelta::from_std(overlap).unwrap_or(chrono::TimeDelta::MAX),
        });
        client.secret_hash = self.hasher.hash(&secret);
        client.secret_key_id = self.hasher.current().key_id();
        self.save_client(&client).await?;
        Ok(RegisteredClient { client, secret })
    }

    /// Deletes a client and everything of it: it is disabled first (so nothing new starts),
    /// then every ongoing access is deleted (its consent ended at the bank, its data and
    /// syncs deleted), every grant revoked (its tokens end, its data is deleted), every
    /// webhook endpoint deleted, and last the client itself. Running it again after a
    /// failure goes on where it stopped.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown client; the store's error.
    pub async fn delete_client(&self, id: &ClientId) -> Result<ClientDeletion, CoreError> {
        self.disable_client(id).await?;
        let mut done = ClientDeletion::default();
        for access in self.ports.accesses.client_accesses(id).await? {
            let _ = self
                .bank_at(
                    &access.institution,
                    "end_consent",
                    self.ports.bank.end_consent(&access.session),
                )
                .await;
            if self
                .ports
                .accesses
                .delete_access_record(&access.id, self.now())
                .await?
            {
                done.accesses += 1;
            }
        }
        for grant in self.ports.grants.client_grants(id).await? {
            self.ports
                .grants
                .revoke_grant(
                    grant,
                    self.now(),
                    finx_domain::webhook::RevokeReason::Revoked,
                )
                .await?;
            done.grants += 1;
        }
        for endpoint in self.ports.webhooks.list_endpoints(id).await? {
            if self.ports.webhooks.delete_endpoint(endpoint.id).await? {
                done.webhooks += 1;
            }
        }
        if !self.ports.clients.delete_client(id).await? {
            return Err(CoreError::NotFound("client"));
        }
        Ok(done)
    }

    /// Checks a client's id and secret: the current secret, or the one before a rotation
    /// while its overlap lasts, hashed under the current hash key or a previous one. Hashes
    /// are compared in constant time, and an unknown client costs the same hashing as a
    /// known one. A secret recognised under a previous hash key is hashed again under the
    /// current one, so the previous key can be dropped once every client has called.
    ///
    /// # Errors
    /// [`CoreError::InvalidClient`] for anything but a match, and for a disabled client.
    pub async fn authenticate_client(&self, id: &str, secret: &str) -> Result<Client, CoreError> {
        let presented =
            ClientSecret::from_presented(secret).map_err(|_| CoreError::InvalidClient)?;
        let hashes = self.hasher.candidates(&presented);
        let Ok(id) = ClientId::parse(id) else {
            return Err(CoreError::InvalidClient);
        };
        let Some(mut client) = self.ports.clients.find_client(&id).await? else {
            return Err(CoreError::InvalidClient);
        };
        let now = self.now();
        let current = hashes.iter().position(|h| *h == client.secret_hash);
        let previous = client
            .previous_secret
            .as_ref()
            .is_some_and(|p| now < p.until && hashes.contains(&p.hash));
        if client.disabled_at.is_some() || (current.is_none() && !previous) {
            return Err(CoreError::InvalidClient);
        }
        let key_id = self.hasher.current().key_id();
        if current.is_some_and(|i| i > 0) || (current == Some(0) && client.secret_key_id != key_id)
        {
            // Stored under a previous hash key (or before key ids were recorded): store it
            // under the current one.
            client.secret_hash = hashes[0];
            client.secret_key_id = key_id;
            self.ports.clients.update_client(&client).await?;
        }
        Ok(client)
    }

    /// One client, by id (for the widget's `frame-ancestors`).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        self.ports.clients.find_client(id).await
    }

    /// Every registered client.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.ports.clients.list_clients().await
    }

    /// Adds a categorisation rule to a client's, after the ones it has: it wins over every
    /// built-in rule, and over the client's later rules. Applies at once to every
    /// transaction read (categories are given when read).
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown client; [`CoreError::Invalid`] for a bad
    /// rule; [`CoreError::Store`] with a conflict at [`MAX_CATEGORY_RULES`].
    pub async fn add_category_rule(
        &self,
        client: &ClientId,
        new: finx_domain::enrich::NewCustomerRule,
    ) -> Result<finx_domain::enrich::CustomerRule, CoreError> {
        let id = format!("R{}", hex(&self.ports.random.bytes16()));
        let rule = finx_domain::enrich::CustomerRule::new(id, new).map_err(|e| {
            use finx_domain::enrich::CustomerRuleError as E;
            let field = match &e {
                E::UnknownCategory(_) => "category",
                E::NoCondition => "rule",
                E::BadText(f) => f,
                E::EmptyRange => "min_amount",
            };
            invalid(field, e)
        })?;
        if !self
            .ports
            .clients
            .add_category_rule(client, &rule, MAX_CATEGORY_RULES)
            .await?
        {
            return Err(CoreError::NotFound("client"));
        }
        Ok(rule)
    }

    /// A client's categorisation rules, in the order they apply.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown client.
    pub async fn category_rules(
        &self,
        client: &ClientId,
    ) -> Result<Vec<finx_domain::enrich::CustomerRule>, CoreError> {
        Ok(self.stored_client(client).await?.category_rules)
    }

    /// Deletes one of a client's categorisation rules.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown rule of this client.
    pub async fn delete_category_rule(
        &self,
        client: &ClientId,
        rule: &str,
    ) -> Result<(), CoreError> {
        if self
            .ports
            .clients
            .delete_category_rule(client, rule)
            .await?
        {
            Ok(())
        } else {
            Err(CoreError::NotFound("rule"))
        }
    }

    /// The id of the current hash key (what [`Client::secret_key_id`] says of a secret
    /// hashed under it).
    #[must_use]
    pub fn hash_key_id(&self) -> String {
        self.hasher.current().key_id()
    }

    async fn stored_client(&self, id: &ClientId) -> Result<Client, CoreError> {
        self.ports
            .clients
            .find_client(id)
            .await?
            .ok_or(CoreError::NotFound("client"))
    }

    async fn save_client(&self, client: &Client) -> Result<(), CoreError> {
        if self.ports.clients.update_client(client).await? {
            Ok(())
        } else {
            Err(CoreError::NotFound("client"))
        }
    }

    /// Whether a client may act now (known and not disabled).
    pub(crate) async fn client_enabled(&self, id: &ClientId) -> Result<bool, CoreError> {
        Ok(self
            .ports
            .clients
            .find_client(id)
            .await?
            .is_some_and(|c| c.disabled_at.is_none()))
    }
}

/// A display name: trimmed, 1 to 200 characters.
fn client_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "must be 1 to 200 characters"));
    }
    Ok(name.to_owned())
}

/// Redirect URIs: at least one, each valid.
fn redirect_uris(uris: &[String]) -> Result<Vec<RedirectUri>, CoreError> {
    if uris.is_empty() {
        return Err(invalid("redirect_uri", "at least one is required"));
    }
    uris.iter()
        .map(|u| RedirectUri::parse(u).map_err(|e| invalid("redirect_uri", e)))
        .collect()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
