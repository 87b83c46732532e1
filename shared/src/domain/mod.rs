//! The order domain: statuses and their allowed transitions, validated new orders, exact money;
//! and what makes an acceptable login e-mail and password.

pub mod account;
mod money;
mod order;

pub use money::{Money, MoneyError};
pub use order::{NewOrder, Order, OrderStatus, UnknownStatus, ValidationError};
