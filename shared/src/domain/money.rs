//! Exact money. Amounts are decimals with at most two places; they never pass through binary
//! floating point: JSON numbers are read and written as their decimal text.

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use serde_json::value::RawValue;

/// An exact amount of money with at most two decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Money(Decimal);

/// Why a text is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not a decimal number.
    #[error("must be a decimal number")]
    NotANumber,
    /// More than two decimal places, e.g. `1.005`.
    #[error("must have at most 2 decimal places")]
    TooManyDecimals,
}

impl Money {
    /// Most decimal places an amount may have.
    pub const SCALE: u32 = 2;

    /// An amount from a decimal, refusing sub-cent precision (`1.50` and `1.500` are fine).
    ///
    /// # Errors
    /// [`MoneyError::TooManyDecimals`] for more than two significant decimal places.
    pub fn new(amount: Decimal) -> Result<Self, MoneyError> {
        let normalized = amount.normalize();
        if normalized.scale() > Self::SCALE {
            return Err(MoneyError::TooManyDecimals);
        }
        let mut exact = normalized;
        exact.rescale(Self::SCALE);
        Ok(Money(exact))
    }

    /// The amount as a decimal.
    pub fn amount(self) -> Decimal {
        self.0
    }

    /// `self × quantity`, or `None` if it overflows.
    pub fn times(self, quantity: i32) -> Option<Money> {
        self.0.checked_mul(Decimal::from(quantity)).and_then(|d| Money::new(d).ok())
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    /// Parses JSON number text exactly: `12`, `12.5`, `12.50`, `1.25e2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let looks_numeric = s.starts_with(|c: char| c.is_ascii_digit() || c == '-');
        if !looks_numeric {
            return Err(MoneyError::NotANumber);
        }
        let parsed = if s.contains(['e', 'E']) { Decimal::from_scientific(s) } else { Decimal::from_str_exact(s) };
        parsed.map_err(|_| MoneyError::NotANumber).and_then(Money::new)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut exact = self.0;
        exact.rescale(Self::SCALE);
        fmt::Display::fmt(&exact, f)
    }
}

/// Serialised as a JSON number with exactly two decimals (`12.50`), written as text so no
/// floating point is involved.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Read from a JSON number's own text; strings are refused so that `"12.50"` is a type error
/// like any other.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        raw.get().parse().map_err(|e: MoneyError| match e {
            MoneyError::NotANumber => D::Error::custom(format!("invalid type: {}, expected a number", raw.get())),
            MoneyError::TooManyDecimals => D::Error::custom("a number with at most 2 decimal places"),
        })
    }
}

/// A JSON number with at most two decimal places.
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .multiple_of(Some(0.01))
            .description(Some("An exact amount with at most two decimal places, e.g. 19.99"))
            .examples([serde_json::json!(19.99)])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_serialises_as_a_number_with_two_decimals() {
        let money: Money = "12.5".parse().unwrap();
        assert_eq!(serde_json::to_string(&money).unwrap(), "12.50");
        #[derive(Serialize)]
        struct Line {
            price: Money,
        }
        assert_eq!(serde_json::to_string(&Line { price: money }).unwrap(), r#"{"price":12.50}"#);
    }

    #[test]
    fn money_reads_json_numbers_exactly() {
        let money: Money = serde_json::from_str("0.1").unwrap();
        assert_eq!(money.times(3).unwrap().to_string(), "0.30");
        let scientific: Money = serde_json::from_str("1.25e2").unwrap();
        assert_eq!(scientific.to_string(), "125.00");
        let trailing_zeros: Money = serde_json::from_str("1.500").unwrap();
        assert_eq!(trailing_zeros.to_string(), "1.50");
    }

    #[test]
    fn money_refuses_sub_cent_amounts_and_strings() {
        assert_eq!("1.005".parse::<Money>(), Err(MoneyError::TooManyDecimals));
        assert!(serde_json::from_str::<Money>(r#""12.50""#).is_err());
        assert!(serde_json::from_str::<Money>("true").is_err());
    }

    #[test]
    fn money_survives_a_round_trip_through_a_json_value() {
        let value = serde_json::json!({ "total": 19.99 });
        let money: Money = serde_json::from_value(value["total"].clone()).unwrap();
        assert_eq!(money.to_string(), "19.99");
    }
}
