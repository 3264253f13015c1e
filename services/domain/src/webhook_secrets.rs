//! Webhook signing secrets at rest. A signing secret must be recoverable to sign, so it
//! cannot be hashed; it is sealed with ChaCha20-Poly1305 under the key configured in
//! `LINKDROP_WEBHOOK_SECRET_KEY`, bound to its endpoint (the endpoint id is the associated
//! data, so a sealed secret copied to another row does not open). A database dump alone
//! does not reveal any secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

use crate::secret::Secret;

/// Prefix of a sealed secret as stored; the version allows another scheme later.
const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 12;

/// The key that seals and opens webhook secrets.
#[derive(Clone)]
pub struct SealingKey(Key);

/// A stored secret that does not open with this key (another key, another endpoint, or
/// tampered with).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored webhook secret does not open with LINKDROP_WEBHOOK_SECRET_KEY")]
pub struct CannotOpen;

impl SealingKey {
    /// The key from its configured form: 64 hex digits or the base64 of 32 bytes.
    pub fn parse(configured: &str) -> Result<Self, String> {
        let bytes = hex::decode(configured)
            .ok()
            .or_else(|| STANDARD.decode(configured).ok())
            .filter(|b| b.len() == 32)
            .ok_or("must be 32 bytes, as 64 hex digits or base64 (openssl rand -hex 32)")?;
        Ok(Self(*Key::from_slice(&bytes)))
    }

    /// `secret` sealed for the endpoint `endpoint_id`, as stored.
    pub fn seal(&self, secret: &Secret, endpoint_id: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = ChaCha20Poly1305::new(&self.0)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: endpoint_id.as_bytes(),
                },
            )
            .expect("sealing a short secret cannot fail");
        let mut stored = nonce.to_vec();
        stored.extend(sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(stored))
    }

    /// The secret of `endpoint_id` from its stored form.
    pub fn open(&self, stored: &str, endpoint_id: &str) -> Result<Secret, CannotOpen> {
        let bytes = stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|b| b.len() > NONCE_BYTES)
            .ok_or(CannotOpen)?;
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = ChaCha20Poly1305::new(&self.0)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: endpoint_id.as_bytes(),
                },
            )
            .map_err(|_| CannotOpen)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| CannotOpen)
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealingKey {
        SealingKey::parse(&hex::encode([byte; 32])).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_for_its_endpoint_only() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let stored = key(1).seal(&secret, "wep_a");
        assert!(stored.starts_with(SEALED_PREFIX));
        assert!(!stored.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert_eq!(key(1).open(&stored, "wep_a"), Ok(secret));
        assert_eq!(key(1).open(&stored, "wep_b"), Err(CannotOpen));
        assert_eq!(key(2).open(&stored, "wep_a"), Err(CannotOpen));
    }

    #[test]
    fn a_tampered_or_plain_value_does_not_open() {
        let stored = key(1).seal(&Secret::new("whsec_x"), "wep_a");
        let mut tampered = stored.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(key(1).open(&tampered, "wep_a"), Err(CannotOpen));
        assert_eq!(key(1).open("whsec_x", "wep_a"), Err(CannotOpen));
    }

    #[test]
    fn the_key_must_be_32_bytes() {
        assert!(SealingKey::parse(&hex::encode([7u8; 32])).is_ok());
        assert!(SealingKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(SealingKey::parse("short").is_err());
        assert!(SealingKey::parse(&hex::encode([7u8; 16])).is_err());
    }
}
