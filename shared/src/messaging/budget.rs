//! The memory budget of one worker process: `WORKER_MAX_IN_FLIGHT` jobs in flight across all
//! its queues, whatever the backlog.
//!
//! Each queue's [`super::EventBackend`] gives a decoded delivery a permit before it becomes a
//! job; the permit travels with the job (in its context data) and is released when the job's
//! context is dropped, after its ack or nack. A delivery without a permit waits in its backend
//! (one per queue; the queue takes nothing else meanwhile, the rest stays unacked in the
//! channel's prefetch window); if the worker closes first it is nacked back to the queue, and
//! if the process dies the broker requeues it with the rest: nothing is lost.
//!
//! Fairness: a backend waits for one permit at a time, and tokio's semaphore hands permits out
//! in the order they were asked for, so when every permit is taken the queues that wait get the
//! freed ones in turn: a backlog on one queue cannot starve the others. An idle queue holds no
//! permit (it asks only once it has a delivery), so a budget smaller than the number of queues
//! still works.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

/// The process-wide cap on jobs in flight (see the module docs). Cloning shares it.
#[derive(Debug, Clone)]
pub struct JobBudget {
    semaphore: Arc<Semaphore>,
    limit: u32,
}

impl JobBudget {
    /// A budget of `limit` jobs in flight (at least one).
    pub fn new(limit: u32) -> Self {
        let limit = limit.max(1);
        JobBudget { semaphore: Arc::new(Semaphore::new(limit as usize)), limit }
    }

    /// The most jobs in flight at once.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Permits taken now: the jobs in flight.
    pub fn taken(&self) -> usize {
        (self.limit as usize).saturating_sub(self.semaphore.available_permits())
    }

    /// A queue's prefetch: `per_queue`, but never more than the budget (a larger window would
    /// only buffer deliveries that cannot become jobs).
    pub fn prefetch(&self, per_queue: u16) -> u16 {
        per_queue.min(u16::try_from(self.limit).unwrap_or(u16::MAX))
    }

    pub(crate) fn poller(&self) -> PollSemaphore {
        PollSemaphore::new(self.semaphore.clone())
    }
}

/// A job's share of the [`JobBudget`], held in its context data until the job is acked or
/// nacked (clones share it: the retry layer clones the task).
#[derive(Debug, Clone)]
pub struct JobPermit(
    #[expect(dead_code, reason = "held for its Drop, which frees the permit")] Arc<OwnedSemaphorePermit>,
);

impl JobPermit {
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> Self {
        JobPermit(Arc::new(permit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_never_prefetches_more_than_the_budget() {
        assert_eq!(JobBudget::new(500).prefetch(10_000), 500);
        assert_eq!(JobBudget::new(100_000).prefetch(10_000), 10_000);
        assert_eq!(JobBudget::new(0).limit(), 1);
    }

    #[tokio::test]
    async fn a_permit_is_freed_when_the_last_clone_of_the_job_drops() {
        let budget = JobBudget::new(2);
        let mut poller = budget.poller();
        let permit = std::future::poll_fn(|cx| poller.poll_acquire(cx)).await.unwrap();
        let job = JobPermit::new(permit);
        let retried = job.clone();
        assert_eq!(budget.taken(), 1);
        drop(job);
        assert_eq!(budget.taken(), 1);
        drop(retried);
        assert_eq!(budget.taken(), 0);
    }
}
