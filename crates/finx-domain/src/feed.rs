//! The transactions sync feed's cursor (issue 14): where a customer stands in the changes
//! of one access.
//!
//! Every change to a transaction takes the next number of its access's sequence, so the
//! feed is the changes in number order. A cursor holds `after`, the last number delivered,
//! and `base`, the number up to which the customer had read everything when the current
//! pass began: a transaction first written after `base` is `added` for them, one written
//! before is `modified`, and a removal of one they never saw is not reported. A pass ends
//! when a page says `has_more: false`; its cursor starts the next pass (`base = after`).
//! If, in the middle of a pass, a transaction the customer may have got as added in this
//! pass (first written after `base`, up to `after`) changes again after the last page was
//! read (numbered above `high`, the highest number then), the customer cannot tell whether
//! the next "added" repeats one: they must restart the pass from its first cursor, as with
//! Plaid's `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`.
//!
//! The cursor is opaque: `fxc1_` and base64url of the grant id, the numbers and a keyed
//! tag, so only finX makes one, and one made for one grant (whose accounts it follows)
//! fails on another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ids::GrantId;
use crate::secret::HashKeys;

/// A position in a grant's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedCursor {
    /// The grant whose accounts it reads (a cursor works for that grant only).
    pub grant: GrantId,
    /// The last number delivered (-1 before any).
    pub after: i64,
    /// Everything up to this number was read when the current pass began.
    pub base: i64,
    /// The access's highest number when the page that made this cursor was read: a change
    /// numbered above it happened after that read.
    pub high: i64,
}

/// A cursor that finX did not make, or made for another access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not one this feed handed out")]
pub struct CursorError;

const PREFIX: &str = "fxc1_";
const DOMAIN: &[u8] = b"finx-feed-cursor-v1";

impl FeedCursor {
    /// The start of a grant's feed.
    #[must_use]
    pub fn start(grant: GrantId) -> Self {
        Self {
            grant,
            after: -1,
            base: -1,
            high: -1,
        }
    }

    /// Whether a pass is under way (some but maybe not all changes of it delivered).
    #[must_use]
    pub fn in_pass(&self) -> bool {
        self.after > self.base
    }

    /// The opaque form.
    #[must_use]
    pub fn encode(&self, keys: &HashKeys) -> String {
        let body = format!("{}.{}.{}.{}", self.grant, self.after, self.base, self.high);
        let tag = keys.current().tag(DOMAIN, body.as_bytes());
        let raw = format!("{body}.{}", tag.to_hex());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// Reads a cursor for `grant`.
    ///
    /// # Errors
    /// [`CursorError`] for anything finX did not make for this access (under the current
    /// hash key or a previous one).
    pub fn decode(raw: &str, grant: &GrantId, keys: &HashKeys) -> Result<Self, CursorError> {
        if raw.len() > 512 {
            return Err(CursorError);
        }
        let bytes = raw
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .ok_or(CursorError)?;
        let text = String::from_utf8(bytes).map_err(|_| CursorError)?;
        let (body, tag) = text.rsplit_once('.').ok_or(CursorError)?;
        let given = crate::secret::TokenHash::from_hex(tag).map_err(|_| CursorError)?;
        let known = keys
            .all()
            .map(|k| k.tag(DOMAIN, body.as_bytes()) == given)
            .fold(false, |a, b| a | b);
        if !known {
            return Err(CursorError);
        }
        let mut parts = body.split('.');
        let (Some(a), Some(after), Some(base), Some(high), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CursorError);
        };
        let cursor = Self {
            grant: GrantId::parse(a).map_err(|_| CursorError)?,
            after: after.parse().map_err(|_| CursorError)?,
            base: base.parse().map_err(|_| CursorError)?,
            high: high.parse().map_err(|_| CursorError)?,
        };
        if cursor.grant != *grant
            || cursor.base > cursor.after
            || cursor.after > cursor.high
            || cursor.base < -1
        {
            return Err(CursorError);
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgery_and_other_accesses() {
        let h = HashKeys::new(b"0123456789abcdef0123", &[]).expect("key");
        let a = GrantId::from_random([1; 16]);
        let c = FeedCursor {
            grant: a,
            after: 41,
            base: 7,
            high: 50,
        };
        let s = c.encode(&h);
        assert!(s.starts_with("fxc1_"));
        assert_eq!(FeedCursor::decode(&s, &a, &h), Ok(c.clone()));
        assert!(c.in_pass());
        assert!(FeedCursor::decode(&s, &GrantId::from_random([2; 16]), &h).is_err());
        let other = HashKeys::new(b"another-key-0123456789", &[]).expect("key");
        assert!(FeedCursor::decode(&s, &a, &other).is_err());
        let forged = FeedCursor { after: 1_000, ..c }.encode(&other);
        assert!(FeedCursor::decode(&forged, &a, &h).is_err());
        // After a rotation, a cursor made under the previous key still reads.
        let rotated = HashKeys::new(
            b"another-key-0123456789",
            &[b"0123456789abcdef0123".to_vec()],
        )
        .expect("keys");
        assert_eq!(FeedCursor::decode(&s, &a, &rotated), Ok(c.clone()));
        for junk in ["", "fxc1_", "fxc1_!!!", "abc", &"x".repeat(600)] {
            assert!(FeedCursor::decode(junk, &a, &h).is_err(), "{junk}");
        }
        assert!(!FeedCursor::start(a).in_pass());
    }
}
