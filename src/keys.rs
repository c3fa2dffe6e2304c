//! `HmacKey`: a server secret used only through HMAC-SHA256 (stored OTP codes, verification
//! tokens). It never prints and never leaves the process.

use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// The server secret for code HMACs and verification tokens.
#[derive(Clone)]
pub struct HmacKey(SecretString);

impl HmacKey {
    pub fn new(secret: SecretString) -> Self {
        Self(secret)
    }

    /// A random key, for a process that was given none: codes die with the process.
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::thread_rng().gen();
        Self(SecretString::from(hex::encode(bytes)))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(self.0.expose_secret().as_bytes()).expect("HMAC takes keys of any length")
    }

    /// HMAC of `code` bound to its session, so a stored value is useless for any other session.
    pub fn code_hmac(&self, session: Uuid, code: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(session.as_bytes());
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `code` is the session's code; constant time in the stored value.
    pub fn code_matches(&self, session: Uuid, code: &str, stored: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(session.as_bytes());
        mac.update(code.as_bytes());
        mac.verify_slice(stored).is_ok()
    }

    /// HMAC-SHA256 of arbitrary bytes under the key (verification tokens).
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    pub fn verify_signature(&self, data: &[u8], signature: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(data);
        mac.verify_slice(signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_only_the_code_of_its_session() {
        let key = HmacKey::random();
        let s1 = Uuid::new_v4();
        let stored = key.code_hmac(s1, "123456");
        assert!(key.code_matches(s1, "123456", &stored));
        assert!(!key.code_matches(s1, "123457", &stored));
        assert!(!key.code_matches(Uuid::new_v4(), "123456", &stored));
        assert!(!HmacKey::random().code_matches(s1, "123456", &stored));
    }
}
