//! Resource quantities: `500m` CPU, `128Mi` memory, as Kubernetes writes
//! them (apimachinery's `resource.Quantity`).
//!
//! A quantity is a decimal number with an optional suffix:
//! - binary SI: `Ki Mi Gi Ti Pi Ei` (powers of 1024);
//! - decimal SI: `n u m` (10^-9, 10^-6, 10^-3), none, `k M G T P E`;
//! - a decimal exponent: `e3`, `E-2`.
//!
//! [`Quantity::milli`] keeps the value in thousandths (CPU is counted in
//! millicores); [`Quantity::value`] rounds up to a whole number, as
//! `Quantity.Value()` does (memory in bytes).

/// A parsed quantity, in thousandths of the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    milli: i128,
}

/// Why a text is not a quantity (upstream's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)]
pub struct InvalidQuantity;

impl Quantity {
    pub fn parse(text: &str) -> Result<Quantity, InvalidQuantity> {
        let text = text.trim();
        let number_end = text
            .char_indices()
            .find(|(i, c)| {
                !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-')))
            })
            .map_or(text.len(), |(i, _)| i);
        let (number, suffix) = text.split_at(number_end);
        let (negative, digits) = match number.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, number.strip_prefix('+').unwrap_or(number)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole
                .chars()
                .chain(fraction.chars())
                .all(|c| c.is_ascii_digit())
        {
            return Err(InvalidQuantity);
        }
        // The number as an integer and a power of ten: 1.5 = 15 x 10^-1.
        let mantissa: i128 = format!("{whole}{fraction}")
            .trim_start_matches('0')
            .parse()
            .or_else(|_| {
                if whole.chars().chain(fraction.chars()).all(|c| c == '0') {
                    Ok(0)
                } else {
                    Err(InvalidQuantity)
                }
            })?;
        let mut exponent10: i32 = -(fraction.len() as i32);
        let mut binary: u32 = 0;
        match suffix {
            "" => {}
            "n" => exponent10 -= 9,
            "u" => exponent10 -= 6,
            "m" => exponent10 -= 3,
            "k" => exponent10 += 3,
            "M" => exponent10 += 6,
            "G" => exponent10 += 9,
            "T" => exponent10 += 12,
            "P" => exponent10 += 15,
            "E" => exponent10 += 18,
            "Ki" => binary = 10,
            "Mi" => binary = 20,
            "Gi" => binary = 30,
            "Ti" => binary = 40,
            "Pi" => binary = 50,
            "Ei" => binary = 60,
            other => {
                let exponent = other
                    .strip_prefix('e')
                    .or_else(|| other.strip_prefix('E'))
                    .ok_or(InvalidQuantity)?;
                let exponent: i32 = exponent.parse().map_err(|_| InvalidQuantity)?;
                if exponent.abs() > 30 {
                    return Err(InvalidQuantity);
                }
                exponent10 += exponent;
            }
        }
        // In thousandths: one more 10^3.
        exponent10 += 3;
        let scaled = mantissa
            .checked_mul(1i128 << binary)
            .ok_or(InvalidQuantity)?;
        let milli = if exponent10 >= 0 {
            scaled
                .checked_mul(
                    10i128
                        .checked_pow(exponent10 as u32)
                        .ok_or(InvalidQuantity)?,
                )
                .ok_or(InvalidQuantity)?
        } else {
            // Below a thousandth: round up, as upstream rounds a
            // quantity's milli value.
            let divisor = 10i128
                .checked_pow((-exponent10) as u32)
                .unwrap_or(i128::MAX);
            (scaled + divisor - 1) / divisor
        };
        Ok(Quantity {
            milli: if negative { -milli } else { milli },
        })
    }

    /// In thousandths of the unit: millicores for CPU.
    pub fn milli(&self) -> i128 {
        self.milli
    }

    /// Rounded up to a whole unit: bytes for memory.
    pub fn value(&self) -> i128 {
        if self.milli >= 0 {
            (self.milli + 999) / 1000
        } else {
            self.milli / 1000
        }
    }
}

impl std::str::FromStr for Quantity {
    type Err = InvalidQuantity;
    fn from_str(text: &str) -> Result<Quantity, InvalidQuantity> {
        Quantity::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap_or_else(|_| panic!("{text}"))
    }

    #[test]
    fn cpu_in_millicores() {
        assert_eq!(q("500m").milli(), 500);
        assert_eq!(q("1").milli(), 1000);
        assert_eq!(q("0.25").milli(), 250);
        assert_eq!(q("2.5").milli(), 2500);
        assert_eq!(q("100u").milli(), 1, "rounded up to a millicore");
        assert_eq!(q("0").milli(), 0);
    }

    #[test]
    fn memory_in_bytes() {
        assert_eq!(q("128Mi").value(), 128 * 1024 * 1024);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("129e6").value(), 129_000_000);
        assert_eq!(q("1.5Ki").value(), 1536);
        assert_eq!(q("100").value(), 100);
        assert_eq!(q("1500m").value(), 2, "rounded up");
    }

    #[test]
    fn not_quantities() {
        for bad in ["", "Mi", "1Qi", "1..2", "abc", "1e", "--1", "1 Mi"] {
            assert_eq!(Quantity::parse(bad), Err(InvalidQuantity), "{bad:?}");
        }
    }

    #[test]
    fn quantities_compare_by_value() {
        assert!(q("1Gi") > q("1G"));
        assert!(q("500m") < q("1"));
        assert_eq!(q("1000m"), q("1"));
    }
}
