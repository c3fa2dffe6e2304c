//! Provider secrets at rest: AES-256-GCM under the master key (`SMSGATE_MASTER_KEY`, 32 bytes in
//! base64). Each ciphertext is stored beside the id of the key that sealed it, so a new master
//! key can be introduced while rows sealed under the previous one (`SMSGATE_MASTER_KEY_PREVIOUS`)
//! still open, until `smsgate secrets rotate` re-seals them. The provider's name is bound in as
//! associated data: a ciphertext copied onto another provider's row does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

/// Why a master key or a sealed secret could not be used. Never carries key or secret bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error("{var} must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")]
    BadKey { var: &'static str },
    #[error("the secret was sealed under master key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("the secret does not open under master key `{0}` (altered, or sealed for another provider)")]
    Unreadable(String),
}

/// One master key and its id (the first 16 hex digits of a SHA-256 of the key).
struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

impl MasterKey {
    fn parse(var: &'static str, text: &str) -> Result<Self, SecretsError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SecretsError::BadKey { var })?;
        if bytes.len() != 32 {
            return Err(SecretsError::BadKey { var });
        }
        let digest = Sha256::new_with_prefix(b"smsgate master key id\0").chain_update(&bytes).finalize();
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SecretsError::BadKey { var })?;
        Ok(Self {
            id: hex::encode(&digest[..8]),
            cipher,
        })
    }
}

/// The current master key, which seals, and earlier ones, which only open.
pub struct MasterKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

/// A sealed secret: the key id and `nonce || ciphertext || tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub blob: Vec<u8>,
}

impl MasterKeys {
    /// The keys from `current` (base64) and `previous` (base64, comma-separated); `None` when no
    /// current key is configured.
    pub fn from_config(current: Option<&SecretString>, previous: Option<&SecretString>) -> Result<Option<Self>, SecretsError> {
        let Some(current) = current.map(|c| c.expose_secret()).filter(|c| !c.trim().is_empty()) else {
            return Ok(None);
        };
        let current = MasterKey::parse("SMSGATE_MASTER_KEY", current)?;
        let previous = previous
            .map(|p| p.expose_secret().split(',').filter(|k| !k.trim().is_empty()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|k| MasterKey::parse("SMSGATE_MASTER_KEY_PREVIOUS", k))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self { current, previous }))
    }

    /// The id of the key that seals new secrets.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` under the current key, bound to `context` (the provider's name).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // AES-GCM encryption fails only for inputs beyond 64 GiB.
        let ciphertext = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("a provider secret is far below AES-GCM's size limit");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        Sealed {
            key_id: self.current.id.clone(),
            blob,
        }
    }

    /// Opens a secret sealed under the key `key_id` for `context`.
    pub fn open(&self, key_id: &str, blob: &[u8], context: &str) -> Result<Vec<u8>, SecretsError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| SecretsError::UnknownKey(key_id.to_string()))?;
        if blob.len() < NONCE_LEN {
            return Err(SecretsError::Unreadable(key_id.to_string()));
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        key.cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SecretsError::Unreadable(key_id.to_string()))
    }
}

/// `••••abcd`: the last four characters of a secret, or only the dots for one too short to show
/// any of it safely.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 8 {
        return "••••".to_string();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("••••{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretString {
        base64::engine::general_purpose::STANDARD.encode([byte; 32]).into()
    }

    fn keys(current: u8, previous: Option<u8>) -> MasterKeys {
        let previous = previous.map(key);
        MasterKeys::from_config(Some(&key(current)), previous.as_ref()).unwrap().unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_under_its_key_and_is_not_its_plaintext() {
        let k = keys(1, None);
        let sealed = k.seal(b"sk_live_123456789", "twilio");
        assert!(!sealed.blob.windows(8).any(|w| w == b"sk_live_"));
        assert_eq!(sealed.key_id, k.current_id());
        assert_eq!(k.open(&sealed.key_id, &sealed.blob, "twilio").unwrap(), b"sk_live_123456789");
        // A fresh nonce each time: the same secret never seals to the same bytes.
        assert_ne!(k.seal(b"sk_live_123456789", "twilio").blob, sealed.blob);
    }

    #[test]
    fn a_secret_does_not_open_under_another_key() {
        let sealed = keys(1, None).seal(b"secret", "twilio");
        let other = keys(2, None);
        assert_eq!(
            other.open(&sealed.key_id, &sealed.blob, "twilio"),
            Err(SecretsError::UnknownKey(sealed.key_id.clone()))
        );
        // Even when told the other key's id, the tag does not verify.
        assert_eq!(
            other.open(other.current_id(), &sealed.blob, "twilio"),
            Err(SecretsError::Unreadable(other.current_id().to_string()))
        );
    }

    #[test]
    fn a_tampered_ciphertext_or_another_providers_row_does_not_open() {
        let k = keys(1, None);
        let sealed = k.seal(b"secret", "twilio");
        let mut tampered = sealed.blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            k.open(&sealed.key_id, &tampered, "twilio"),
            Err(SecretsError::Unreadable(_))
        ));
        assert!(matches!(
            k.open(&sealed.key_id, &sealed.blob, "2factor"),
            Err(SecretsError::Unreadable(_))
        ));
        assert!(matches!(
            k.open(&sealed.key_id, &[1, 2, 3], "twilio"),
            Err(SecretsError::Unreadable(_))
        ));
    }

    #[test]
    fn key_ids_name_keys_and_a_previous_key_still_opens_after_rotation() {
        let old = keys(1, None);
        let sealed = old.seal(b"secret", "twilio");
        let rotated = keys(2, Some(1));
        assert_ne!(rotated.current_id(), old.current_id());
        assert_eq!(keys(1, None).current_id(), old.current_id(), "the id depends only on the key");
        assert_eq!(rotated.open(&sealed.key_id, &sealed.blob, "twilio").unwrap(), b"secret");
        let resealed = rotated.seal(b"secret", "twilio");
        assert_eq!(resealed.key_id, rotated.current_id());
    }

    #[test]
    fn a_master_key_must_be_32_bytes_of_base64_and_is_optional() {
        assert!(MasterKeys::from_config(None, None).unwrap().is_none());
        let short: SecretString = base64::engine::general_purpose::STANDARD.encode([1u8; 16]).into();
        assert!(matches!(
            MasterKeys::from_config(Some(&short), None),
            Err(SecretsError::BadKey { .. })
        ));
        let junk: SecretString = "not base64!".to_string().into();
        assert!(matches!(
            MasterKeys::from_config(Some(&junk), None),
            Err(SecretsError::BadKey { .. })
        ));
    }

    #[test]
    fn masks_show_only_the_last_four_characters() {
        assert_eq!(mask("sk_live_abcdefgh1234"), "••••1234");
        assert_eq!(mask("short"), "••••");
    }
}
