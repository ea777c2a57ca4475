//! API keys: `ztv_` followed by 256 random bits (base64url), stored only as SHA-256.
//!
//! A key has so much randomness that a fast hash is right: no per-request slow hash is needed
//! to resist guessing, and the hot path stays cheap.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "ztv_";
/// Characters of the key (including `ztv_`) stored in clear to find its row.
pub const LOOKUP_LEN: usize = 12;
/// Random bytes in a key.
const RANDOM_BYTES: usize = 32;

/// A freshly made key: the key itself (shown once) and what is stored of it.
pub struct NewKey {
    pub key: SecretString,
    pub lookup: String,
    pub hash: String,
}

pub fn generate() -> NewKey {
    let mut bytes = [0u8; RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    NewKey {
        lookup: key[..LOOKUP_LEN].to_string(),
        hash: hex::encode(digest(&key)),
        key: SecretString::from(key),
    }
}

pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The lookup part of a presented key, if it has the shape of one of ours.
pub fn lookup_of(presented: &str) -> Option<&str> {
    let well_formed = presented.starts_with(PREFIX)
        && presented.len() == PREFIX.len() + 43
        && presented[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| &presented[..LOOKUP_LEN])
}

/// Compares a presented key with a stored digest in constant time.
pub fn matches(presented: &str, stored: &[u8; 32]) -> bool {
    digest(presented).ct_eq(stored).into()
}

/// Whether a bearer value looks like one of our keys (rather than an end-user JWT).
pub fn looks_like_key(value: &str) -> bool {
    value.starts_with(PREFIX)
}

impl NewKey {
    pub fn expose(&self) -> &str {
        self.key.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_found_and_matched_by_their_digest() {
        let new = generate();
        let key = new.expose();
        assert!(key.starts_with("ztv_"));
        assert_eq!(key.len(), 47);
        assert_eq!(lookup_of(key), Some(new.lookup.as_str()));
        let stored: [u8; 32] = hex::decode(&new.hash).unwrap().try_into().unwrap();
        assert!(matches(key, &stored));
        let mut other = key.to_string();
        other.pop();
        other.push(if key.ends_with('A') { 'B' } else { 'A' });
        assert!(!matches(&other, &stored));
    }

    #[test]
    fn malformed_keys_have_no_lookup() {
        assert_eq!(lookup_of("ztv_short"), None);
        assert_eq!(lookup_of("abc"), None);
        assert_eq!(lookup_of(&format!("ztv_{}", "!".repeat(43))), None);
    }
}
