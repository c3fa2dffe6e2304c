//! The fault grammar of `smsgate sim`: what a fake should do instead of (or before) answering.
//!
//! `SPEC[@P%]` where SPEC is `500` (any status 400-599), `error:CODE`, `timeout`, `latency:MS`,
//! `throttle` / `throttle:SECS`, `blackhole` / `blackhole:CC` (only numbers of calling code CC);
//! `ok` means no fault. A blackhole's rate is spread evenly over the messages it may take
//! (`blackhole@40%` loses exactly 2 of every 5), so a drill's loss is exact; other faults roll
//! the dice.

use std::fmt;
use std::time::Duration;

/// What a faulted request gets.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answer with this HTTP status and the provider's own error body for it.
    Status(u16),
    /// Answer with the provider's own error code (or details text), the way it answers errors.
    Error(String),
    /// Accept the connection and never answer (held for [`TIMEOUT_HOLD`]).
    Timeout,
    /// Answer normally after this delay.
    Latency(Duration),
    /// HTTP 429 with `Retry-After` of this many seconds and the provider's throttle body.
    Throttle(u64),
    /// Answer success but do not record the message as delivered: every message, or only those
    /// to numbers of this calling code.
    Blackhole { country: Option<String> },
}

/// How long a `timeout` fault holds a request before giving up on it.
pub const TIMEOUT_HOLD: Duration = Duration::from_secs(120);

/// One fault on one provider, applied to each request with `probability` (0 < p <= 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub probability: f64,
}

impl Fault {
    /// A fault that applies to every request.
    pub fn always(kind: FaultKind) -> Self {
        Self { kind, probability: 1.0 }
    }

    /// Parses a SPEC; `ok` is refused here (it is the absence of a fault, see [`Fault::parse_setting`]).
    pub fn parse(spec: &str) -> Result<Fault, String> {
        Self::parse_setting(spec)?.ok_or_else(|| "`ok` means no fault; clear the fault instead".to_string())
    }

    /// Parses a SPEC where `ok` (or an empty string) means "no fault".
    pub fn parse_setting(spec: &str) -> Result<Option<Fault>, String> {
        let spec = spec.trim();
        if spec.is_empty() || spec.eq_ignore_ascii_case("ok") {
            return Ok(None);
        }
        let (body, probability) = match spec.rsplit_once('@') {
            Some((body, tail)) => (body, parse_probability(tail)?),
            None => (spec, 1.0),
        };
        let kind = parse_kind(body.trim())?;
        Ok(Some(Fault { kind, probability }))
    }

    /// Whether this request is hit (rolls the dice when the probability is below 1).
    pub fn strikes(&self) -> bool {
        self.probability >= 1.0 || rand::Rng::gen_bool(&mut rand::thread_rng(), self.probability)
    }
}

impl Fault {
    /// Whether a blackhole takes a message to `to` (E.164), given the fraction of earlier
    /// messages' share not yet taken (`owed`, kept per provider by the caller): every message
    /// adds `probability` to it, and each whole unit owed takes one message.
    pub fn swallows(&self, to: &str, owed: &mut f64) -> bool {
        let FaultKind::Blackhole { country } = &self.kind else {
            return false;
        };
        let digits = to.trim_start_matches('+');
        if country.as_deref().is_some_and(|cc| !digits.starts_with(cc)) {
            return false;
        }
        *owed += self.probability;
        if *owed >= 1.0 - 1e-9 {
            *owed -= 1.0;
            true
        } else {
            false
        }
    }
}

fn parse_probability(tail: &str) -> Result<f64, String> {
    let percent = tail
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("probability `{tail}` must look like `30%`"))?;
    match percent.trim().parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p / 100.0),
        _ => Err(format!("probability `{tail}` must be a percentage above 0 and at most 100")),
    }
}

fn parse_kind(body: &str) -> Result<FaultKind, String> {
    let (word, arg) = match body.split_once(':') {
        Some((w, a)) => (w.trim(), Some(a.trim())),
        None => (body, None),
    };
    match (word.to_ascii_lowercase().as_str(), arg) {
        ("error", Some(code)) if !code.is_empty() => Ok(FaultKind::Error(code.to_string())),
        ("error", _) => Err("`error:CODE` needs a code".into()),
        ("timeout", None) => Ok(FaultKind::Timeout),
        ("blackhole", None) => Ok(FaultKind::Blackhole { country: None }),
        ("blackhole", Some(cc)) => {
            let cc = cc.trim_start_matches('+');
            if (1..=3).contains(&cc.len()) && cc.bytes().all(|b| b.is_ascii_digit()) && !cc.starts_with('0') {
                Ok(FaultKind::Blackhole {
                    country: Some(cc.to_string()),
                })
            } else {
                Err(format!("`blackhole:{cc}` needs a calling code such as 91"))
            }
        }
        ("latency", Some(ms)) => ms
            .parse::<u64>()
            .map(|ms| FaultKind::Latency(Duration::from_millis(ms)))
            .map_err(|_| format!("`latency:{ms}` needs milliseconds")),
        ("throttle", None) => Ok(FaultKind::Throttle(1)),
        ("throttle", Some(secs)) => secs
            .parse::<u64>()
            .map(FaultKind::Throttle)
            .map_err(|_| format!("`throttle:{secs}` needs whole seconds")),
        (status, None) if status.bytes().all(|b| b.is_ascii_digit()) => match status.parse() {
            Ok(code @ 400..=599) => Ok(FaultKind::Status(code)),
            _ => Err(format!("status `{status}` must be between 400 and 599")),
        },
        _ => Err(format!(
            "unknown fault `{body}` (expected a status 400-599, error:CODE, timeout, latency:MS, \
             throttle[:SECS], blackhole or ok, optionally followed by @P%)"
        )),
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FaultKind::Status(code) => write!(f, "{code}")?,
            FaultKind::Error(code) => write!(f, "error:{code}")?,
            FaultKind::Timeout => f.write_str("timeout")?,
            FaultKind::Latency(d) => write!(f, "latency:{}", d.as_millis())?,
            FaultKind::Throttle(secs) => write!(f, "throttle:{secs}")?,
            FaultKind::Blackhole { country: None } => f.write_str("blackhole")?,
            FaultKind::Blackhole { country: Some(cc) } => write!(f, "blackhole:{cc}")?,
        }
        if self.probability < 1.0 {
            // Rounded so 0.07 prints as 7, not 7.000000000000001.
            let percent = (self.probability * 100.0 * 1e6).round() / 1e6;
            write!(f, "@{percent}%")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_spec_parses() {
        let p = |s: &str| Fault::parse(s).unwrap();
        assert_eq!(p("500").kind, FaultKind::Status(500));
        assert_eq!(p("429").kind, FaultKind::Status(429));
        assert_eq!(p("error:9").kind, FaultKind::Error("9".into()));
        assert_eq!(
            p("error:Invalid Phone Number").kind,
            FaultKind::Error("Invalid Phone Number".into())
        );
        assert_eq!(p("timeout").kind, FaultKind::Timeout);
        assert_eq!(p("latency:250").kind, FaultKind::Latency(Duration::from_millis(250)));
        assert_eq!(p("throttle").kind, FaultKind::Throttle(1));
        assert_eq!(p("throttle:7").kind, FaultKind::Throttle(7));
        assert_eq!(p("blackhole").kind, FaultKind::Blackhole { country: None });
        let lossy = p("blackhole:+91@80%");
        assert_eq!(
            (lossy.kind.clone(), lossy.probability),
            (
                FaultKind::Blackhole {
                    country: Some("91".into())
                },
                0.8
            )
        );
        assert_eq!(lossy.to_string(), "blackhole:91@80%");
        let f = p("500@30%");
        assert_eq!((f.kind.clone(), f.probability), (FaultKind::Status(500), 0.3));
        assert_eq!(f.to_string(), "500@30%");
        for spec in ["500@7%", "timeout@0.5%", "error:9@99.9%", "latency:20", "throttle:1"] {
            assert_eq!(p(spec).to_string(), spec);
        }
        assert_eq!(Fault::parse_setting("ok").unwrap(), None);
    }

    #[test]
    fn a_blackhole_takes_exactly_its_rate_of_its_country() {
        let hole = Fault::parse("blackhole:91@40%").unwrap();
        let mut owed = 0.0;
        let lost = (0..100).filter(|_| hole.swallows("+919876543210", &mut owed)).count();
        assert_eq!(lost, 40);
        assert!(!hole.swallows("+14155550100", &mut owed), "another country");
        let all = Fault::parse("blackhole").unwrap();
        assert!((0..10).all(|_| all.swallows("+14155550100", &mut owed)));
        assert!(!Fault::parse("500").unwrap().swallows("+919876543210", &mut owed));
    }

    #[test]
    fn malformed_specs_are_refused_with_a_reason() {
        for bad in [
            "",
            "ok",
            "200",
            "600",
            "error",
            "error:",
            "latency",
            "latency:x",
            "throttle:1.5",
            "timeout:3",
            "500@30",
            "500@0%",
            "500@101%",
            "explode",
            "blackhole:x",
            "blackhole:0044",
        ] {
            assert!(Fault::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
