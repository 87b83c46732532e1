//! Integer body fields that take every JSON number JSON Schema calls an integer. The OpenAPI
//! document says `"type": "integer"`, and JSON Schema counts any number with a zero fractional
//! part as one (`592.0` and `5.92e2` as much as `592`), so a client generated from the document
//! may send them; serde's `i64` alone would refuse them with a 400.
//!
//! Use as `#[serde(deserialize_with = "integral::integer")]` (or `optional_integer` on an
//! `Option<i64>` with `#[serde(default)]`).

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{Error, Unexpected, Visitor},
};

/// 2^63 as an `f64`: the first integral `f64` beyond `i64::MAX` (which `f64` cannot hold).
const I64_END: f64 = 9_223_372_036_854_775_808.0;

struct Integral;

impl Visitor<'_> for Integral {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<i64, E> {
        Ok(value)
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<i64, E> {
        i64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &"an integer up to 2^63 - 1"))
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<i64, E> {
        if value.fract() == 0.0 && (-I64_END..I64_END).contains(&value) {
            // Integral and in range, so the conversion is exact.
            Ok(value as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(value), &self))
        }
    }
}

/// An integer that may be written with a zero fraction.
struct Integer(i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Integral).map(Integer)
    }
}

/// An `i64` field from any integral JSON number.
///
/// # Errors
/// A non-number, a fraction, or a value outside `i64`.
pub fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    Integer::deserialize(deserializer).map(|i| i.0)
}

/// An `Option<i64>` field (`null` is `None`) from any integral JSON number.
///
/// # Errors
/// As [`integer`].
pub fn optional_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Option::<Integer>::deserialize(deserializer).map(|i| i.map(|i| i.0))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::integer")]
        n: i64,
        #[serde(default, deserialize_with = "super::optional_integer")]
        m: Option<i64>,
    }

    fn n(json: &str) -> Result<i64, String> {
        serde_json::from_str::<Body>(&format!(r#"{{"n": {json}}}"#)).map(|b| b.n).map_err(|e| e.to_string())
    }

    #[test]
    fn an_integral_float_is_the_integer_json_schema_says_it_is() {
        assert_eq!(n("592"), Ok(592));
        assert_eq!(n("592.0"), Ok(592));
        assert_eq!(n("5.92e2"), Ok(592));
        assert_eq!(n("-3.0"), Ok(-3));
        assert_eq!(n("9223372036854775807"), Ok(i64::MAX));
    }

    #[test]
    fn a_fraction_a_string_or_a_number_beyond_i64_is_refused() {
        for json in ["592.5", "\"592\"", "true", "9223372036854775808", "9.3e18", "1e300"] {
            assert!(n(json).is_err(), "{json} was accepted");
        }
    }

    #[test]
    fn an_optional_integer_takes_null_absence_and_integral_floats() {
        let m = |json: &str| serde_json::from_str::<Body>(json).map(|b| b.m).map_err(|e| e.to_string());
        assert_eq!(m(r#"{"n": 1}"#), Ok(None));
        assert_eq!(m(r#"{"n": 1, "m": null}"#), Ok(None));
        assert_eq!(m(r#"{"n": 1, "m": 7.0}"#), Ok(Some(7)));
        assert!(m(r#"{"n": 1, "m": 7.5}"#).is_err());
    }
}
