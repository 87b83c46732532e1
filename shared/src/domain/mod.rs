//! The order domain: statuses and their allowed transitions, validated new orders, exact money.

mod money;
mod order;

pub use money::{Money, MoneyError};
pub use order::{NewOrder, Order, OrderStatus, UnknownStatus, ValidationError};
