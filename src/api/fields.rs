//! Text fields as the edge accepts them. Every string a request carries passes one of these
//! before it reaches the gateway: a NUL byte is refused by PostgreSQL (and would fail the other
//! sends committed in the same statement), and a control character in a name can end up in a
//! provider's URL or header. So a bad value is the request's own 400, named by its field.

use super::ApiError;

/// A name or key (user id, purpose, provider, template name, IP address): trimmed, not empty,
/// at most `max` characters, and no control character at all (not even at its ends).
pub fn identifier<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, ApiError> {
    let v = required(field, refuse(field, value, |c| c.is_control())?)?;
    bounded(field, v, max)
}

/// Message text: trimmed, not empty, at most `max` characters; line breaks (`\n`) and tabs are
/// kept, any other control character (C0, DEL, C1, NUL) is refused.
pub fn text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, ApiError> {
    let v = required(field, refuse(field, value, is_control_in_text)?)?;
    bounded(field, v, max)
}

/// A template variable: as [`text`], but kept as given (it may be empty or padded).
pub fn var<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, ApiError> {
    bounded(field, refuse(field, value, is_control_in_text)?, max)
}

fn is_control_in_text(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::InvalidRequest(format!("`{field}` must not be empty")));
    }
    Ok(v)
}

fn bounded<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::InvalidRequest(format!("`{field}` is longer than {max} characters")));
    }
    Ok(value)
}

fn refuse<'a>(field: &str, value: &'a str, bad: impl Fn(char) -> bool) -> Result<&'a str, ApiError> {
    match value.chars().find(|&c| bad(c)) {
        Some(c) => Err(ApiError::InvalidRequest(format!(
            "`{field}` must not contain the control character U+{:04X}",
            c as u32
        ))),
        None => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<&str, ApiError>) -> String {
        match r {
            Err(ApiError::InvalidRequest(m)) => m,
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn identifiers_are_trimmed_bounded_and_free_of_controls() {
        assert_eq!(identifier("user_id", "  u-1 ", 8).unwrap(), "u-1");
        assert_eq!(identifier("user_id", "ünï·code", 8).unwrap(), "ünï·code");
        assert!(message(identifier("user_id", "   ", 8)).contains("`user_id` must not be empty"));
        assert!(message(identifier("user_id", "123456789", 8)).contains("longer than 8"));
        for bad in [
            "a\0b", "a\nb", "a\rb", "a\tb", "ab\r\n", "\u{85}ab", "a\u{1b}b", "a\u{7f}b", "a\u{85}b", "a\u{9f}b",
        ] {
            let m = message(identifier("purpose", bad, 32));
            assert!(m.contains("`purpose`") && m.contains("control character"), "{bad:?}: {m}");
        }
    }

    #[test]
    fn text_keeps_line_breaks_and_tabs_but_no_other_control() {
        assert_eq!(text("text", "line 1\nline 2\tend\n", 100).unwrap(), "line 1\nline 2\tend");
        assert!(message(text("text", "\n \t", 100)).contains("must not be empty"));
        assert!(message(text("text", "abcdef", 5)).contains("longer than 5"));
        for bad in ["a\0b", "a\rb", "a\r\nb", "a\u{7}b", "a\u{7f}b", "a\u{80}b", "a\u{9b}b"] {
            let m = message(text("text", bad, 100));
            assert!(m.contains("`text`") && m.contains("control character"), "{bad:?}: {m}");
        }
        assert!(message(text("text", "\0", 100)).contains("U+0000"));
    }

    #[test]
    fn vars_may_be_empty_and_are_kept_as_given() {
        assert_eq!(var("vars[0]", "", 5).unwrap(), "");
        assert_eq!(var("vars[0]", " a\nb ", 5).unwrap(), " a\nb ");
        assert!(message(var("vars[1]", "abcdef", 5)).contains("`vars[1]` is longer than 5"));
        assert!(message(var("vars[2]", "a\0", 5)).contains("`vars[2]`"));
        assert!(message(var("vars[2]", "a\r", 5)).contains("control character"));
    }
}

/// A body parsed as `T` after its `integers` (top-level keys) written as whole floats (`5.0`)
/// are made integers: JSON Schema's `integer` includes them, and serde's integer types do not.
pub fn with_whole_numbers<T: serde::de::DeserializeOwned>(mut body: serde_json::Value, integers: &[&str]) -> Result<T, ApiError> {
    if let Some(object) = body.as_object_mut() {
        for key in integers {
            let whole = object.get(*key).and_then(serde_json::Value::as_f64).filter(|f| f.fract() == 0.0);
            if let (Some(f), Some(false)) = (whole, object.get(*key).map(serde_json::Value::is_i64)) {
                // Out of `i64` stays a float, which the integer field then refuses.
                if f.abs() < 9.0e18 {
                    object.insert((*key).to_string(), serde_json::Value::from(f as i64));
                }
            }
        }
    }
    serde_json::from_value(body).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// A page size from a query string: any whole number, however large (callers clamp it to
/// their page), so that only a value that is not a whole number is the request's error.
pub fn page_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let raw = <Option<String> as serde::Deserialize>::deserialize(d)?;
    match raw {
        None => Ok(None),
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(s.parse().unwrap_or(usize::MAX))),
        Some(s) => Err(serde::de::Error::custom(format!("`limit` must be a whole number, not {s:?}"))),
    }
}

#[cfg(test)]
mod number_tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        n: Option<i32>,
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_refused() {
        let b: Body = with_whole_numbers(json!({"n": -399.0}), &["n"]).expect("whole float");
        assert_eq!(b.n, Some(-399));
        assert!(with_whole_numbers::<Body>(json!({"n": 1.5}), &["n"]).is_err());
        assert!(with_whole_numbers::<Body>(json!({"n": 1e30}), &["n"]).is_err());
        assert!(with_whole_numbers::<Body>(json!({"n": "7"}), &["n"]).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    struct Query {
        #[serde(default, deserialize_with = "page_size")]
        limit: Option<usize>,
    }

    #[test]
    fn a_page_size_past_usize_saturates_and_non_numbers_are_refused() {
        let q = |s: &str| actix_web::web::Query::<Query>::from_query(s).map(|q| q.limit);
        assert_eq!(q("").unwrap(), None);
        assert_eq!(q("limit=20").unwrap(), Some(20));
        assert_eq!(q("limit=22895503144372176579005903798272").unwrap(), Some(usize::MAX));
        for bad in ["limit=-1", "limit=abc", "limit=", "limit=1.5"] {
            assert!(q(bad).is_err(), "{bad}");
        }
    }
}
