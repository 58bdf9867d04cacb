use finx_domain::Timestamp;
use finx_domain::scope::Scope;
use finx_domain::secret::{AccessToken, AuthorizationCode, RefreshToken, TokenHash};
use finx_domain::token::{
    AccessTokenRecord, CodeRecord, Grant, IssuedTokens, RedeemError, RefreshTokenRecord,
    RotateError, issues_refresh_tokens,
};
use finx_domain::values::RedirectUri;
use finx_ports::{Client, RedeemFailure, RotateFailure, StoreError};

use crate::{CoreError, Finx};

/// What `POST /auth/token` answers.
#[derive(Debug)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: AccessToken,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// What it may read.
    pub scope: Scope,
    /// The new refresh token, when the grant has `offline` and lives longer than the access
    /// token. The one presented before is now used and must be replaced by the caller.
    pub refresh_token: Option<RefreshToken>,
    /// Seconds until the refresh token expires (never past the grant's end).
    pub refresh_expires_in: Option<i64>,
}

impl Finx {
    /// Exchanges an authorization code (step 2 of the guide).
    ///
    /// # Errors
    /// [`CoreError::InvalidGrant`] for an unknown, expired or used code, a code of another
    /// client, or a `redirect_uri` that differs from the flow's. A used code also revokes
    /// every token of its grant.
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, CoreError> {
        let code = AuthorizationCode::from_presented(code)
            .map_err(|_| CoreError::InvalidGrant("malformed code"))?;
        let (hash, (_, grant)) = self
            .find_code(&code)
            .await?
            .ok_or(CoreError::InvalidGrant("unknown code"))?;
        if grant.client_id != client.id {
            return Err(CoreError::InvalidGrant(
                "the code was issued to another client",
            ));
        }
        // Both sides parsed the same way, so `https://app.example` matches the stored
        // `https://app.example/` and an explicit default port matches none.
        if RedirectUri::parse(redirect_uri).ok().as_ref() != Some(&grant.redirect_uri) {
            return Err(CoreError::InvalidGrant(
                "redirect_uri does not match the one of the flow",
            ));
        }
        let now = self.now();
        let (response, issued) = self.mint(&grant, grant.scope, now);
        match self.ports.grants.redeem_code(&hash, now, &issued).await {
            Ok(_) => Ok(response),
            Err(RedeemFailure::Rejected(e)) => Err(CoreError::InvalidGrant(match e {
                RedeemError::NotFound => "unknown code",
                RedeemError::Expired => "the code has expired",
                RedeemError::AlreadyUsed { .. } => crate::error::CODE_REUSED,
                RedeemError::Revoked => "the grant was revoked",
            })),
            Err(RedeemFailure::Store(e)) => Err(e.into()),
        }
    }

    /// Rotates a refresh token: a new access token and a new refresh token; the presented one
    /// stops working. `scope` may narrow the new access token's scope.
    ///
    /// # Errors
    /// [`CoreError::InvalidGrant`] for an unknown, expired, used or foreign refresh token; a
    /// reused one also revokes every token of its grant. [`CoreError::InvalidScope`] for a
    /// wider scope.
    pub async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, CoreError> {
        let token = RefreshToken::from_presented(refresh_token)
            .map_err(|_| CoreError::InvalidGrant("malformed refresh token"))?;
        let (hash, (_, grant)) = self
            .find_refresh_token(&token)
            .await?
            .ok_or(CoreError::InvalidGrant("unknown refresh token"))?;
        if grant.client_id != client.id {
            return Err(CoreError::InvalidGrant(
                "the refresh token was issued to another client",
            ));
        }
        let requested = scope.map(Scope::parse).transpose()?;
        let access_scope = Scope::narrow(grant.scope, requested)?;
        let now = self.now();
        let (response, issued) = self.mint(&grant, access_scope, now);
        match self
            .ports
            .grants
            .rotate_refresh_token(&hash, now, &issued)
            .await
        {
            Ok(_) => Ok(response),
            Err(RotateFailure::Rejected(e)) => Err(CoreError::InvalidGrant(match e {
                RotateError::NotFound => "unknown refresh token",
                RotateError::Expired => "the refresh token has expired",
                RotateError::Reused { .. } => crate::error::REFRESH_REUSED,
                RotateError::Revoked => "the grant was revoked",
            })),
            Err(RotateFailure::Store(e)) => Err(e.into()),
        }
    }

    /// Revokes a token (RFC 7009): a refresh token revokes its whole grant, an access token
    /// only itself. Unknown tokens are not an error.
    ///
    /// # Errors
    /// [`CoreError::UnauthorizedClient`] when the token belongs to another client.
    pub async fn revoke(&self, client: &Client, token: &str) -> Result<(), CoreError> {
        let now = self.now();
        if let Ok(refresh) = RefreshToken::from_presented(token) {
            if let Some((_, (_, grant))) = self.find_refresh_token(&refresh).await? {
                if grant.client_id != client.id {
                    return Err(CoreError::UnauthorizedClient);
                }
                self.ports
                    .grants
                    .revoke_grant(grant.id, now, finx_domain::webhook::RevokeReason::Revoked)
                    .await?;
                return Ok(());
            }
        }
        if let Ok(access) = AccessToken::from_presented(token) {
            for hash in self.hasher.candidates(&access) {
                if let Some((_, grant)) = self.ports.grants.find_access_token(&hash).await? {
                    if grant.client_id != client.id {
                        return Err(CoreError::UnauthorizedClient);
                    }
                    self.ports.grants.revoke_access_token(&hash, now).await?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// A code's record and grant, under whichever hash key it was stored, with that hash.
    pub(crate) async fn find_code(
        &self,
        code: &AuthorizationCode,
    ) -> Result<Option<(TokenHash, (CodeRecord, Grant))>, StoreError> {
        for hash in self.hasher.candidates(code) {
            if let Some(found) = self.ports.grants.find_code(&hash).await? {
                return Ok(Some((hash, found)));
            }
        }
        Ok(None)
    }

    /// A refresh token's record and grant, under whichever hash key it was stored, with
    /// that hash.
    async fn find_refresh_token(
        &self,
        token: &RefreshToken,
    ) -> Result<Option<(TokenHash, (RefreshTokenRecord, Grant))>, StoreError> {
        for hash in self.hasher.candidates(token) {
            if let Some(found) = self.ports.grants.find_refresh_token(&hash).await? {
                return Ok(Some((hash, found)));
            }
        }
        Ok(None)
    }

    /// Makes a new access token (and refresh token, under `offline`) for a grant. Neither
    /// outlives the grant's absolute end.
    pub(crate) fn mint(
        &self,
        grant: &Grant,
        access_scope: Scope,
        now: Timestamp,
    ) -> (TokenResponse, IssuedTokens) {
        let grant_id = grant.id;
        let access = AccessToken::from_random(self.ports.random.bytes32());
        let access_expires = grant.cap(now, self.lifetimes.access);
        let refresh_expires = grant.cap(now, self.lifetimes.refresh);
        // A refresh token that cannot outlive the access token (a one-time grant ending
        // with its retention window) would promise what the grant does not give: none.
        let refresh = (issues_refresh_tokens(grant.scope) && refresh_expires > access_expires)
            .then(|| RefreshToken::from_random(self.ports.random.bytes32()));
        let issued = IssuedTokens {
            access: AccessTokenRecord {
                hash: self.hasher.hash(&access),
                grant_id,
                issued_at: now,
                expires_at: access_expires,
                scope: access_scope,
                revoked_at: None,
            },
            refresh: refresh.as_ref().map(|r| RefreshTokenRecord {
                hash: self.hasher.hash(r),
                grant_id,
                issued_at: now,
                expires_at: refresh_expires,
                used_at: None,
            }),
        };
        let refresh_expires_in = refresh
            .as_ref()
            .map(|_| (refresh_expires - now).num_seconds().max(0));
        let response = TokenResponse {
            access_token: access,
            expires_in: (access_expires - now).num_seconds().max(0),
            scope: access_scope,
            refresh_token: refresh,
            refresh_expires_in,
        };
        (response, issued)
    }
}
