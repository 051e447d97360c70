//! NHS numbers: the national patient identifier for England, Wales and the Isle of Man.
//!
//! An NHS number is ten digits; the tenth is a Modulus 11 check digit over the
//! first nine. Numbers from 999 000 0000 to 999 999 9999 are never issued and
//! are used for test and synthetic patients.

/// The FHIR `Identifier.system` for NHS numbers (UK Core).
pub const SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// Returns true if `s` is exactly ten ASCII digits whose check digit is valid.
///
/// The check: multiply the first nine digits by the weights 10, 9, …, 2 and sum;
/// the check digit is `11 - (sum % 11)`, where 11 means 0 and 10 means the
/// number is invalid (no such NHS number can be issued). Formatting such as
/// spaces (`943 476 5919`) is not accepted: FHIR carries the bare digits.
pub fn is_valid(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() != 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum: u32 = 0;
    let mut check: Option<u32> = None;
    for (position, byte) in bytes.iter().enumerate() {
        let digit = u32::from(byte - b'0');
        match u32::try_from(position) {
            // Positions 0..=8 carry the weights 10..=2.
            Ok(p) if p < 9 => sum += digit * (10 - p),
            _ => check = Some(digit),
        }
    }
    let expected = match 11 - (sum % 11) {
        11 => 0,
        10 => return false,
        d => d,
    };
    check == Some(expected)
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn valid_numbers() {
        for n in ["9990000018", "9000000009", "9434765919", "4010232137"] {
            assert!(is_valid(n), "{n} should be valid");
        }
    }

    #[test]
    fn invalid_check_digit() {
        // 9000000012 is a sandbox number used by NHS APIs that fails the check.
        for n in ["9000000012", "9434765918", "9990000017"] {
            assert!(!is_valid(n), "{n} should be invalid");
        }
    }

    #[test]
    fn check_digit_ten_is_invalid() {
        // Weighted sums of the first nine digits: 1 * 2 = 2 → check 9; 1 * 3 = 3 → check 8.
        assert!(is_valid("0000000019"));
        assert!(is_valid("0000000108"));
        // 6 * 2 = 12, 12 % 11 = 1, 11 - 1 = 10: no check digit can make this valid.
        for last in 0..=9 {
            assert!(!is_valid(&format!("000000006{last}")));
        }
    }

    #[test]
    fn wrong_shape() {
        for n in [
            "",
            "999000001",
            "99900000188",
            "943 476 5919",
            "999000001X",
            "９９９０００００１８",
            "+990000018",
        ] {
            assert!(!is_valid(n), "{n:?} should be invalid");
        }
    }
}
