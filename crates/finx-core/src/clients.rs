use finx_domain::ids::ClientId;
use finx_domain::scope::Scope;
use finx_domain::secret::ClientSecret;
use finx_domain::values::RedirectUri;
use finx_ports::{Client, StoreError};

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
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("name", "must be 1 to 200 characters"));
        }
        if new.redirect_uris.is_empty() {
            return Err(invalid("redirect_uri", "at least one is required"));
        }
        let redirect_uris = new
            .redirect_uris
            .iter()
            .map(|u| RedirectUri::parse(u).map_err(|e| invalid("redirect_uri", e)))
            .collect::<Result<Vec<_>, _>>()?;
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
        let mut client = self
            .ports
            .clients
            .find_client(id)
            .await?
            .ok_or(CoreError::NotFound("client"))?;
        if let Some(name) = update.name {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(invalid("name", "must be 1 to 200 characters"));
            }
            client.name = name;
        }
        if let Some(uris) = update.redirect_uris {
            if uris.is_empty() {
                return Err(invalid("redirect_uri", "at least one is required"));
            }
            client.redirect_uris = uris
                .iter()
                .map(|u| RedirectUri::parse(u).map_err(|e| invalid("redirect_uri", e)))
                .collect::<Result<Vec<_>, _>>()?;
        }
        if let Some(scope) = update.scope {
            client.scope = Scope::parse(&scope)?;
        }
        if !self.ports.clients.update_client(&client).await? {
            return Err(CoreError::NotFound("client"));
        }
        Ok(client)
    }

    /// Checks a client's id and secret. The secret's hash is compared in constant time, and
    /// an unknown client costs the same hashing as a known one.
    ///
    /// # Errors
    /// [`CoreError::InvalidClient`] for anything but a match.
    pub async fn authenticate_client(&self, id: &str, secret: &str) -> Result<Client, CoreError> {
        let presented =
            ClientSecret::from_presented(secret).map_err(|_| CoreError::InvalidClient)?;
        let hash = self.hasher.hash(&presented);
        let Ok(id) = ClientId::parse(id) else {
            return Err(CoreError::InvalidClient);
        };
        match self.ports.clients.find_client(&id).await? {
            Some(client) if client.secret_hash == hash => Ok(client),
            _ => Err(CoreError::InvalidClient),
        }
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
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
