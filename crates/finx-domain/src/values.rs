//! Validated request values: redirect URI, `state`, language and sync period.

use std::fmt;

use thiserror::Error;
use url::Url;

/// Why a value given by a caller was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    /// The redirect URI is not an absolute http(s) URL without fragment.
    #[error("redirect_uri must be an absolute http or https URL without fragment: {0}")]
    RedirectUri(String),
    /// `state` is empty or longer than 1024 characters.
    #[error("state must be between 1 and 1024 characters long")]
    State,
    /// `sync_period` is outside `1..=730` days.
    #[error("sync_period must be between 1 and 730 days")]
    SyncPeriod,
}

/// An absolute `http` or `https` URL without fragment, to which the end user is sent back.
#[derive(Clone, PartialEq, Eq)]
pub struct RedirectUri(Url);

impl RedirectUri {
    /// Parses a redirect URI: absolute, `http` or `https`, with a host, no fragment and no
    /// user info.
    ///
    /// # Errors
    /// [`ValueError::RedirectUri`] when any of these rules is broken.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let reject = |why: &str| ValueError::RedirectUri(why.to_owned());
        if raw.len() > 2048 {
            return Err(reject("longer than 2048 bytes"));
        }
        let url = Url::parse(raw).map_err(|e| ValueError::RedirectUri(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(reject("scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(reject("a host is required"));
        }
        if url.fragment().is_some() || raw.contains('#') {
            return Err(reject("a fragment is not allowed"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(reject("user info is not allowed"));
        }
        Ok(Self(url))
    }

    /// The URI as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// True when the host is a loopback address (`127.0.0.1`, `[::1]` or `localhost`).
    #[must_use]
    pub fn is_loopback(&self) -> bool {
        match self.0.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
    }

    /// Whether this requested URI matches a registered one: exactly, except that for a
    /// registered loopback URI any port is accepted (RFC 8252 §7.3).
    #[must_use]
    pub fn matches_registered(&self, registered: &RedirectUri) -> bool {
        if self.0 == registered.0 {
            return true;
        }
        if !(registered.is_loopback() && self.is_loopback()) {
            return false;
        }
        let (a, b) = (&self.0, &registered.0);
        a.scheme() == b.scheme()
            && a.host() == b.host()
            && a.path() == b.path()
            && a.query() == b.query()
    }

    /// Whether this URI matches any in `registered`.
    #[must_use]
    pub fn is_allowed_by(&self, registered: &[RedirectUri]) -> bool {
        registered.iter().any(|r| self.matches_registered(r))
    }

    /// The web origin (`scheme://host[:port]`) of this URI.
    #[must_use]
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.0)
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// The opaque `state` a customer passes at flow creation and gets back on the redirect:
/// 1 to 1024 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State(String);

impl State {
    /// Parses a state value.
    ///
    /// # Errors
    /// [`ValueError::State`] when it is empty or longer than 1024 characters.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let chars = raw.chars().count();
        if chars == 0 || chars > 1024 {
            return Err(ValueError::State);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The state as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The language of the widget. Unknown languages fall back to German.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Language {
    /// German, the default.
    #[default]
    De,
    /// English.
    En,
}

impl Language {
    /// Reads a language tag leniently: `en`, `en-GB`, `EN` are English; anything else is German.
    #[must_use]
    pub fn from_tag(tag: &str) -> Self {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("en") {
            Self::En
        } else {
            Self::De
        }
    }

    /// The two-letter code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::De => "de",
            Self::En => "en",
        }
    }
}

/// How many days of transaction history to request from the bank: `1..=730`, default 90.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncPeriod(u16);

impl SyncPeriod {
    /// The longest history we ask a bank for.
    pub const MAX_DAYS: u16 = 730;

    /// Validates a number of days.
    ///
    /// # Errors
    /// [`ValueError::SyncPeriod`] when outside `1..=730`.
    pub fn new(days: i64) -> Result<Self, ValueError> {
        u16::try_from(days)
            .ok()
            .filter(|d| (1..=Self::MAX_DAYS).contains(d))
            .map(Self)
            .ok_or(ValueError::SyncPeriod)
    }

    /// The number of days.
    #[must_use]
    pub fn days(self) -> u16 {
        self.0
    }
}

impl Default for SyncPeriod {
    fn default() -> Self {
        Self(90)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> RedirectUri {
        RedirectUri::parse(s).expect("valid uri")
    }

    #[test]
    fn redirect_uri_rules() {
        assert!(RedirectUri::parse("https://app.example.com/cb?x=1").is_ok());
        assert!(RedirectUri::parse("http://127.0.0.1:8080/cb").is_ok());
        for bad in [
            "/relative",
            "ftp://x.example/cb",
            "https://app.example.com/cb#frag",
            "https://app.example.com/cb#",
            "https://user:pw@app.example.com/cb",
            "javascript:alert(1)",
            "",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn redirect_uri_matches_exactly_except_loopback_ports() {
        let reg = [
            uri("https://app.example.com/cb"),
            uri("http://127.0.0.1/cb"),
        ];
        assert!(uri("https://app.example.com/cb").is_allowed_by(&reg));
        assert!(!uri("https://app.example.com/cb2").is_allowed_by(&reg));
        assert!(!uri("https://app.example.com/cb?a=1").is_allowed_by(&reg));
        assert!(!uri("https://app.example.com:444/cb").is_allowed_by(&reg));
        assert!(!uri("http://app.example.com/cb").is_allowed_by(&reg));
        assert!(uri("http://127.0.0.1:53412/cb").is_allowed_by(&reg));
        assert!(!uri("http://127.0.0.1:53412/other").is_allowed_by(&reg));
        assert!(!uri("http://localhost:53412/cb").is_allowed_by(&reg));
    }

    #[test]
    fn state_is_one_to_1024_chars() {
        assert!(State::parse("").is_err());
        assert!(State::parse("a").is_ok());
        assert!(State::parse(&"ä".repeat(1024)).is_ok());
        assert!(State::parse(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn language_falls_back_to_german() {
        assert_eq!(Language::from_tag("en"), Language::En);
        assert_eq!(Language::from_tag("EN-gb"), Language::En);
        assert_eq!(Language::from_tag("fr"), Language::De);
        assert_eq!(Language::from_tag(""), Language::De);
        assert_eq!(Language::default(), Language::De);
    }

    #[test]
    fn sync_period_bounds() {
        assert_eq!(SyncPeriod::default().days(), 90);
        assert!(SyncPeriod::new(0).is_err());
        assert!(SyncPeriod::new(1).is_ok());
        assert!(SyncPeriod::new(730).is_ok());
        assert!(SyncPeriod::new(731).is_err());
        assert!(SyncPeriod::new(-5).is_err());
    }
}
