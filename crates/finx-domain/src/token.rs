//! Token lifetimes and the rules of a grant: a code is used once, a refresh token rotates on
//! every use, and reuse of either revokes the whole family.
//!
//! [`GrantFamily`] is the reference model of these rules. The in-memory store keeps its grants
//! as `GrantFamily` values; the SQL stores implement the same rules in SQL and are held to them
//! by the conformance suite.

use chrono::TimeDelta;
use thiserror::Error;

use crate::Timestamp;
use crate::ids::{AccessId, AccountId, ClientId, FlowId, GrantId};
use crate::scope::{Scope, ScopeItem};
use crate::secret::TokenHash;
use crate::values::RedirectUri;

/// How long each kind of credential lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Authorization code: 1 hour.
    pub code: TimeDelta,
    /// Access token: 1 hour.
    pub access: TimeDelta,
    /// Refresh token: 90 days, counted from its issue (every rotation starts a new one).
    pub refresh: TimeDelta,
    /// Widget link: 1 hour.
    pub flow: TimeDelta,
    /// A grant's absolute lifetime: 180 days from its creation, however often it is
    /// refreshed. No token of the grant outlives it.
    pub grant: TimeDelta,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            code: TimeDelta::hours(1),
            access: TimeDelta::hours(1),
            refresh: TimeDelta::days(90),
            flow: TimeDelta::hours(1),
            grant: TimeDelta::days(180),
        }
    }
}

/// What a customer was granted at the end of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant (token family).
    pub id: GrantId,
    /// The customer it was granted to.
    pub client_id: ClientId,
    /// The flow that produced it.
    pub flow_id: FlowId,
    /// The bank connection whose data it reads.
    pub access_id: AccessId,
    /// The accounts the end user chose; the only ones this grant sees.
    pub account_ids: Vec<AccountId>,
    /// What it may read.
    pub scope: Scope,
    /// The redirect URI of the flow; the code exchange must name it again.
    pub redirect_uri: RedirectUri,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its absolute end (exclusive): after it no token of the grant works, and its bank
    /// data is deleted unless another live grant holds the same bank access.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// The language of its flow: what finX names things in for it (categories).
    pub language: crate::values::Language,
    /// For an account verification's grant: what its flow was asked to verify.
    pub verification: Option<crate::verify::Verification>,
}

impl Grant {
    /// Whether it has been revoked.
    #[must_use]
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether it still justifies keeping its bank data: neither revoked nor past its end.
    #[must_use]
    pub fn is_live(&self, now: Timestamp) -> bool {
        !self.is_revoked() && !is_expired(self.expires_at, now)
    }

    /// The expiry of a credential issued at `now` for `lifetime`: never past the grant's end.
    #[must_use]
    pub fn cap(&self, now: Timestamp, lifetime: TimeDelta) -> Timestamp {
        now.checked_add_signed(lifetime)
            .unwrap_or(self.expires_at)
            .min(self.expires_at)
    }
}

/// A stored authorization code (by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// Keyed hash of the code.
    pub hash: TokenHash,
    /// Its grant.
    pub grant_id: GrantId,
    /// Issue time.
    pub issued_at: Timestamp,
    /// Expiry (exclusive).
    pub expires_at: Timestamp,
    /// When it was redeemed, if it was.
    pub used_at: Option<Timestamp>,
}

/// A stored access token (by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    /// Keyed hash of the token.
    pub hash: TokenHash,
    /// Its grant.
    pub grant_id: GrantId,
    /// Issue time.
    pub issued_at: Timestamp,
    /// Expiry (exclusive).
    pub expires_at: Timestamp,
    /// What it may read: the grant's scope, or less when a refresh narrowed it.
    pub scope: Scope,
    /// When it was revoked on its own (RFC 7009), if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A stored refresh token (by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Keyed hash of the token.
    pub hash: TokenHash,
    /// Its grant.
    pub grant_id: GrantId,
    /// Issue time.
    pub issued_at: Timestamp,
    /// Expiry (exclusive).
    pub expires_at: Timestamp,
    /// When it was exchanged for a new one, if it was.
    pub used_at: Option<Timestamp>,
}

/// The tokens issued by one redemption or rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The new access token.
    pub access: AccessTokenRecord,
    /// The new refresh token, when the grant has `offline`.
    pub refresh: Option<RefreshTokenRecord>,
}

/// Why a code could not be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RedeemError {
    /// No such code.
    #[error("unknown authorization code")]
    NotFound,
    /// The code is past its lifetime.
    #[error("authorization code expired")]
    Expired,
    /// The code was used before; the grant has now been revoked.
    #[error("authorization code already used; grant revoked")]
    AlreadyUsed {
        /// The revoked grant.
        grant_id: GrantId,
    },
    /// The grant was revoked.
    #[error("grant revoked")]
    Revoked,
}

/// Why a refresh token could not be rotated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RotateError {
    /// No such refresh token.
    #[error("unknown refresh token")]
    NotFound,
    /// The token is past its lifetime.
    #[error("refresh token expired")]
    Expired,
    /// The token was rotated before; the grant has now been revoked.
    #[error("refresh token reused; grant revoked")]
    Reused {
        /// The revoked grant.
        grant_id: GrantId,
    },
    /// The grant was revoked.
    #[error("grant revoked")]
    Revoked,
}

/// Whether `expires_at` has passed at `now`. Lifetimes are half-open: a credential is valid
/// from its issue up to, not including, its expiry.
#[must_use]
pub fn is_expired(expires_at: Timestamp, now: Timestamp) -> bool {
    now >= expires_at
}

/// The rule for redeeming a code, given its record and its grant.
///
/// # Errors
/// The [`RedeemError`] that applies, checked in the order: revoked, replayed, expired.
pub fn check_redeem(code: &CodeRecord, grant: &Grant, now: Timestamp) -> Result<(), RedeemError> {
    if grant.is_revoked() {
        return Err(RedeemError::Revoked);
    }
    if code.used_at.is_some() {
        return Err(RedeemError::AlreadyUsed { grant_id: grant.id });
    }
    if is_expired(code.expires_at, now) || is_expired(grant.expires_at, now) {
        return Err(RedeemError::Expired);
    }
    Ok(())
}

/// The rule for rotating a refresh token, given its record and its grant.
///
/// # Errors
/// The [`RotateError`] that applies, checked in the order: revoked, reused, expired.
pub fn check_rotate(
    token: &RefreshTokenRecord,
    grant: &Grant,
    now: Timestamp,
) -> Result<(), RotateError> {
    if grant.is_revoked() {
        return Err(RotateError::Revoked);
    }
    if token.used_at.is_some() {
        return Err(RotateError::Reused { grant_id: grant.id });
    }
    if is_expired(token.expires_at, now) || is_expired(grant.expires_at, now) {
        return Err(RotateError::Expired);
    }
    Ok(())
}

/// Whether an access token may be used at `now`.
#[must_use]
pub fn access_token_usable(token: &AccessTokenRecord, grant: &Grant, now: Timestamp) -> bool {
    grant.is_live(now) && token.revoked_at.is_none() && !is_expired(token.expires_at, now)
}

/// Whether a grant with this scope receives refresh tokens.
#[must_use]
pub fn issues_refresh_tokens(scope: Scope) -> bool {
    scope.contains(ScopeItem::Offline)
}

/// A grant with its code and every token issued from it: the reference model of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFamily {
    /// The grant.
    pub grant: Grant,
    /// Its one code.
    pub code: CodeRecord,
    /// Access tokens issued so far.
    pub access_tokens: Vec<AccessTokenRecord>,
    /// Refresh tokens issued so far, used ones included (reuse detection needs them).
    pub refresh_tokens: Vec<RefreshTokenRecord>,
}

impl GrantFamily {
    /// A new family, holding only its code.
    #[must_use]
    pub fn new(grant: Grant, code: CodeRecord) -> Self {
        Self {
            grant,
            code,
            access_tokens: Vec::new(),
            refresh_tokens: Vec::new(),
        }
    }

    /// Redeems the code, issuing `tokens`. A second redemption revokes the family.
    ///
    /// # Errors
    /// See [`check_redeem`]. On [`RedeemError::AlreadyUsed`] the grant is revoked at `now`.
    pub fn redeem_code(&mut self, now: Timestamp, tokens: IssuedTokens) -> Result<(), RedeemError> {
        let checked = check_redeem(&self.code, &self.grant, now);
        if let Err(RedeemError::AlreadyUsed { .. }) = checked {
            self.revoke(now);
        }
        checked?;
        self.code.used_at = Some(now);
        self.issue(tokens);
        Ok(())
    }

    /// Rotates the refresh token with hash `old`, issuing `tokens`. Reuse revokes the family.
    ///
    /// # Errors
    /// [`RotateError::NotFound`] when `old` is not of this family, else see [`check_rotate`].
    pub fn rotate(
        &mut self,
        old: &TokenHash,
        now: Timestamp,
        tokens: IssuedTokens,
    ) -> Result<(), RotateError> {
        let idx = self
            .refresh_tokens
            .iter()
            .position(|t| t.hash == *old)
            .ok_or(RotateError::NotFound)?;
        let checked = check_rotate(&self.refresh_tokens[idx], &self.grant, now);
        if let Err(RotateError::Reused { .. }) = checked {
            self.revoke(now);
        }
        checked?;
        self.refresh_tokens[idx].used_at = Some(now);
        self.issue(tokens);
        Ok(())
    }

    /// Revokes the grant; idempotent (the first revocation time is kept).
    pub fn revoke(&mut self, now: Timestamp) {
        self.grant.revoked_at.get_or_insert(now);
    }

    /// Refresh tokens that would rotate at `now`.
    pub fn live_refresh_tokens(&self, now: Timestamp) -> impl Iterator<Item = &RefreshTokenRecord> {
        self.refresh_tokens
            .iter()
            .filter(move |t| check_rotate(t, &self.grant, now).is_ok())
    }

    /// Access tokens usable at `now`.
    pub fn live_access_tokens(&self, now: Timestamp) -> impl Iterator<Item = &AccessTokenRecord> {
        self.access_tokens
            .iter()
            .filter(move |t| access_token_usable(t, &self.grant, now))
    }

    /// Drops used and expired refresh tokens and expired access tokens whose expiry lies
    /// before `keep_after`. Used refresh tokens must be kept while they could still be
    /// replayed (their own lifetime), or reuse would go unnoticed.
    pub fn purge(&mut self, keep_after: Timestamp) {
        self.access_tokens.retain(|t| t.expires_at > keep_after);
        self.refresh_tokens.retain(|t| t.expires_at > keep_after);
    }

    fn issue(&mut self, tokens: IssuedTokens) {
        self.access_tokens.push(tokens.access);
        self.refresh_tokens.extend(tokens.refresh);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn t0() -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
    }

    fn hash(n: u32) -> TokenHash {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        TokenHash::from_bytes(b)
    }

    fn grant(now: Timestamp) -> Grant {
        Grant {
            id: GrantId::from_random([1; 16]),
            client_id: ClientId::parse("c").expect("id"),
            flow_id: FlowId::from_random([2; 16]),
            access_id: AccessId::derive(&["x"]),
            account_ids: vec![],
            scope: Scope::FULL,
            redirect_uri: RedirectUri::parse("https://a.example/cb").expect("uri"),
            created_at: now,
            expires_at: now + Lifetimes::default().grant,
            revoked_at: None,
            language: crate::values::Language::De,
            verification: None,
        }
    }

    fn family(now: Timestamp) -> GrantFamily {
        let g = grant(now);
        let code = CodeRecord {
            hash: hash(0),
            grant_id: g.id,
            issued_at: now,
            expires_at: now + Lifetimes::default().code,
            used_at: None,
        };
        GrantFamily::new(g, code)
    }

    fn tokens(n: u32, g: GrantId, now: Timestamp) -> IssuedTokens {
        let l = Lifetimes::default();
        IssuedTokens {
            access: AccessTokenRecord {
                hash: hash(n),
                grant_id: g,
                issued_at: now,
                expires_at: now + l.access,
                scope: Scope::FULL,
                revoked_at: None,
            },
            refresh: Some(RefreshTokenRecord {
                hash: hash(n + 1_000_000),
                grant_id: g,
                issued_at: now,
                expires_at: now + l.refresh,
                used_at: None,
            }),
        }
    }

    #[test]
    fn a_code_is_redeemed_once_and_a_replay_revokes_the_grant() {
        let now = t0();
        let mut f = family(now);
        let gid = f.grant.id;
        assert_eq!(f.redeem_code(now, tokens(1, gid, now)), Ok(()));
        assert_eq!(f.live_refresh_tokens(now).count(), 1);
        assert_eq!(
            f.redeem_code(now, tokens(2, gid, now)),
            Err(RedeemError::AlreadyUsed { grant_id: gid })
        );
        assert!(f.grant.is_revoked());
        assert_eq!(f.live_refresh_tokens(now).count(), 0);
        assert_eq!(f.live_access_tokens(now).count(), 0);
    }

    #[test]
    fn a_grant_ends_at_its_absolute_lifetime_however_often_it_is_refreshed() {
        let start = t0();
        let mut f = family(start);
        let gid = f.grant.id;
        assert_eq!(f.redeem_code(start, tokens(1, gid, start)), Ok(()));
        // Refresh every 80 days: each refresh token would live 90 days on its own.
        let mut now = start;
        let mut old = hash(1 + 1_000_000);
        for n in 2..=3 {
            now += TimeDelta::days(80);
            assert_eq!(
                f.rotate(&old, now, tokens(n, gid, now)),
                Ok(()),
                "day {}",
                (now - start).num_days()
            );
            old = hash(n + 1_000_000);
        }
        // Day 181: the refresh token of day 160 would live on, but the grant has ended.
        now += TimeDelta::days(21);
        assert!(!f.grant.is_live(now));
        assert_eq!(
            f.rotate(&old, now, tokens(9, gid, now)),
            Err(RotateError::Expired)
        );
        assert_eq!(f.live_access_tokens(now).count(), 0);
        // Credentials issued near the end are capped at it.
        let end = f.grant.expires_at;
        let late = end - TimeDelta::minutes(10);
        assert_eq!(f.grant.cap(late, TimeDelta::days(90)), end);
        assert_eq!(
            f.grant.cap(late, TimeDelta::minutes(5)),
            late + TimeDelta::minutes(5)
        );
    }

    #[test]
    fn a_code_expires_after_one_hour() {
        let now = t0();
        let mut f = family(now);
        let gid = f.grant.id;
        let late = now + TimeDelta::hours(1);
        assert_eq!(
            f.redeem_code(late, tokens(1, gid, late)),
            Err(RedeemError::Expired)
        );
        assert!(!f.grant.is_revoked());
    }

    #[test]
    fn purge_keeps_used_refresh_tokens_while_they_could_be_replayed() {
        let now = t0();
        let mut f = family(now);
        let gid = f.grant.id;
        f.redeem_code(now, tokens(1, gid, now)).expect("redeem");
        f.rotate(&hash(1_000_001), now, tokens(2, gid, now))
            .expect("rotate");
        f.purge(now + TimeDelta::days(1));
        assert_eq!(
            f.refresh_tokens.len(),
            2,
            "used token kept for reuse detection"
        );
        assert_eq!(f.access_tokens.len(), 0, "expired access tokens dropped");
        f.purge(now + TimeDelta::days(91));
        assert!(f.refresh_tokens.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Rotate the refresh token issued `back` rotations ago (0 = the newest).
        Rotate {
            back: usize,
            after_minutes: i64,
        },
        RedeemAgain,
        Revoke,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0usize..4, 0i64..200_000).prop_map(|(back, after_minutes)| Op::Rotate { back, after_minutes }),
            1 => Just(Op::RedeemAgain),
            1 => Just(Op::Revoke),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// After any sequence of rotations, reuses, replays and revocations, a live grant has
        /// exactly one live refresh token and a revoked grant has none.
        #[test]
        fn at_most_one_refresh_token_is_ever_live(ops in proptest::collection::vec(op(), 0..40)) {
            let mut now = t0();
            let mut f = family(now);
            let gid = f.grant.id;
            f.redeem_code(now, tokens(1, gid, now)).expect("first redemption");
            let mut issued = vec![hash(1_000_001)];
            for (i, o) in ops.into_iter().enumerate() {
                let n = u32::try_from(i).expect("small") + 2;
                match o {
                    Op::Rotate { back, after_minutes } => {
                        now += TimeDelta::minutes(after_minutes);
                        let Some(old) = issued.iter().rev().nth(back).copied() else { continue };
                        let was_live = f.live_refresh_tokens(now).any(|t| t.hash == old);
                        let out = f.rotate(&old, now, tokens(n, gid, now));
                        prop_assert_eq!(out.is_ok(), was_live);
                        if out.is_ok() { issued.push(hash(n + 1_000_000)); }
                        if back > 0 && !f.grant.is_revoked() {
                            prop_assert!(false, "reusing an older token must revoke the grant");
                        }
                    }
                    Op::RedeemAgain => {
                        let out = f.redeem_code(now, tokens(n, gid, now));
                        prop_assert!(out.is_err());
                        prop_assert!(f.grant.is_revoked());
                    }
                    Op::Revoke => f.revoke(now),
                }
                let live = f.live_refresh_tokens(now).count();
                if f.grant.is_revoked() {
                    prop_assert_eq!(live, 0);
                    prop_assert_eq!(f.live_access_tokens(now).count(), 0);
                } else {
                    let newest_expired = f.refresh_tokens.last().is_some_and(|t| is_expired(t.expires_at, now))
                        || is_expired(f.grant.expires_at, now);
                    prop_assert_eq!(live, usize::from(!newest_expired));
                }
            }
        }

        /// No credential is ever usable at or past its expiry.
        #[test]
        fn no_token_is_valid_past_its_lifetime(minutes in 0i64..200_000, rotate_at in 0i64..200_000) {
            let start = t0();
            let mut f = family(start);
            let gid = f.grant.id;
            let l = Lifetimes::default();
            let at = start + TimeDelta::minutes(rotate_at);
            let redeemed = f.redeem_code(at, tokens(1, gid, at));
            prop_assert_eq!(redeemed.is_ok(), at < start + l.code);
            let now = at + TimeDelta::minutes(minutes);
            for t in f.live_access_tokens(now) { prop_assert!(now < t.issued_at + l.access); }
            for t in f.live_refresh_tokens(now) { prop_assert!(now < t.issued_at + l.refresh); }
            let expired_rotation = f.rotate(&hash(1_000_001), now, tokens(2, gid, now));
            if redeemed.is_ok() && now >= at + l.refresh {
                prop_assert_eq!(expired_rotation, Err(RotateError::Expired));
            }
        }

        /// A replayed code leaves no live token of its grant, whatever came before.
        #[test]
        fn a_replayed_code_leaves_no_live_token(rotations in 0usize..6, minutes in 0i64..59) {
            let now = t0();
            let mut f = family(now);
            let gid = f.grant.id;
            f.redeem_code(now, tokens(1, gid, now)).expect("redeem");
            let mut last = hash(1_000_001);
            for i in 0..rotations {
                let n = u32::try_from(i).expect("small") + 2;
                f.rotate(&last, now, tokens(n, gid, now)).expect("rotate");
                last = hash(n + 1_000_000);
            }
            let later = now + TimeDelta::minutes(minutes);
            prop_assert!(f.redeem_code(later, tokens(99, gid, later)).is_err());
            prop_assert_eq!(f.live_refresh_tokens(later).count(), 0);
            prop_assert_eq!(f.live_access_tokens(later).count(), 0);
        }
    }
}
