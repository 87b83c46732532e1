//! The payment gateway behind a small trait, so tests decide the outcome.
//!
//! A gateway must be idempotent per order (as real ones are with an idempotency key): a retried
//! job may ask twice for the same order and must get the same answer, never a second charge.
//! The simulator approves with probability `PAYMENT_SUCCESS_RATE`; its draw for an order comes
//! from an RNG seeded with the simulator's seed and the order id, so the same order always gets
//! the same outcome, and the same seed repeats a whole run.

use std::hash::{BuildHasher, Hasher};

use futures::future::BoxFuture;
use rand::{RngExt, SeedableRng, rngs::StdRng};

use crate::domain::Money;

/// What the gateway said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// The money was taken.
    Approved,
    /// Not (yet) paid: the order stays Processing and expires if nothing changes.
    Declined,
}

/// The gateway could not be asked (timeout, outage); asking again later may work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment gateway unavailable: {0}")]
pub struct PaymentError(pub String);

/// Charges orders.
pub trait PaymentGateway: Send + Sync + 'static {
    /// Asks for `total` to be charged for `order_id`. Idempotent per order.
    fn charge(&self, order_id: i64, total: Money) -> BoxFuture<'_, Result<PaymentOutcome, PaymentError>>;
}

/// A gateway that approves a fraction of payments at random.
#[derive(Debug, Clone, Copy)]
pub struct PaymentSimulator {
    success_rate: f64,
    seed: u64,
}

impl PaymentSimulator {
    /// A simulator with a seed from the operating system.
    pub fn new(success_rate: f64) -> Self {
        Self::seeded(success_rate, std::collections::hash_map::RandomState::new().build_hasher().finish())
    }

    /// A simulator whose draws repeat for the same seed.
    pub fn seeded(success_rate: f64, seed: u64) -> Self {
        PaymentSimulator { success_rate: success_rate.clamp(0.0, 1.0), seed }
    }

    fn outcome(&self, order_id: i64) -> PaymentOutcome {
        let mut rng = StdRng::seed_from_u64(self.seed ^ (order_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if rng.random_bool(self.success_rate) { PaymentOutcome::Approved } else { PaymentOutcome::Declined }
    }
}

impl PaymentGateway for PaymentSimulator {
    fn charge(&self, order_id: i64, _total: Money) -> BoxFuture<'_, Result<PaymentOutcome, PaymentError>> {
        let outcome = self.outcome(order_id);
        Box::pin(async move { Ok(outcome) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn outcomes(gateway: &PaymentSimulator, orders: std::ops::Range<i64>) -> Vec<PaymentOutcome> {
        let mut out = Vec::new();
        for id in orders {
            out.push(gateway.charge(id, "1.00".parse().unwrap()).await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn the_same_seed_gives_the_same_outcomes() {
        let a = outcomes(&PaymentSimulator::seeded(0.5, 7), 0..50).await;
        let b = outcomes(&PaymentSimulator::seeded(0.5, 7), 0..50).await;
        assert_eq!(a, b);
        assert!(a.contains(&PaymentOutcome::Approved) && a.contains(&PaymentOutcome::Declined));
    }

    #[tokio::test]
    async fn asking_twice_for_one_order_gives_the_same_answer() {
        let gateway = PaymentSimulator::new(0.5);
        for id in 0..100 {
            assert_eq!(outcomes(&gateway, id..id + 1).await, outcomes(&gateway, id..id + 1).await);
        }
    }

    #[tokio::test]
    async fn rates_of_zero_and_one_are_certain() {
        assert!(outcomes(&PaymentSimulator::new(1.0), 0..100).await.iter().all(|o| *o == PaymentOutcome::Approved));
        assert!(outcomes(&PaymentSimulator::new(0.0), 0..100).await.iter().all(|o| *o == PaymentOutcome::Declined));
    }

    #[tokio::test]
    async fn half_the_payments_succeed_at_a_rate_of_one_half() {
        let approved = outcomes(&PaymentSimulator::seeded(0.5, 1), 0..2000)
            .await
            .into_iter()
            .filter(|o| *o == PaymentOutcome::Approved)
            .count();
        assert!((900..=1100).contains(&approved), "{approved} of 2000");
    }
}
