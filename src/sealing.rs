//! Sealing secrets at rest: AES-256-GCM with a fresh random nonce per write, and the row's
//! identity as associated data, so a sealed value copied to another row does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
#[error("a sealed value does not open (wrong key, wrong row, or corrupt)")]
pub struct OpenError;

pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// `nonce ‖ ciphertext+tag`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            // Encryption fails only for inputs of more than 64 GiB.
            .expect("AES-GCM seals a small value");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let sealer = Sealer::new(&[7u8; 32]);
        let a = sealer.seal(b"refresh-token", "prod/u1");
        let b = sealer.seal(b"refresh-token", "prod/u1");
        assert_ne!(a, b, "a fresh nonce per write");
        assert_eq!(sealer.open(&a, "prod/u1").unwrap(), b"refresh-token");
        assert!(sealer.open(&a, "prod/u2").is_err());
        assert!(Sealer::new(&[8u8; 32]).open(&a, "prod/u1").is_err());
        assert!(!a.windows(13).any(|w| w == b"refresh-token"));
    }
}
