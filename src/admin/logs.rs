//! The admin log view: the query an admin asks for, its opaque cursor, and each row as the
//! admin may see it (numbers masked unless the caller may see them whole).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::test_send::TEST_USER_PREFIX;
use crate::phone::{mask_numbers_in, Phone};
use crate::service::{Gateway, GatewayError};
use crate::store::admin_logs::{LogCursor, LogFilter, LogItem};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// A page of the logs and where the next one starts.
#[derive(Debug, Clone)]
pub struct LogPage {
    pub items: Vec<LogItem>,
    pub next: Option<LogCursor>,
}

/// The opaque cursor: base64url of `<created_at in ns>|<key>`.
pub fn encode_cursor(cursor: &LogCursor) -> String {
    let nanos = cursor.at.timestamp_nanos_opt().unwrap_or(i64::MAX);
    URL_SAFE_NO_PAD.encode(format!("{nanos}|{}", cursor.key))
}

/// A cursor this gateway gave out; `None` for anything else.
pub fn decode_cursor(text: &str) -> Option<LogCursor> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text.trim()).ok()?).ok()?;
    let (nanos, key) = raw.split_once('|')?;
    let well_formed = key.len() <= 64 && (key.starts_with("a:") || key.starts_with("e:")) && key.is_ascii();
    well_formed.then_some(())?;
    Some(LogCursor {
        at: DateTime::<Utc>::from_timestamp_nanos(nanos.parse().ok()?),
        key: key.to_string(),
    })
}

impl Gateway {
    /// Up to `limit` rows matching `filter`, newest first, after `cursor`; `next` is set when
    /// more may follow.
    pub async fn admin_logs(&self, filter: &LogFilter, cursor: Option<&LogCursor>, limit: usize) -> Result<LogPage, GatewayError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        // One row more than asked tells whether another page exists.
        let mut items = self.store.admin_logs(filter, cursor, limit + 1).await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = more.then(|| items.last().map(LogItem::cursor)).flatten();
        Ok(LogPage { items, next })
    }
}

/// One row as the contract shapes it; `full_numbers`: the caller may see numbers whole.
pub fn item_json(item: &LogItem, full_numbers: bool, default_country: &str) -> Value {
    let phone = if full_numbers {
        item.phone.clone()
    } else {
        Phone::parse(&item.phone, default_country)
            .map(|p| p.masked())
            .unwrap_or_else(|_| mask_numbers_in(&item.phone))
    };
    // Providers quote the destination in their errors.
    let error = item
        .error
        .as_deref()
        .map(|e| if full_numbers { e.to_string() } else { mask_numbers_in(e) });
    json!({
        "at": item.at,
        "source": item.source.as_str(),
        "phone": phone,
        "provider": item.provider,
        "outcome": item.outcome,
        "type": item.kind,
        "http_status": item.http_status,
        "response_time_ms": item.response_time_ms,
        "error": error,
        "session_id": item.session_id,
        "admin_test": item.user_id.as_deref().is_some_and(|u| u.starts_with(TEST_USER_PREFIX)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_to_the_nanosecond_and_junk_is_refused() {
        let at = DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        let cursor = LogCursor {
            at,
            key: "e:00000000000000000042".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)), Some(cursor));
        for junk in [
            "",
            "!!!",
            &URL_SAFE_NO_PAD.encode("12|x:1"),
            &URL_SAFE_NO_PAD.encode("abc|a:1"),
            &URL_SAFE_NO_PAD.encode("12"),
        ] {
            assert_eq!(decode_cursor(junk), None, "{junk}");
        }
    }
}
