//! The statistics the board shows for a queue: its jobs counted by status, and for the cron's
//! queue its schedule, next run and last finished run ([`CronQueue`]).
//!
//! Statistic titles are the keys the board's UI translates and looks counts up by (the task
//! lists take their length from `PENDING_JOBS`, `DONE_JOBS` …). The UI shows a queue's
//! statistics in one place only, the Stats column of its queues page, and there only those typed
//! `Percentage`, as their value and title verbatim (apalis-board-web 1.0.0,
//! `pages/queues/mod.rs`, `StatsCellRenderer`). The cron's statistics are text, typed
//! `Percentage` so that the page shows them.

use std::str::FromStr;

use anyhow::Context;
use apalis_core::backend::{StatType, Statistic};
use chrono::{DateTime, Utc};
use shared::db::{
    self,
    board::{FinishedCronRun, JobCounts},
};
use sqlx::PgPool;

/// How long a failed run's error may be on the queues page, whose rows do not wrap.
const ERROR_CHARS: usize = 80;

/// A queue's jobs counted by status, their success rate, and when the latest and the oldest
/// pending job were published, when there are such jobs.
pub fn job_stats(counts: &JobCounts) -> Vec<Statistic> {
    let finished = counts.done + counts.failed + counts.killed;
    #[expect(clippy::cast_precision_loss, reason = "a percentage for display")]
    let success = if finished == 0 { 0.0 } else { counts.done as f64 * 100.0 / finished as f64 };
    let number =
        |title: &str, value: i64, priority: u64| statistic(title, StatType::Number, value.to_string(), priority);
    let mut stats = vec![
        number("TOTAL_JOBS", counts.total, 0),
        number("PENDING_JOBS", counts.pending, 1),
        number("RUNNING_JOBS", counts.running, 2),
        number("DONE_JOBS", counts.done, 3),
        number("FAILED_JOBS", counts.failed, 4),
        number("KILLED_JOBS", counts.killed, 5),
        statistic("SUCCESS_RATE", StatType::Percentage, format!("{success:.1}"), 6),
    ];
    for (title, at, priority) in
        [("MOST_RECENT_JOB", counts.most_recent, 7), ("OLDEST_PENDING_JOB", counts.oldest_pending, 8)]
    {
        if let Some(at) = at {
            stats.push(statistic(title, StatType::Timestamp, at.to_string(), priority));
        }
    }
    stats
}

/// The cron function's queue on the board, and what its statistics are made of.
#[derive(Debug)]
pub struct CronQueue {
    /// The board queue its runs are listed under.
    pub queue: String,
    /// The job name its runs are recorded under in `cron_runs`.
    job: &'static str,
    /// The schedule as configured (`EXPIRY_SCHEDULE`).
    expression: String,
    schedule: cron::Schedule,
}

impl CronQueue {
    /// The cron job `job`, listed as `queue`, running on `expression` (seconds field first).
    ///
    /// # Errors
    /// `expression` is not a cron schedule.
    pub fn new(queue: impl Into<String>, job: &'static str, expression: &str) -> anyhow::Result<Self> {
        let schedule =
            cron::Schedule::from_str(expression).with_context(|| format!("`{expression}` is not a cron schedule"))?;
        Ok(CronQueue { queue: queue.into(), job, expression: expression.to_owned(), schedule })
    }

    /// The cron's statistics now: read its last finished run.
    ///
    /// # Errors
    /// Database errors.
    pub async fn stats(&self, pool: &PgPool) -> sqlx::Result<Vec<Statistic>> {
        let last = db::board::last_finished_cron_run(pool, self.job).await?;
        Ok(self.stats_at(Utc::now(), last.as_ref()))
    }

    /// `SCHEDULE`, `NEXT_RUN` (the first tick after `now`), and once a run has finished,
    /// `LAST_RUN` (its outcome and end, and a failure's error) and `ORDERS_EXPIRED` (by it).
    fn stats_at(&self, now: DateTime<Utc>, last: Option<&FinishedCronRun>) -> Vec<Statistic> {
        let shown = |title: &str, value: String, priority: u64| statistic(title, StatType::Percentage, value, priority);
        let next = self.schedule.after(&now).next().map_or_else(|| "never".to_owned(), time);
        let mut stats = vec![shown("SCHEDULE", self.expression.clone(), 9), shown("NEXT_RUN", next, 10)];
        let Some(run) = last else {
            stats.push(shown("LAST_RUN", "none yet".into(), 11));
            return stats;
        };
        let mut outcome = run.outcome.clone();
        if let Some(at) = run.finished_at {
            outcome = format!("{outcome} at {}", time(at));
        }
        if let Some(error) = &run.error {
            let short: String = error.chars().take(ERROR_CHARS).collect();
            let ellipsis = if short.len() < error.len() { "…" } else { "" };
            outcome = format!("{outcome}: {short}{ellipsis}");
        }
        stats.push(shown("LAST_RUN", outcome, 11));
        stats.push(shown("ORDERS_EXPIRED", run.affected.unwrap_or_default().to_string(), 12));
        stats
    }
}

/// A time as the queues page shows it.
fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn statistic(title: &str, stat_type: StatType, value: String, priority: u64) -> Statistic {
    Statistic { title: title.to_owned(), stat_type, value, priority: Some(priority) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn values(stats: &[Statistic]) -> Vec<(&str, &str)> {
        stats.iter().map(|s| (s.title.as_str(), s.value.as_str())).collect()
    }

    #[test]
    fn a_cron_without_runs_shows_its_schedule_and_next_tick() {
        let cron = CronQueue::new("expire_orders", "expire_orders", "0 * * * * *").unwrap();

        let stats = cron.stats_at(at("2026-12-01T10:15:30Z"), None);

        assert_eq!(
            values(&stats),
            [("SCHEDULE", "0 * * * * *"), ("NEXT_RUN", "2026-12-01 10:16:00 UTC"), ("LAST_RUN", "none yet")]
        );
        assert!(stats.iter().all(|s| matches!(s.stat_type, StatType::Percentage)), "the queues page hides them");
    }

    #[test]
    fn a_cron_shows_its_last_runs_outcome_and_orders_expired() {
        let cron = CronQueue::new("expire_orders", "expire_orders", "*/10 * * * * *").unwrap();
        let run = FinishedCronRun {
            outcome: "Done".into(),
            scheduled_at: at("2026-12-01T10:15:20Z"),
            finished_at: Some(at("2026-12-01T10:15:21Z")),
            affected: Some(3),
            error: None,
        };

        let stats = cron.stats_at(at("2026-12-01T10:15:25Z"), Some(&run));

        assert_eq!(
            values(&stats)[1..],
            [
                ("NEXT_RUN", "2026-12-01 10:15:30 UTC"),
                ("LAST_RUN", "Done at 2026-12-01 10:15:21 UTC"),
                ("ORDERS_EXPIRED", "3")
            ]
        );
    }

    #[test]
    fn a_failed_runs_error_is_shortened_for_the_queues_page() {
        let cron = CronQueue::new("expire_orders", "expire_orders", "0 * * * * *").unwrap();
        let run = FinishedCronRun {
            outcome: "Failed".into(),
            scheduled_at: at("2026-12-01T10:15:00Z"),
            finished_at: None,
            affected: Some(0),
            error: Some("x".repeat(200)),
        };

        let stats = cron.stats_at(at("2026-12-01T10:15:25Z"), Some(&run));

        let last = &stats.iter().find(|s| s.title == "LAST_RUN").unwrap().value;
        assert_eq!(*last, format!("Failed: {}…", "x".repeat(ERROR_CHARS)));
    }

    #[test]
    fn a_queues_counts_are_numbers_and_its_success_rate_a_percentage() {
        let counts = JobCounts {
            total: 4,
            pending: 0,
            running: 0,
            done: 3,
            failed: 0,
            killed: 1,
            most_recent: Some(1_796_160_000),
            oldest_pending: None,
        };

        let stats = job_stats(&counts);

        assert_eq!(stats.iter().find(|s| s.title == "SUCCESS_RATE").unwrap().value, "75.0");
        assert_eq!(stats.iter().find(|s| s.title == "MOST_RECENT_JOB").unwrap().value, "1796160000");
        assert!(stats.iter().all(|s| s.title != "OLDEST_PENDING_JOB"), "no pending job, no time");
    }
}
