//! Fuzzing at volume (proptest), bounded: the parsers that read untrusted input never
//! panic, refuse what is not genuine, and keep what is.

use axum::http::{HeaderMap, HeaderValue, header};
use chrono::TimeZone;
use proptest::prelude::*;

use crate::link::{self, LinkError, LinkKey};
use crate::parse;

fn cases() -> ProptestConfig {
    // Bounded for CI; raise FINX_FUZZ_CASES for a longer run.
    let n = std::env::var("FINX_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn now() -> finx_domain::Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Body {
    redirect_uri: String,
    state: Option<String>,
    sync_period: Option<i64>,
    accounts: Option<Vec<crate::wire::AccountRef>>,
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn link_tokens_other_than_ours_are_refused(s in "\\PC{0,300}", dots in "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}") {
        let key = LinkKey::new(vec![7; 32]);
        prop_assert_eq!(link::verify(&key, &s, now()), Err(LinkError::Invalid));
        prop_assert_eq!(link::verify(&key, &dots, now()), Err(LinkError::Invalid));
    }

    #[test]
    fn a_link_token_survives_only_unchanged(flip in 0usize..200, bit in 0u8..6) {
        let key = LinkKey::new(vec![7; 32]);
        let flow = finx_domain::ids::FlowId::from_random([3; 16]);
        let token = link::sign(&key, flow, now(), now() + chrono::TimeDelta::hours(1));
        prop_assert_eq!(link::verify(&key, &token, now()), Ok(flow));
        let mut bytes = token.into_bytes();
        let i = flip % bytes.len();
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let changed = ALPHABET[(ALPHABET.iter().position(|c| *c == bytes[i]).unwrap_or(0) + 1 + usize::from(bit)) % ALPHABET.len()];
        if bytes[i] != b'.' {
            bytes[i] = changed;
            let tampered = String::from_utf8(bytes).unwrap_or_default();
            prop_assert!(link::verify(&key, &tampered, now()).is_err(), "a changed token must not verify");
        }
    }

    #[test]
    fn json_bodies_never_panic_and_errors_name_something(raw in proptest::collection::vec(any::<u8>(), 0..400), text in "\\PC{0,200}") {
        for bytes in [raw.as_slice(), text.as_bytes()] {
            if let Err(crate::error::ApiError::Finx { data, .. }) = parse::json::<Body>(bytes) {
                prop_assert!(data.as_object().is_some_and(|o| o.len() == 1), "{data}");
            }
        }
    }

    #[test]
    fn query_strings_never_panic(q in "[a-z_=&%0-9A-Fa-f+.,:ä-]{0,200}") {
        let known = ["count", "offset", "sort", "since", "until", "accounts"];
        let _ = parse::pairs(&q, Some(&known), "query");
        let _ = parse::pairs(&q, None, "query");
    }

    #[test]
    fn credentials_headers_never_panic(v in "\\PC{0,200}", b in "[A-Za-z0-9+/=%:]{0,120}") {
        let mut h = HeaderMap::new();
        for value in [v.clone(), format!("Basic {b}"), format!("Bearer {v}"), format!("basic {b}")] {
            if let Ok(hv) = HeaderValue::from_str(&value) {
                h.insert(header::AUTHORIZATION, hv);
                let _ = parse::basic(&h);
                let _ = parse::bearer(&h);
            }
        }
    }

    #[test]
    fn account_references_never_panic_and_valid_ibans_round_trip(s in "\\PC{0,60}", blz in "[1-9][0-9]{7}", acct in "[0-9]{1,10}") {
        let _ = finx_domain::reference::AccountReference::parse(&s);
        let iban = finx_domain::reference::Iban::from_german(&blz, &acct);
        prop_assert!(iban.is_ok());
        let text = iban.map(|i| i.to_string()).unwrap_or_default();
        prop_assert!(matches!(finx_domain::reference::AccountReference::parse(&text), Ok(finx_domain::reference::AccountReference::Iban(_))));
    }
}
