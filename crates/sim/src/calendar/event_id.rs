//! Event ids: opaque, Graph-like, and decodable without an index.
//!
//! A stored event's id encodes its key; an occurrence's id encodes the master's key plus the
//! occurrence's original wall-clock start, so it is the same on every read and survives the
//! occurrence becoming an exception, as in Exchange. The world's salt keeps ids of one world
//! from resolving in another.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime};

const PREFIX: &str = "AAMkAGVmMDEzAGEw";

/// The id of event `key`, or of its occurrence originally starting at `original`.
pub fn encode(key: u64, original: Option<NaiveDateTime>, salt: u32) -> String {
    let mut raw = Vec::with_capacity(20);
    raw.extend_from_slice(&salt.to_be_bytes());
    raw.extend_from_slice(&key.to_be_bytes());
    if let Some(o) = original {
        raw.extend_from_slice(&o.and_utc().timestamp().to_be_bytes());
    }
    format!("{PREFIX}{}", URL_SAFE.encode(raw))
}

/// The key and, for an occurrence, the original start an id names.
pub fn decode(id: &str, salt: u32) -> Option<(u64, Option<NaiveDateTime>)> {
    let raw = URL_SAFE.decode(id.strip_prefix(PREFIX)?).ok()?;
    if !(raw.len() == 12 || raw.len() == 20) || raw[0..4] != salt.to_be_bytes() {
        return None;
    }
    let key = u64::from_be_bytes(raw[4..12].try_into().ok()?);
    if raw.len() == 12 {
        return Some((key, None));
    }
    let secs = i64::from_be_bytes(raw[12..20].try_into().ok()?);
    Some((key, Some(DateTime::from_timestamp(secs, 0)?.naive_utc())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_worlds() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 5, 4)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap();
        let master = encode(77, None, 5);
        let occurrence = encode(77, Some(at), 5);
        assert_ne!(master, occurrence);
        assert_eq!(decode(&master, 5), Some((77, None)));
        assert_eq!(decode(&occurrence, 5), Some((77, Some(at))));
        assert_eq!(decode(&master, 6), None);
        assert_eq!(decode("AAMkAGI2TG93AAA", 5), None);
        assert!(
            occurrence.ends_with('='),
            "padded like Graph ids: {occurrence}"
        );
    }
}
