//! Codes: made by a CSPRNG, kept only as an HMAC bound to their session under the server
//! secret, compared in constant time; the policy (length, lifetime, attempts) per purpose.
//! No I/O here.

use rand::Rng;

use crate::config::OtpSettings;

/// Digits a code may have, whoever made it.
pub const CODE_LENGTHS: std::ops::RangeInclusive<usize> = 4..=10;

/// The rules one session is opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub purpose: String,
    pub length: usize,
    pub ttl_seconds: u64,
    pub max_attempts: u32,
}

impl Policy {
    /// The defaults overridden by the purpose's own settings, when it has any.
    pub fn for_purpose(settings: &OtpSettings, purpose: &str) -> Self {
        let over = settings.purposes.get(purpose);
        Self {
            purpose: purpose.to_string(),
            length: over.and_then(|o| o.length).unwrap_or(settings.length),
            ttl_seconds: over.and_then(|o| o.ttl_seconds).unwrap_or(settings.ttl_seconds),
            max_attempts: over.and_then(|o| o.max_attempts).unwrap_or(settings.max_attempts),
        }
    }
}

/// A code of `length` decimal digits, each uniform, from the thread's CSPRNG.
pub fn generate_code(length: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..length).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

/// The message text carrying `code`.
pub fn render(template: &str, code: &str, ttl_seconds: u64) -> String {
    let minutes = ttl_seconds.div_ceil(60).max(1);
    template.replace("{code}", code).replace("{minutes}", &minutes.to_string())
}

/// Whether `code` looks like an OTP at all (4 to 10 digits): anything else is refused before
/// it can spend an attempt.
pub fn is_well_formed(code: &str) -> bool {
    CODE_LENGTHS.contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_length_asked_and_vary() {
        let a = generate_code(6);
        assert_eq!(a.len(), 6);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        let distinct: std::collections::HashSet<String> = (0..50).map(|_| generate_code(8)).collect();
        assert!(distinct.len() > 45);
    }

    #[test]
    fn purpose_overrides_apply_field_by_field() {
        let mut s = OtpSettings::default();
        s.purposes.insert(
            "step_up".into(),
            crate::config::OtpPolicy {
                length: Some(8),
                ttl_seconds: None,
                max_attempts: Some(3),
            },
        );
        let p = Policy::for_purpose(&s, "step_up");
        assert_eq!((p.length, p.ttl_seconds, p.max_attempts), (8, 300, 3));
        assert_eq!(Policy::for_purpose(&s, "login").length, 6);
    }

    #[test]
    fn render_fills_code_and_minutes() {
        assert_eq!(render("{code} valid {minutes} min", "4711", 90), "4711 valid 2 min");
        assert!(is_well_formed("0042") && !is_well_formed("12a4") && !is_well_formed("123"));
    }
}
