//! `Phone`: a destination number parsed once at the edge into E.164, with its country calling code.

use std::fmt;

/// Two-digit country calling codes; every other code that is not `1` or `7` has three digits.
const TWO_DIGIT_CODES: &[&str] = &[
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49", "51", "52", "53", "54",
    "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// A phone number in E.164 form (`+` and 8 to 15 digits, no leading zero).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone {
    e164: String,
    country_len: usize,
}

/// Why a number was refused; the text is shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number may contain only digits, spaces, dashes, dots, parentheses and a leading +")]
    BadCharacter,
    #[error("phone number must have 8 to 15 digits in international form (E.164), got {0}")]
    BadLength(usize),
    #[error("phone number must not start with country code 0")]
    LeadingZero,
    #[error("a number without a country code must have 10 digits (it is taken as +{0})")]
    NoCountryCode(String),
}

impl Phone {
    /// Parses `raw` as typed by a person or an app. A bare 10-digit national number is taken to be
    /// in `default_country` (a calling code such as `"91"`); `00` is read as the international prefix.
    pub fn parse(raw: &str, default_country: &str) -> Result<Self, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError::BadCharacter),
            }
        }
        let international = if plus {
            digits
        } else if let Some(stripped) = digits.strip_prefix("00") {
            stripped.to_string()
        } else if digits.len() == 10 && !digits.starts_with('0') {
            format!("{default_country}{digits}")
        } else if digits.len() == 11 && digits.starts_with('0') {
            // A trunk prefix before a 10-digit national number (0 98765 43210).
            format!("{default_country}{}", &digits[1..])
        } else if digits.len() == 12 && digits.starts_with(default_country) {
            digits
        } else {
            return Err(PhoneError::NoCountryCode(default_country.to_string()));
        };
        if !(8..=15).contains(&international.len()) {
            return Err(PhoneError::BadLength(international.len()));
        }
        if international.starts_with('0') {
            return Err(PhoneError::LeadingZero);
        }
        let country_len = country_code_len(&international);
        Ok(Self {
            e164: format!("+{international}"),
            country_len,
        })
    }

    /// `+919876543210`.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The digits without `+`: `919876543210` (what most provider APIs take).
    pub fn digits(&self) -> &str {
        &self.e164[1..]
    }

    /// The country calling code: `91`.
    pub fn country_code(&self) -> &str {
        &self.e164[1..1 + self.country_len]
    }

    /// The national number without the country code: `9876543210`.
    pub fn national(&self) -> &str {
        &self.e164[1 + self.country_len..]
    }

    /// The country code and the first `n` national digits, for per-prefix limits: `91-98765`.
    pub fn prefix(&self, n: usize) -> String {
        let national = self.national();
        format!("{}-{}", self.country_code(), &national[..n.min(national.len())])
    }

    /// A form safe for logs: `+9198******10`.
    pub fn masked(&self) -> String {
        let d = &self.e164;
        let keep_head = (1 + self.country_len + 2).min(d.len());
        let keep_tail = 2.min(d.len() - keep_head);
        let hidden = d.len() - keep_head - keep_tail;
        format!("{}{}{}", &d[..keep_head], "*".repeat(hidden), &d[d.len() - keep_tail..])
    }
}

/// `text` with every phone number in it masked as `Phone::masked` does: `+` and 8 to 15 digits,
/// or a bare run of 10 to 15 digits (providers often write numbers without `+`). For free text
/// that may quote a number (provider error messages) before it leaves the gateway. Digit runs
/// touching letters (hex ids) are left alone.
pub fn mask_numbers_in(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let plus = bytes[i] == b'+';
        let start = if plus { i + 1 } else { i };
        let prev_ok = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let mut end = start;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        let next_ok = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        let run = end - start;
        let is_number = prev_ok && next_ok && if plus { (8..=15).contains(&run) } else { (10..=15).contains(&run) };
        if is_number {
            out.push_str(&text[copied..i]);
            out.push_str(&mask_digits(&text[start..end], plus));
            copied = end;
        }
        i = if end > i { end } else { i + 1 };
    }
    out.push_str(&text[copied..]);
    out
}

/// Masks one run of digits. With `+` the country code is known: keep it, two more digits and the
/// last two, as `Phone::masked`. A bare run may be national: keep only two digits at each end.
fn mask_digits(digits: &str, plus: bool) -> String {
    let hidden = |head: usize| {
        format!(
            "{}{}{}",
            &digits[..head],
            "*".repeat(digits.len() - head - 2),
            &digits[digits.len() - 2..]
        )
    };
    match Phone::parse(&format!("+{digits}"), "1") {
        Ok(phone) if plus => phone.masked(),
        _ if plus => format!("+{}", hidden(0)),
        _ => hidden(2),
    }
}

/// The country calling code at the start of an E.164 number or of its first digits (`+9198`
/// gives `91`), for numbers already parsed once; `None` when too short to tell.
pub fn calling_code_of(e164: &str) -> Option<&str> {
    let digits = e164.strip_prefix('+').unwrap_or(e164);
    (digits.len() >= 3 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| &digits[..country_code_len(digits)])
}

fn country_code_len(digits: &str) -> usize {
    if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT_CODES.contains(&&digits[..2]) {
        2
    } else {
        3
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_ten_digits_take_the_default_country() {
        let p = Phone::parse("98765 43210", "91").unwrap();
        assert_eq!(p.e164(), "+919876543210");
        assert_eq!(p.country_code(), "91");
        assert_eq!(p.national(), "9876543210");
    }

    #[test]
    fn international_forms_keep_their_country() {
        assert_eq!(Phone::parse("+1 (415) 555-2671", "91").unwrap().country_code(), "1");
        assert_eq!(Phone::parse("0044 20 7946 0958", "91").unwrap().e164(), "+442079460958");
        assert_eq!(Phone::parse("+971501234567", "91").unwrap().country_code(), "971");
        assert_eq!(Phone::parse("09876543210", "91").unwrap().e164(), "+919876543210");
        assert_eq!(Phone::parse("919876543210", "91").unwrap().e164(), "+919876543210");
    }

    #[test]
    fn bad_numbers_are_refused_with_a_reason() {
        assert_eq!(Phone::parse("", "91"), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("+91abc", "91"), Err(PhoneError::BadCharacter));
        assert_eq!(Phone::parse("+1234", "91"), Err(PhoneError::BadLength(4)));
        assert_eq!(Phone::parse("+0123456789", "91"), Err(PhoneError::LeadingZero));
        assert!(matches!(Phone::parse("12345", "91"), Err(PhoneError::NoCountryCode(_))));
        assert!(Phone::parse("+1234567890123456", "91").is_err());
    }

    #[test]
    fn masked_form_hides_the_middle_digits() {
        let p = Phone::parse("+919876543210", "91").unwrap();
        assert_eq!(p.masked(), "+9198******10");
        assert_eq!(p.prefix(4), "91-9876");
    }

    #[test]
    fn numbers_inside_free_text_are_masked() {
        assert_eq!(
            mask_numbers_in("The 'To' number +919876543210 is not a valid phone number."),
            "The 'To' number +9198******10 is not a valid phone number."
        );
        assert_eq!(
            mask_numbers_in("invalid mobile 919876543210,14155552671"),
            "invalid mobile 91********10,14*******71"
        );
        assert_eq!(mask_numbers_in("(+442079460958)"), "(+4420******58)");
        assert_eq!(mask_numbers_in("+0123456789 rejected"), "+********89 rejected");
        // Short numbers, codes and ids stay readable.
        for keep in [
            "HTTP 500 after 4000 ms",
            "error 21211",
            "ref 9f86d081884c7d659a2feaa0c55ad015a",
            "id SM1234567890123",
            "+91",
        ] {
            assert_eq!(mask_numbers_in(keep), keep);
        }
        assert_eq!(mask_numbers_in("→ 9876543210 ←"), "→ 98******10 ←");
    }
}
