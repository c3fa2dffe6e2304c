//! Recipients on the way in: parsed to E.164, deduplicated (first one kept), invalid ones
//! listed with their position and why, from a JSON list or a CSV upload (`phone[,var1,…]`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::phone::Phone;

/// Longest template value taken from a CSV cell or a recipient object.
pub const MAX_VAR: usize = 500;
/// Most template values per recipient.
pub const MAX_VARS: usize = 20;

/// A recipient as a request gives it: a number, or a number with its own template values.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawRecipient {
    Phone(String),
    WithVars {
        phone: String,
        #[serde(default)]
        vars: Vec<String>,
    },
}

/// A recipient left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalid {
    /// Position in the list (CSV: line number, from 1).
    pub row: usize,
    pub value: String,
    pub reason: String,
}

/// The recipients of one campaign, ready to queue.
#[derive(Debug, Default)]
pub struct Recipients {
    pub unique: Vec<(String, Vec<String>)>,
    pub duplicates: u32,
    pub invalid: Vec<Invalid>,
}

impl Recipients {
    /// Takes `raw` in order: `row` names each for the invalid list.
    pub fn collect(raw: impl IntoIterator<Item = (usize, RawRecipient)>, default_country: &str) -> Self {
        let mut out = Self::default();
        let mut seen = HashSet::new();
        for (row, r) in raw {
            let (phone, vars) = match r {
                RawRecipient::Phone(p) => (p, Vec::new()),
                RawRecipient::WithVars { phone, vars } => (phone, vars),
            };
            let shown: String = phone.chars().take(32).collect();
            let control = |v: &String| v.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
            if vars.len() > MAX_VARS || vars.iter().any(|v| v.chars().count() > MAX_VAR || control(v)) {
                let reason = format!("at most {MAX_VARS} values of at most {MAX_VAR} characters, without control characters");
                out.invalid.push(Invalid { row, value: shown, reason });
                continue;
            }
            match Phone::parse(&phone, default_country) {
                Ok(p) if seen.insert(p.e164().to_string()) => out.unique.push((p.e164().to_string(), vars)),
                Ok(_) => out.duplicates += 1,
                Err(e) => out.invalid.push(Invalid {
                    row,
                    value: shown,
                    reason: e.to_string(),
                }),
            }
        }
        out
    }
}

/// The rows of a CSV upload as recipients, numbered by line (a first line whose first cell is
/// `phone` is a header and skipped; blank lines are skipped).
pub fn from_csv(text: &str) -> Vec<(usize, RawRecipient)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let mut cells = split_csv_line(line).into_iter();
        let phone = cells.next().unwrap_or_default();
        if i == 0 && phone.trim().eq_ignore_ascii_case("phone") {
            continue;
        }
        let vars: Vec<String> = cells.collect();
        out.push((i + 1, RawRecipient::WithVars { phone, vars }));
    }
    out
}

/// One CSV line's cells: `"…"` quotes a cell, `""` inside quotes is one `"`.
fn split_csv_line(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cell.is_empty() => quoted = true,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            (c, _) => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_deduplicated_and_invalid_ones_listed() {
        let raw = [
            "+919876500001",
            "9876500001",
            "0091 98765 00002",
            "12",
            "+919876500002",
            "not a number",
        ];
        let r = Recipients::collect(raw.iter().enumerate().map(|(i, p)| (i, RawRecipient::Phone(p.to_string()))), "91");
        let phones: Vec<&str> = r.unique.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(phones, ["+919876500001", "+919876500002"]);
        assert_eq!(r.duplicates, 2);
        assert_eq!(r.invalid.iter().map(|i| i.row).collect::<Vec<_>>(), [3, 5]);
    }

    #[test]
    fn csv_rows_carry_their_values_and_a_header_is_skipped() {
        let rows = from_csv("phone,name,code\r\n+919876500001,\"Asha, K\",A1\n\n+919876500002,\"say \"\"hi\"\"\",B2\n");
        let r = Recipients::collect(rows, "91");
        assert_eq!(
            r.unique,
            vec![
                ("+919876500001".to_string(), vec!["Asha, K".to_string(), "A1".to_string()]),
                ("+919876500002".to_string(), vec!["say \"hi\"".to_string(), "B2".to_string()]),
            ]
        );
    }
}
