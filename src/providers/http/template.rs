//! The `{placeholder}` templates of the generic `http` adapter: parsed once at build (an unknown
//! placeholder is a configuration error) and filled per message, each value escaped for where it
//! lands — URL-encoded in the URL, JSON-escaped in a JSON body, raw in headers and form fields.

use std::fmt::Write as _;

/// A value a template can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{to}`: `+919876543210`.
    To,
    /// `{to_digits}`: `919876543210`.
    ToDigits,
    /// `{text}`: the message text (an OTP's rendered text).
    Text,
    /// `{otp}`: the bare code of an OTP.
    Otp,
    /// `{template}`: a template message's name.
    Template,
    /// `{var1}`..`{var9}`: a template message's variables (zero-based here).
    Var(usize),
    /// `{secret}`: the value of `api_key_env`.
    Secret,
}

impl Placeholder {
    /// How a template writes it: `{to}`, `{var1}`.
    pub fn written(self) -> String {
        match self {
            Self::To => "{to}".into(),
            Self::ToDigits => "{to_digits}".into(),
            Self::Text => "{text}".into(),
            Self::Otp => "{otp}".into(),
            Self::Template => "{template}".into(),
            Self::Var(i) => format!("{{var{}}}", i + 1),
            Self::Secret => "{secret}".into(),
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "to" => Self::To,
            "to_digits" => Self::ToDigits,
            "text" => Self::Text,
            "otp" => Self::Otp,
            "template" => Self::Template,
            "secret" => Self::Secret,
            _ => {
                let n: usize = name.strip_prefix("var")?.parse().ok()?;
                if !(1..=9).contains(&n) || name.len() != 4 {
                    return None;
                }
                Self::Var(n - 1)
            }
        })
    }
}

/// How a filled-in value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Percent-encoded (everything but RFC 3986 unreserved characters).
    Url,
    /// Escaped for the inside of a JSON string.
    Json,
    /// As is: headers, and form fields (the form encoder encodes).
    Raw,
}

/// The values of one message.
#[derive(Debug, Clone, Default)]
pub struct Values<'a> {
    pub to: &'a str,
    pub to_digits: &'a str,
    pub text: &'a str,
    pub otp: &'a str,
    pub template: &'a str,
    pub vars: &'a [String],
    pub secret: &'a str,
}

impl Values<'_> {
    pub fn get(&self, placeholder: Placeholder) -> &str {
        match placeholder {
            Placeholder::To => self.to,
            Placeholder::ToDigits => self.to_digits,
            Placeholder::Text => self.text,
            Placeholder::Otp => self.otp,
            Placeholder::Template => self.template,
            Placeholder::Var(i) => self.vars.get(i).map(String::as_str).unwrap_or(""),
            Placeholder::Secret => self.secret,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Value(Placeholder),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// Parses `text`. `{name}` with a word-character name is a placeholder and must be known;
    /// any other brace (a JSON object's) is literal.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_len > 0 && after[name_len..].starts_with('}') {
                let name = &after[..name_len];
                let placeholder = Placeholder::parse(name).ok_or_else(|| {
                    format!("uses unknown placeholder {{{name}}} (known: {{to}}, {{to_digits}}, {{text}}, {{otp}}, {{template}}, {{var1}}..{{var9}}, {{secret}})")
                })?;
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Value(placeholder));
                rest = &after[name_len + 1..];
            } else {
                literal.push('{');
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self { segments })
    }

    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.segments.contains(&Segment::Value(placeholder))
    }

    /// The placeholders filled in anywhere.
    pub fn placeholders(&self) -> impl Iterator<Item = Placeholder> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Value(p) => Some(*p),
            Segment::Literal(_) => None,
        })
    }

    /// The placeholders of a URL template that land before its query or fragment.
    pub fn path_placeholders(&self) -> impl Iterator<Item = Placeholder> + '_ {
        self.segments
            .iter()
            .take_while(|s| !matches!(s, Segment::Literal(l) if l.contains(['?', '#'])))
            .filter_map(|s| match s {
                Segment::Value(p) => Some(*p),
                Segment::Literal(_) => None,
            })
    }

    pub fn render(&self, values: &Values<'_>, escape: Escape) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Value(p) => push_escaped(&mut out, values.get(*p), escape),
            }
        }
        out
    }
}

fn push_escaped(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::Raw => out.push_str(value),
        Escape::Json => {
            let quoted = serde_json::Value::from(value).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
        Escape::Url => {
            for byte in value.bytes() {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    out.push(byte as char);
                } else {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        Values {
            to: "+919876543210",
            to_digits: "919876543210",
            text: "Code: 12 & \"more\"\nbye/ü",
            otp: "12",
            template: "tpl",
            vars: &[],
            secret: "s3cr=t",
        }
    }

    #[test]
    fn url_values_are_percent_encoded() {
        let t = Template::parse("https://x.example/send/{to_digits}?to={to}&m={text}&k={secret}").unwrap();
        assert_eq!(
            t.render(&values(), Escape::Url),
            "https://x.example/send/919876543210?to=%2B919876543210\
             &m=Code%3A%2012%20%26%20%22more%22%0Abye%2F%C3%BC&k=s3cr%3Dt"
        );
    }

    #[test]
    fn json_values_are_escaped_and_json_braces_stay_literal() {
        let t = Template::parse(r#"{"to":"{to}","text":"{text}","meta":{},"n":{"a":1}}"#).unwrap();
        let rendered = t.render(&values(), Escape::Json);
        assert_eq!(
            rendered,
            r#"{"to":"+919876543210","text":"Code: 12 & \"more\"\nbye/ü","meta":{},"n":{"a":1}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(parsed["text"], "Code: 12 & \"more\"\nbye/ü");
    }

    #[test]
    fn raw_values_are_unchanged_and_vars_fill_in_order() {
        let vars = ["A1".to_string(), "B 2".to_string()];
        let v = Values { vars: &vars, ..values() };
        let t = Template::parse("Bearer {secret} {template}:{var1},{var2},{var9}.").unwrap();
        assert_eq!(t.render(&v, Escape::Raw), "Bearer s3cr=t tpl:A1,B 2,.");
        assert!(t.uses(Placeholder::Secret) && t.uses(Placeholder::Var(8)));
        assert!(!t.uses(Placeholder::To));
    }

    #[test]
    fn path_placeholders_stop_at_the_query() {
        let t = Template::parse("https://x.example/{template}/send/{to_digits}?m={text}&k={secret}").unwrap();
        let path: Vec<_> = t.path_placeholders().collect();
        assert_eq!(path, [Placeholder::Template, Placeholder::ToDigits]);
        assert_eq!(t.placeholders().count(), 4);
        assert_eq!(Placeholder::Var(2).written(), "{var3}");
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        for bad in ["{phone}", "x{var0}", "{var10}", "{var01}", "{TO}"] {
            let err = Template::parse(bad).unwrap_err();
            assert!(err.contains("unknown placeholder"), "{bad}: {err}");
        }
        assert!(Template::parse("{ not a placeholder }{").is_ok());
    }
}
