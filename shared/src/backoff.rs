//! The one backoff schedule of every reconnect and retry loop (broker, database, journal).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays between reconnection attempts: from 100 ms doubling to 10 s, with jitter so that
/// many processes do not reconnect in lockstep, and without end (a retry loop stops on
/// shutdown, not on a count). Rebuild it after a success to start small again.
pub fn reconnect_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_and_stay_capped() {
        let delays: Vec<_> = reconnect_backoff().take(20).collect();
        assert_eq!(delays.len(), 20, "the backoff never runs out");
        assert!(delays[0] < Duration::from_millis(250));
        // With jitter a delay is at most twice its nominal value.
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(20)));
        assert!(delays[15] >= Duration::from_secs(10));
    }
}
