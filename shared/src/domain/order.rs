//! Orders and their state machine (DESIGN.md section 3):
//! `Pending → Processing → Completed`, `Processing → Expired`. Nothing else.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{
    Decode, Encode, Postgres, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
};

use super::Money;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum OrderStatus {
    /// Created, its `OrderCreated` event not yet handled.
    Pending,
    /// Payment under way, or pending after a declined payment.
    Processing,
    /// Paid. Final.
    Completed,
    /// Processing for longer than the TTL. Final.
    Expired,
}

impl OrderStatus {
    /// Every status, in life order.
    pub const ALL: [OrderStatus; 4] =
        [OrderStatus::Pending, OrderStatus::Processing, OrderStatus::Completed, OrderStatus::Expired];

    /// The status as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "Pending",
            OrderStatus::Processing => "Processing",
            OrderStatus::Completed => "Completed",
            OrderStatus::Expired => "Expired",
        }
    }

    /// Whether the state machine allows moving from `self` to `next`.
    pub fn can_become(self, next: OrderStatus) -> bool {
        matches!(
            (self, next),
            (OrderStatus::Pending, OrderStatus::Processing)
                | (OrderStatus::Processing, OrderStatus::Completed | OrderStatus::Expired)
        )
    }

    /// Whether no transition leaves this status.
    pub fn is_final(self) -> bool {
        OrderStatus::ALL.iter().all(|next| !self.can_become(*next))
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no order status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an order status (Pending, Processing, Completed, Expired)")]
pub struct UnknownStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

// Stored as text with a check constraint (readable in psql, no enum-type migrations).
impl Type<Postgres> for OrderStatus {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for OrderStatus {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<'_, Postgres>>::encode_by_ref(&self.as_str(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for OrderStatus {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Postgres>>::decode(value)?;
        Ok(text.parse()?)
    }
}

/// An order as stored and as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Database id.
    pub id: i64,
    /// Who ordered.
    pub user_id: i64,
    /// What was ordered.
    pub product_id: i64,
    /// How many.
    pub quantity: i32,
    /// Unit price.
    pub price: Money,
    /// `price × quantity`.
    pub total: Money,
    /// Where the order is in its life.
    pub status: OrderStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// A field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The JSON field at fault (camelCase).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        ValidationError { field, message: message.into() }
    }
}

/// A validated order to create. The only way to get one is [`NewOrder::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    user_id: i64,
    product_id: i64,
    quantity: i32,
    price: Money,
    total: Money,
}

impl NewOrder {
    /// Largest quantity one order may carry: anything above is a typo or an attack.
    pub const MAX_QUANTITY: i64 = 10_000;

    /// Largest unit price one order may carry.
    pub const MAX_PRICE: Decimal = Decimal::from_parts(100_000_000, 0, 0, false, 2);

    /// Validates the fields of a create request. `status`, if given, must be `Pending`:
    /// orders always start there.
    ///
    /// # Errors
    /// The first field that is out of range.
    pub fn parse(
        user_id: i64,
        product_id: i64,
        quantity: i64,
        price: Money,
        status: Option<&str>,
    ) -> Result<Self, ValidationError> {
        if user_id <= 0 {
            return Err(ValidationError::new("userId", "must be a positive id"));
        }
        if product_id <= 0 {
            return Err(ValidationError::new("productId", "must be a positive id"));
        }
        if !(1..=Self::MAX_QUANTITY).contains(&quantity) {
            return Err(ValidationError::new("quantity", format!("must be between 1 and {}", Self::MAX_QUANTITY)));
        }
        if price.amount() <= Decimal::ZERO {
            return Err(ValidationError::new("price", "must be greater than 0"));
        }
        if price.amount() > Self::MAX_PRICE {
            return Err(ValidationError::new("price", format!("must be at most {}", Self::MAX_PRICE)));
        }
        if let Some(status) = status
            && status != OrderStatus::Pending.as_str()
        {
            return Err(ValidationError::new(
                "status",
                format!("must be Pending (orders always start Pending), not `{status}`"),
            ));
        }
        let quantity = i32::try_from(quantity).expect("quantity is bounded by MAX_QUANTITY");
        let total =
            price.times(quantity).ok_or_else(|| ValidationError::new("price", "price × quantity is too large"))?;
        Ok(NewOrder { user_id, product_id, quantity, price, total })
    }

    /// Who orders.
    pub fn user_id(&self) -> i64 {
        self.user_id
    }

    /// What is ordered.
    pub fn product_id(&self) -> i64 {
        self.product_id
    }

    /// How many.
    pub fn quantity(&self) -> i32 {
        self.quantity
    }

    /// Unit price.
    pub fn price(&self) -> Money {
        self.price
    }

    /// `price × quantity`.
    pub fn total(&self) -> Money {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> Money {
        s.parse().unwrap()
    }

    #[test]
    fn a_status_is_read_from_text_columns_only() {
        // What sqlx checks before it decodes a column into an OrderStatus at run time.
        assert!(<OrderStatus as Type<Postgres>>::compatible(&<String as Type<Postgres>>::type_info()));
        assert!(!<OrderStatus as Type<Postgres>>::compatible(&<i32 as Type<Postgres>>::type_info()));
    }

    #[test]
    fn only_the_designed_transitions_are_allowed() {
        use OrderStatus::*;
        let allowed: Vec<_> = OrderStatus::ALL
            .into_iter()
            .flat_map(|from| OrderStatus::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.can_become(*to))
            .collect();
        assert_eq!(allowed, vec![(Pending, Processing), (Processing, Completed), (Processing, Expired)]);
        assert!(Completed.is_final() && Expired.is_final());
        assert!(!Pending.is_final() && !Processing.is_final());
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
        }
        assert!("pending".parse::<OrderStatus>().is_err());
    }

    #[test]
    fn a_valid_order_has_the_exact_total() {
        let order = NewOrder::parse(1, 2, 3, money("19.99"), Some("Pending")).unwrap();
        assert_eq!(order.total().to_string(), "59.97");
    }

    #[test]
    fn a_price_of_exactly_the_maximum_is_accepted_and_one_cent_more_is_refused() {
        assert_eq!(NewOrder::MAX_PRICE.to_string(), "1000000.00");
        let at_most = NewOrder::parse(1, 1, 1, money("1000000.00"), None).unwrap();
        assert_eq!(at_most.price().to_string(), "1000000.00");
        let above = NewOrder::parse(1, 1, 1, money("1000000.01"), None).unwrap_err();
        assert_eq!(above, ValidationError::new("price", "must be at most 1000000.00"));
    }

    #[test]
    fn each_out_of_range_field_is_named() {
        let cases = [
            (NewOrder::parse(0, 1, 1, money("1"), None), "userId"),
            (NewOrder::parse(1, -1, 1, money("1"), None), "productId"),
            (NewOrder::parse(1, 1, 0, money("1"), None), "quantity"),
            (NewOrder::parse(1, 1, -5, money("1"), None), "quantity"),
            (NewOrder::parse(1, 1, 10_001, money("1"), None), "quantity"),
            (NewOrder::parse(1, 1, 1, money("0"), None), "price"),
            (NewOrder::parse(1, 1, 1, money("-1"), None), "price"),
            (NewOrder::parse(1, 1, 1, money("1000000.01"), None), "price"),
            (NewOrder::parse(1, 1, 1, money("1"), Some("Completed")), "status"),
        ];
        for (result, field) in cases {
            assert_eq!(result.unwrap_err().field, field);
        }
    }
}
