//! Deterministic randomness, Graph-shaped identifiers and sealed (HMAC-signed) opaque tokens.
//!
//! The simulator must be reproducible from a seed, so it carries its own small PRNG instead of
//! an OS-seeded one. Every opaque string a client receives (delta tokens, access tokens,
//! authorization codes) is sealed with the world's key: the simulator keeps no per-token state,
//! and a tampered token is simply "unknown".

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;

/// SplitMix64: tiny, fast and good enough for generating realistic test data from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A GUID-formatted identifier (as Entra uses for tenants, apps and directory objects).
    pub fn guid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A hash of `x` as a float in `[0, 1)`: how seeded decisions (faults, replays) draw a chance.
pub fn unit_hash(x: u64) -> f64 {
    (mix64(x) >> 11) as f64 / (1u64 << 53) as f64
}

/// The SplitMix64 finaliser: a good 64-bit hash of a 64-bit value.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The two id forms Graph gives a message.
///
/// An immutable id stays the same for the message's life; a default ("REST") id changes every
/// time the message moves to another folder. Both encode the message's key, so the simulator
/// resolves either without an index, and a stale default id is recognised as stale.
pub mod message_id {
    use super::*;

    const IMMUTABLE_PREFIX: &str = "AAkALgAAAAAAHYQDEapmEc2byACqAC";
    const DEFAULT_PREFIX: &str = "AAMkAGI2TG93AAA";

    /// The immutable id of message `key`.
    pub fn immutable(key: u64, salt: u32) -> String {
        let mut raw = Vec::with_capacity(12);
        raw.extend_from_slice(&key.to_be_bytes());
        raw.extend_from_slice(&salt.to_be_bytes());
        format!("{IMMUTABLE_PREFIX}{}", URL_SAFE.encode(raw))
    }

    /// The default id of message `key` after `moves` folder moves.
    pub fn default(key: u64, moves: u32, salt: u32) -> String {
        let mut raw = Vec::with_capacity(16);
        raw.extend_from_slice(&salt.to_be_bytes());
        raw.extend_from_slice(&key.to_be_bytes());
        raw.extend_from_slice(&moves.to_be_bytes());
        format!("{DEFAULT_PREFIX}{}", URL_SAFE.encode(raw))
    }

    /// Which message an id names and, for a default id, after how many moves it was issued.
    pub fn parse(id: &str, salt: u32) -> Option<(u64, Option<u32>)> {
        if let Some(rest) = id.strip_prefix(IMMUTABLE_PREFIX) {
            let raw = URL_SAFE.decode(rest).ok()?;
            if raw.len() != 12 || raw[8..12] != salt.to_be_bytes() {
                return None;
            }
            return Some((u64::from_be_bytes(raw[0..8].try_into().ok()?), None));
        }
        let rest = id.strip_prefix(DEFAULT_PREFIX)?;
        let raw = URL_SAFE.decode(rest).ok()?;
        if raw.len() != 16 || raw[0..4] != salt.to_be_bytes() {
            return None;
        }
        let key = u64::from_be_bytes(raw[4..12].try_into().ok()?);
        let moves = u32::from_be_bytes(raw[12..16].try_into().ok()?);
        Some((key, Some(moves)))
    }
}

/// Signs and verifies the simulator's opaque tokens.
#[derive(Clone)]
pub struct Sealer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Sealer {
    /// A sealer with the given key.
    pub fn new(key: &[u8]) -> Self {
        Sealer { key: key.to_vec() }
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// `base64url(json).base64url(mac)`: opaque to clients, URL-safe, tamper-evident.
    pub fn seal<T: Serialize>(&self, value: &T) -> String {
        let json = serde_json::to_vec(value).expect("sealed values serialise");
        let body = URL_SAFE_NO_PAD.encode(&json);
        let mac = self.mac(body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(&mac[..18]))
    }

    /// The value inside a token this sealer made, or `None` for anything else.
    pub fn open<T: DeserializeOwned>(&self, token: &str) -> Option<T> {
        let (body, mac) = token.split_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = self.mac(body.as_bytes());
        if mac.len() != 18 || !constant_time_eq(&mac, &expected[..18]) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
    }

    /// A JWT-shaped access token (`header.payload.signature`), as Entra issues.
    pub fn jwt<T: Serialize>(&self, claims: &T) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256","kid":"m365sync-sim"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signing_input = format!("{header}.{payload}");
        let sig = URL_SAFE_NO_PAD.encode(self.mac(signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    /// The claims of a JWT this sealer signed.
    pub fn open_jwt<T: DeserializeOwned>(&self, token: &str) -> Option<T> {
        let (signing_input, sig) = token.rsplit_once('.')?;
        let (_, payload) = signing_input.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        if !constant_time_eq(&sig, &self.mac(signing_input.as_bytes())) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_and_reject_other_salts() {
        let imm = message_id::immutable(42, 7);
        assert_eq!(message_id::parse(&imm, 7), Some((42, None)));
        assert_eq!(message_id::parse(&imm, 8), None);
        let def = message_id::default(42, 3, 7);
        assert_eq!(message_id::parse(&def, 7), Some((42, Some(3))));
        assert_ne!(def, message_id::default(42, 4, 7));
    }

    #[test]
    fn sealed_tokens_detect_tampering() {
        let s = Sealer::new(b"k");
        let t = s.seal(&(1u32, "x"));
        assert_eq!(s.open::<(u32, String)>(&t), Some((1, "x".into())));
        let mut bad = t.clone();
        bad.insert(2, 'A');
        assert_eq!(s.open::<(u32, String)>(&bad), None);
        assert_eq!(Sealer::new(b"other").open::<(u32, String)>(&t), None);
    }

    #[test]
    fn guids_look_like_guids() {
        let g = Rng::new(1).guid();
        assert_eq!(g.len(), 36);
        assert_eq!(g.matches('-').count(), 4);
    }
}
