//! PostgreSQL `numeric` in its binary wire form, to and from decimal text.
//!
//! The WIT `decimal` case carries exact decimal text. Going through `f64` or a fixed-precision
//! decimal crate would round values that `numeric` (up to 131072 digits) holds exactly, so the
//! host converts the base-10000 wire digits itself.

const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;
const SIGN_PINF: u16 = 0xD000;
const SIGN_NINF: u16 = 0xF000;

/// Decodes the binary `numeric` representation into decimal text (`-12.340`, `NaN`).
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() < 8 {
        return Err("numeric value shorter than its header".into());
    }
    let be16 = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
    let ndigits = be16(0) as usize;
    let weight = be16(2) as i16 as i32;
    let sign = be16(4);
    let dscale = be16(6) as usize;
    if bytes.len() < 8 + ndigits * 2 {
        return Err("numeric value shorter than its digit count".into());
    }
    match sign {
        SIGN_NAN => return Ok("NaN".into()),
        SIGN_PINF => return Ok("Infinity".into()),
        SIGN_NINF => return Ok("-Infinity".into()),
        SIGN_POS | SIGN_NEG => {}
        other => return Err(format!("numeric value with unknown sign {other:#x}")),
    }
    let digit = |i: i32| -> u16 {
        if i >= 0 && (i as usize) < ndigits {
            be16(8 + 2 * i as usize)
        } else {
            0
        }
    };

    let mut out = String::with_capacity(ndigits * 4 + 4);
    if sign == SIGN_NEG {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit(i).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

/// Encodes decimal text (`12.5`, `-0.001`, `1e6`, `NaN`, `Infinity`) as binary `numeric`.
///
/// Allocation-free on the way to `buf`: `execute-batch` encodes a column of these per row.
pub fn encode(text: &str, buf: &mut Vec<u8>) -> Result<(), String> {
    let t = text.trim();
    // Only a word (after its sign) can be one of the special values: a number skips the
    // comparisons.
    let word = t
        .bytes()
        .find(|b| !matches!(b, b'+' | b'-'))
        .is_some_and(|b| b.is_ascii_alphabetic());
    let special = if !word {
        None
    } else if t.eq_ignore_ascii_case("nan") {
        Some(SIGN_NAN)
    } else if ["infinity", "+infinity", "inf"]
        .iter()
        .any(|s| t.eq_ignore_ascii_case(s))
    {
        Some(SIGN_PINF)
    } else if ["-infinity", "-inf"]
        .iter()
        .any(|s| t.eq_ignore_ascii_case(s))
    {
        Some(SIGN_NINF)
    } else {
        None
    };
    if let Some(sign) = special {
        for v in [0u16, 0, sign, 0] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        return Ok(());
    }

    let invalid = || format!("'{}' is not a decimal number", shorten(text));
    let (negative, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (
            &rest[..i],
            rest[i + 1..].parse::<i32>().map_err(|_| invalid())?,
        ),
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(invalid());
    }

    // The digits of `int_part` then `frac_part`, with the decimal point `point` digits from
    // their start once the exponent has moved it. The digit at index `i` has the place value
    // 10^(point - 1 - i), so it belongs to the base-10000 group of weight
    // floor((point - 1 - i) / 4).
    let (int, frac) = (int_part.as_bytes(), frac_part.as_bytes());
    let len = (int.len() + frac.len()) as i64;
    let digit = |i: i64| -> u16 {
        match usize::try_from(i) {
            Ok(i) if i < int.len() => u16::from(int[i] - b'0'),
            Ok(i) if i < int.len() + frac.len() => u16::from(frac[i - int.len()] - b'0'),
            _ => 0,
        }
    };
    let point = int.len() as i64 + exponent as i64;
    if !(-(1 << 17)..=(1 << 17)).contains(&point) {
        return Err(format!("'{}' is out of numeric's range", shorten(text)));
    }
    let dscale = (len - point).max(0);
    let dscale =
        u16::try_from(dscale).map_err(|_| format!("'{}' has too many decimals", shorten(text)))?;
    let group_of = |i: i64| (point - 1 - i).div_euclid(4);
    let first = (0..len).find(|&i| digit(i) != 0);
    let last = (0..len).rev().find(|&i| digit(i) != 0);
    let (first_weight, last_weight) = match (first, last) {
        (Some(f), Some(l)) => (group_of(f), group_of(l)),
        // Zero: no groups at all.
        _ => (0, 1),
    };
    let ndigits = (first_weight - last_weight + 1).max(0);
    let sign = if negative && ndigits > 0 {
        SIGN_NEG
    } else {
        SIGN_POS
    };
    let weight = if ndigits > 0 { first_weight } else { 0 };
    for v in [ndigits as u16, weight as i16 as u16, sign, dscale] {
        buf.extend_from_slice(&v.to_be_bytes());
    }
    for w in (last_weight..=first_weight).rev() {
        // The group's four digits, from its 10^(4w+3) place down to its 10^(4w) place.
        let group = (0..4).fold(0u16, |acc, k| {
            let place = 4 * w + 3 - k;
            acc * 10 + digit(point - 1 - place)
        });
        buf.extend_from_slice(&group.to_be_bytes());
    }
    Ok(())
}

/// Keeps error messages short when a flow passes a huge value.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let mut buf = Vec::new();
        encode(text, &mut buf).unwrap();
        decode(&buf).unwrap()
    }

    #[test]
    fn decimal_text_round_trips_exactly() {
        for s in [
            "0",
            "1",
            "-1",
            "12.34",
            "-12.3400",
            "0.0001",
            "0.00000001",
            "10000",
            "99999999999999999999999999999999999999.123456789012345678901234567890",
            "123456789.000000001",
            "-0.5",
            "NaN",
            "Infinity",
            "-Infinity",
        ] {
            assert_eq!(round_trip(s), s, "{s}");
        }
    }

    #[test]
    fn special_values_are_words_in_any_case_with_their_sign() {
        for (text, shown) in [
            ("nan", "NaN"),
            (" NAN ", "NaN"),
            ("+infinity", "Infinity"),
            ("INF", "Infinity"),
            ("-inf", "-Infinity"),
            ("-Infinity", "-Infinity"),
        ] {
            assert_eq!(round_trip(text), shown, "{text}");
        }
        for not_a_number in ["e5", "+e", "-nan", "infinit", "1inf"] {
            assert!(
                encode(not_a_number, &mut Vec::new()).is_err(),
                "{not_a_number}"
            );
        }
    }

    #[test]
    fn leading_zeros_and_plus_sign_are_normalised() {
        assert_eq!(round_trip("+007.50"), "7.50");
        assert_eq!(round_trip("-0.000"), "0.000");
    }

    #[test]
    fn exponents_shift_the_point() {
        assert_eq!(round_trip("1.5e3"), "1500");
        assert_eq!(round_trip("15e-3"), "0.015");
    }

    #[test]
    fn encoding_matches_the_bytes_postgresql_sends() {
        // From `SELECT encode(numeric_send(v::numeric), 'hex')` on PostgreSQL 15.
        for (text, hex) in [
            ("12345.678", "0003000100000003000109291a7c"),
            ("0.0001", "0001ffff000000040001"),
            ("-1e5", "0001000140000000000a"),
            ("0.000", "0000000000000003"),
            ("1e-7", "0001fffe00000007000a"),
            ("100000000.5", "00040002000000010001000000001388"),
            ("-0.5", "0001ffff400000011388"),
            ("9999.9999", "0002000000000004270f270f"),
            ("1.5e3", "000100000000000005dc"),
        ] {
            let mut buf = Vec::new();
            encode(text, &mut buf).unwrap();
            let got: String = buf.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "{text}");
        }
    }

    #[test]
    fn known_wire_bytes_decode() {
        // 12345.678 as PostgreSQL sends it: ndigits 3, weight 1, sign +, dscale 3, [1, 2345, 6780].
        let bytes = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C];
        assert_eq!(decode(&bytes).unwrap(), "12345.678");
    }

    #[test]
    fn garbage_is_refused_with_the_value_named() {
        let err = encode("12a", &mut Vec::new()).unwrap_err();
        assert!(err.contains("12a"), "{err}");
        assert!(encode("", &mut Vec::new()).is_err());
        assert!(encode(".", &mut Vec::new()).is_err());
    }
}
