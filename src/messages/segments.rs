//! Segment counting: how many SMS parts a text costs. A text that fits the GSM 03.38 alphabet
//! goes as GSM-7 (160 septets in one part, 153 per part of a concatenated message; a character
//! of the extension table takes two septets, its escape and itself); any other text goes as
//! UCS-2 (70 UTF-16 code units in one part, 67 per part; a character outside the Basic
//! Multilingual Plane, as most emoji are, takes two). A two-unit character is never split
//! across parts, as handsets and providers split them, so a part may hold one unit less.

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    /// `gsm7` or `ucs2`: the `encoding` label of the parts metric.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Gsm7 => "gsm7",
            Self::Ucs2 => "ucs2",
        }
    }

    /// (units in a single-part message, units per part of a concatenated one).
    fn capacity(&self) -> (usize, usize) {
        match self {
            Self::Gsm7 => (160, 153),
            Self::Ucs2 => (70, 67),
        }
    }
}

/// What a text costs on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// SMS parts; an empty text still costs one.
    pub parts: u32,
}

/// The GSM 03.38 basic character set (one septet each); the escape slot (0x1B) is left out.
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table (two septets each: the escape and the character).
const EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// Septets each ASCII character takes in GSM-7 (0: GSM-7 cannot carry it), from the tables
/// above: most texts are ASCII, and a scan of the tables per character was a percent of a send.
const ASCII_SEPTETS: [u8; 128] = {
    let mut table = [0u8; 128];
    let (basic, extension) = (BASIC.as_bytes(), EXTENSION.as_bytes());
    let mut i = 0;
    while i < basic.len() {
        if basic[i] < 128 {
            table[basic[i] as usize] = 1;
        }
        i += 1;
    }
    i = 0;
    while i < extension.len() {
        if extension[i] < 128 {
            table[extension[i] as usize] = 2;
        }
        i += 1;
    }
    table
};

/// Septets `c` takes in GSM-7, or `None` when GSM-7 cannot carry it.
fn septets(c: char) -> Option<usize> {
    if c.is_ascii() {
        return match ASCII_SEPTETS[c as usize] {
            0 => None,
            n => Some(usize::from(n)),
        };
    }
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Measures `text`: its encoding, its length in that encoding's units, and its parts.
pub fn measure(text: &str) -> Segments {
    let gsm = text.chars().try_fold(0, |n, c| Some(n + septets(c)?));
    let (encoding, total) = match gsm {
        Some(n) => (Encoding::Gsm7, n),
        None => (Encoding::Ucs2, text.encode_utf16().count()),
    };
    let (single, per_part) = encoding.capacity();
    let parts = if total <= single {
        1
    } else {
        let units = |c: char| match encoding {
            Encoding::Gsm7 => septets(c).unwrap_or(1),
            Encoding::Ucs2 => c.len_utf16(),
        };
        split(text.chars().map(units), per_part)
    };
    Segments {
        encoding,
        units: total,
        parts,
    }
}

/// Parts needed when no character's units may straddle two parts.
fn split(units: impl Iterator<Item = usize>, per_part: usize) -> u32 {
    let mut parts = 1;
    let mut used = 0;
    for u in units {
        if used + u > per_part {
            parts += 1;
            used = 0;
        }
        used += u;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gsm(n: usize) -> String {
        "a".repeat(n)
    }

    /// (text, encoding, units, parts): real texts at each boundary.
    fn table() -> Vec<(String, Encoding, usize, u32)> {
        use Encoding::*;
        let otp = "Your smsgate code is 482913. It expires in 5 minutes. Do not share it.".to_string();
        let hindi = "आपका ओटीपी 482913 है"; // 20 code units, all in the BMP
        vec![
            (String::new(), Gsm7, 0, 1),
            (otp.clone(), Gsm7, otp.len(), 1),
            (gsm(160), Gsm7, 160, 1),
            (gsm(161), Gsm7, 161, 2),
            (gsm(306), Gsm7, 306, 2),
            (gsm(307), Gsm7, 307, 3),
            (gsm(153 * 6), Gsm7, 918, 6),
            (gsm(153 * 6 + 1), Gsm7, 919, 7),
            // Accented letters of the basic table and `@£$¥` cost one septet each.
            ("Café à 5€? Nein: Straße, Ångström, £10 @ ¥".to_string(), Gsm7, 43, 1),
            // The extension table costs two: 80 euro signs fill one part exactly.
            ("€".repeat(80), Gsm7, 160, 1),
            ("€".repeat(81), Gsm7, 162, 2),
            // `{}` at a part boundary: the escape and its character stay together.
            (format!("{}{{", gsm(158)), Gsm7, 160, 1),
            (format!("{}{{", gsm(159)), Gsm7, 161, 2),
            // 306 septets would fill two parts, but `{` cannot start in septet 153 of the first.
            (format!("{}{{{}", gsm(152), gsm(152)), Gsm7, 306, 3),
            ("[code] ~ {482913} | \\ ^".to_string(), Gsm7, 31, 1),
            // A character outside GSM-7 turns the whole text into UCS-2.
            (format!("{}ç", gsm(69)), Ucs2, 70, 1),
            (format!("{}ç", gsm(70)), Ucs2, 71, 2),
            ("Hi 👋".to_string(), Ucs2, 5, 1),
            // An emoji is two UTF-16 units: 35 fill one part, 36 need two.
            ("😀".repeat(35), Ucs2, 70, 1),
            ("😀".repeat(36), Ucs2, 72, 2),
            // 33 emoji are 66 units; the 34th does not fit in the part's last unit.
            (format!("{}{}", "x".repeat(66), "😀".repeat(2)), Ucs2, 70, 1),
            (format!("a{}", "😀".repeat(34)), Ucs2, 69, 1),
            (format!("ab{}", "😀".repeat(35)), Ucs2, 72, 2),
            (format!("{}😀{}", "ä".repeat(66) + "ç", "x".repeat(4)), Ucs2, 73, 2),
            (hindi.to_string(), Ucs2, 20, 1),
            ("नमस्ते".repeat(11), Ucs2, 66, 1),
            ("नमस्ते".repeat(12), Ucs2, 72, 2),
            ("क".repeat(134), Ucs2, 134, 2),
            ("क".repeat(135), Ucs2, 135, 3),
            ("क".repeat(67 * 6), Ucs2, 402, 6),
            ("क".repeat(67 * 6 + 1), Ucs2, 403, 7),
        ]
    }

    #[test]
    fn the_ascii_table_agrees_with_the_gsm_tables() {
        for c in (0u8..128).map(char::from) {
            let scanned = if BASIC.contains(c) {
                Some(1)
            } else if EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            };
            assert_eq!(septets(c), scanned, "{c:?}");
        }
    }

    #[test]
    fn every_text_of_the_table_has_its_encoding_units_and_parts() {
        for (text, encoding, units, parts) in table() {
            let got = measure(&text);
            assert_eq!(
                (got.encoding, got.units, got.parts),
                (encoding, units, parts),
                "{text:?} ({} chars)",
                text.chars().count()
            );
        }
    }

    #[test]
    fn an_emoji_never_straddles_two_ucs2_parts() {
        // 134 units would fill two parts, but the emoji cannot take unit 67 and 68.
        let text = format!("{}😀{}", "x".repeat(66), "x".repeat(66));
        let got = measure(&text);
        assert_eq!((got.encoding, got.units, got.parts), (Encoding::Ucs2, 134, 3));
    }
}
