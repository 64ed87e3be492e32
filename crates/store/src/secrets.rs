//! Secrets at rest: client secrets and refresh tokens are sealed with ChaCha20-Poly1305 under a
//! key the service reads from a file or the environment, never from the database itself, so a
//! copy of the database alone reveals no credential.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// The environment variable a key may come from (base64 of 32 bytes).
pub const KEY_ENV: &str = "M365SYNC_SECRET_KEY";

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// The key file could not be read.
    #[error("cannot read the secret key file {path}: {source}; create it with `m365sync key generate --out {path}`")]
    Read {
        /// The key file's path.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The key (from the place named) is not base64 of 32 bytes.
    #[error("the secret key from {0} is not base64 of exactly 32 bytes; generate one with `m365sync key generate`")]
    Malformed(String),
    /// No key was configured.
    #[error("no secret key: set {KEY_ENV} or point key_file in m365sync.toml at a key file")]
    Missing,
}

/// Why a stored secret could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret does not open with this key.
    #[error("it was encrypted with another key or is damaged; restore the key the data was written with")]
    WrongKey,
}

/// The key that seals secrets. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretKey(Key);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        SecretKey(ChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// The key as base64, for writing a key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_slice())
    }

    /// Parses base64 of 32 bytes; `source` names where it came from in errors.
    pub fn from_base64(text: &str, source: &str) -> Result<SecretKey, SecretKeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretKeyError::Malformed(source.to_string()))?;
        if bytes.len() != 32 {
            return Err(SecretKeyError::Malformed(source.to_string()));
        }
        Ok(SecretKey(*Key::from_slice(&bytes)))
    }

    /// Reads the key from a file.
    pub fn from_file(path: &std::path::Path) -> Result<SecretKey, SecretKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretKeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_base64(&text, &path.display().to_string())
    }

    /// Reads the key from [`KEY_ENV`].
    pub fn from_env() -> Result<SecretKey, SecretKeyError> {
        let text = std::env::var(KEY_ENV).map_err(|_| SecretKeyError::Missing)?;
        Self::from_base64(&text, KEY_ENV)
    }

    /// Seals `plain`: a fresh nonce followed by the ciphertext and tag.
    pub fn seal(&self, plain: &str) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new(&self.0);
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(&nonce, plain.as_bytes())
                .expect("encryption of in-memory data cannot fail"),
        );
        out
    }

    /// Opens what [`SecretKey::seal`] made.
    pub fn open(&self, sealed: &[u8]) -> Result<String, SecretError> {
        if sealed.len() < 12 {
            return Err(SecretError::WrongKey);
        }
        let (nonce, body) = sealed.split_at(12);
        let plain = ChaCha20Poly1305::new(&self.0)
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| SecretError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SecretError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let key = SecretKey::generate();
        let sealed = key.seal("client-secret-value");
        assert!(!String::from_utf8_lossy(&sealed).contains("client-secret-value"));
        assert_eq!(key.open(&sealed).unwrap(), "client-secret-value");
        assert!(SecretKey::generate().open(&sealed).is_err());
        let again = SecretKey::from_base64(&key.to_base64(), "test").unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "client-secret-value");
        assert!(format!("{key:?}").contains("***"));
        assert!(SecretKey::from_base64("c2hvcnQ=", "test").is_err());
    }
}
