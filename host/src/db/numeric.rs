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
pub fn encode(text: &str, buf: &mut Vec<u8>) -> Result<(), String> {
    let t = text.trim();
    let special = match t.to_ascii_lowercase().as_str() {
        "nan" => Some(SIGN_NAN),
        "infinity" | "+infinity" | "inf" => Some(SIGN_PINF),
        "-infinity" | "-inf" => Some(SIGN_NINF),
        _ => None,
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

    // Shift the decimal point by the exponent, then split again.
    let digits: String = format!("{int_part}{frac_part}");
    let point = int_part.len() as i64 + exponent as i64;
    if !(-(1 << 17)..=(1 << 17)).contains(&point) {
        return Err(format!("'{}' is out of numeric's range", shorten(text)));
    }
    let (int_digits, frac_digits): (String, String) = if point <= 0 {
        (String::new(), "0".repeat((-point) as usize) + &digits)
    } else if point as usize >= digits.len() {
        (
            digits.clone() + &"0".repeat(point as usize - digits.len()),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_owned(),
            digits[point as usize..].to_owned(),
        )
    };
    let dscale = frac_digits.len();
    let int_digits = int_digits.trim_start_matches('0');

    // Base-10000 groups aligned on the decimal point.
    let int_pad = (4 - int_digits.len() % 4) % 4;
    let frac_pad = (4 - frac_digits.len() % 4) % 4;
    let int_aligned = format!("{}{}", "0".repeat(int_pad), int_digits);
    let frac_aligned = format!("{}{}", frac_digits, "0".repeat(frac_pad));
    let mut groups: Vec<u16> = int_aligned
        .as_bytes()
        .chunks(4)
        .chain(frac_aligned.as_bytes().chunks(4))
        .map(|c| c.iter().fold(0u16, |acc, d| acc * 10 + (d - b'0') as u16))
        .collect();
    let mut weight = (int_aligned.len() / 4) as i32 - 1;
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if negative && !groups.is_empty() {
        SIGN_NEG
    } else {
        SIGN_POS
    };
    let header = [
        groups.len() as u16,
        weight as i16 as u16,
        sign,
        u16::try_from(dscale).map_err(|_| format!("'{}' has too many decimals", shorten(text)))?,
    ];
    for v in header.iter().chain(groups.iter()) {
        buf.extend_from_slice(&v.to_be_bytes());
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
