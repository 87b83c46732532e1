//! Every function, registered in exactly one place: the queue functions on apalis workers over
//! RabbitMQ (retries with backoff, panics caught, traced), the expiry on an apalis-cron worker,
//! all on one apalis `Monitor`.
//!
//! Jobs must be idempotent: any message may arrive twice (at-least-once delivery), and each
//! function is written so that running it twice has the effect of running it once.

use std::{
    str::FromStr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context;
use apalis::prelude::{Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_cron::CronScheduler;
use shared::{
    Config,
    events::{EventType, OrderCompleted, OrderCreated, OrderExpired},
    journal::{Journal, JournalLayer, LiveWorker},
    messaging::{
        BrokerHealth, DeadLetterReports, EventBackend, RestartBackoff, ShutdownGuardLayer, Topology, amqp_config,
        retry_policy,
    },
    metrics::Metrics,
};

use crate::{
    deps::FunctionDeps, expire_orders::expire_orders, on_order_completed::on_order_completed,
    on_order_created::on_order_created, on_order_expired::on_order_expired,
};

/// The functions a worker process can run (`orderflow worker --functions …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Function {
    /// Pays for new orders (queue `order-created-event`).
    #[value(name = "on_order_created")]
    OnOrderCreated,
    /// E-mails and records completed orders (queue `order-completed-event`).
    #[value(name = "on_order_completed")]
    OnOrderCompleted,
    /// Records expired orders (queue `order-expired-event`).
    #[value(name = "on_order_expired")]
    OnOrderExpired,
    /// Expires stale orders on `EXPIRY_SCHEDULE` (cron).
    #[value(name = "expire_orders")]
    ExpireOrders,
}

impl Function {
    /// Every function.
    pub const ALL: [Function; 4] =
        [Function::OnOrderCreated, Function::OnOrderCompleted, Function::OnOrderExpired, Function::ExpireOrders];

    /// The function's name, as in `--functions`, logs and the board.
    pub fn name(self) -> &'static str {
        match self {
            Function::OnOrderCreated => "on_order_created",
            Function::OnOrderCompleted => "on_order_completed",
            Function::OnOrderExpired => "on_order_expired",
            Function::ExpireOrders => "expire_orders",
        }
    }

    /// The event whose queue triggers the function; `None` for the cron function.
    pub fn trigger(self) -> Option<EventType> {
        match self {
            Function::OnOrderCreated => Some(EventType::OrderCreated),
            Function::OnOrderCompleted => Some(EventType::OrderCompleted),
            Function::OnOrderExpired => Some(EventType::OrderExpired),
            Function::ExpireOrders => None,
        }
    }

    /// The function whose queue `event` travels on: the one it triggers.
    ///
    /// # Panics
    /// Never: every event triggers a function (the tests check it).
    pub fn consuming(event: EventType) -> Function {
        Function::ALL.into_iter().find(|f| f.trigger() == Some(event)).expect("every event triggers a function")
    }
}

/// How the workers are set up.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// Queue names and declarations.
    pub topology: Topology,
    /// Messages a queue worker holds at once (its concurrency).
    pub prefetch: u16,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First retry backoff.
    pub retry_base: Duration,
    /// The expiry cron schedule.
    pub expiry_schedule: String,
    /// How long in-flight jobs may take after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// Names the workers of this process (`<function>@<process>`).
    pub process_name: String,
    /// Where every job's attempts are recorded.
    pub journal: Journal,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
}

/// The middleware every worker runs, outermost first, as the board's Workers page lists it.
const LAYERS: &str = "retry, shutdown guard, journal, catch panic, tracing";

impl WorkerSettings {
    /// The settings `config` describes, for workers over `topology` that journal to `journal`
    /// and may drain for `shutdown_timeout`.
    pub fn from_config(
        config: &Config,
        topology: Topology,
        shutdown_timeout: Duration,
        journal: Journal,
        metrics: Arc<Metrics>,
    ) -> Self {
        WorkerSettings {
            amqp_url: config.amqp_url.clone(),
            topology,
            prefetch: config.worker_prefetch,
            max_retries: config.max_retries,
            retry_base: Duration::from_millis(config.retry_base_ms),
            expiry_schedule: config.expiry_schedule.clone(),
            shutdown_timeout,
            process_name: process_name(),
            journal,
            metrics,
        }
    }

    fn journal_layer(&self, function: Function, queue: &str) -> JournalLayer {
        JournalLayer::new(self.journal.clone(), self.metrics.clone(), function.name(), queue, self.max_retries)
    }

    fn dead_letter_reports(&self, function: Function) -> DeadLetterReports {
        DeadLetterReports {
            journal: self.journal.clone(),
            metrics: self.metrics.clone(),
            function: function.name().into(),
        }
    }
}

/// The queue the board shows a function's jobs under: its event queue, or the function's own
/// name for the cron.
pub fn board_queue(function: Function, topology: &Topology) -> String {
    function.trigger().map_or_else(|| function.name().to_owned(), |event| topology.queue(event))
}

/// Registers a queue function: an [`EventBackend`] on its queue (restarted with backoff when
/// it fails), the retry policy, the shutdown guard, panic catching and tracing.
macro_rules! queue_worker {
    ($monitor:expr, $function:expr, $event:ty, $handler:path, $deps:expr, $settings:expr, $health:expr, $live:expr) => {{
        let function: Function = $function;
        let event = function.trigger().expect("a queue function has a trigger");
        let consuming = Arc::new(AtomicBool::new(false));
        $health.register(format!("{} consumer", function.name()), {
            let consuming = consuming.clone();
            move || consuming.load(std::sync::atomic::Ordering::Relaxed)
        });
        let (deps, settings) = ($deps.clone(), $settings.clone());
        let name = worker_name(function, &settings);
        let queue = settings.topology.queue(event);
        $live.push(live_worker(function, &name, &queue, consuming.clone()));
        let restarts = RestartBackoff::default();
        $monitor.register(move |restart| {
            let delay = restarts.delay(restart);
            if !delay.is_zero() {
                tracing::info!(worker = %name, delay_ms = delay.as_millis(), "reconnecting after a backoff");
            }
            let config = amqp_config(&settings.topology, event, settings.prefetch);
            let backend = EventBackend::<$event>::new(&settings.amqp_url, config, delay, consuming.clone())
                .expect("AMQP_URL was validated at start-up")
                .reporting_to(settings.dead_letter_reports(function));
            WorkerBuilder::new(name.as_str())
                .backend(backend)
                .data(deps.clone())
                .retry(retry_policy(settings.max_retries, settings.retry_base, deps.shutdown.clone()))
                .layer(ShutdownGuardLayer::new(deps.shutdown.clone()))
                .layer(settings.journal_layer(function, &queue))
                .catch_panic()
                .enable_tracing()
                .build($handler)
        })
    }};
}

/// One apalis `Monitor` running `functions`, and the workers it runs (for heartbeats). Each
/// queue worker's consumer reports to `health`.
///
/// # Errors
/// The expiry schedule does not parse.
pub fn monitor(
    functions: &[Function],
    deps: &FunctionDeps,
    settings: &WorkerSettings,
    health: &BrokerHealth,
) -> anyhow::Result<(Monitor, Vec<LiveWorker>)> {
    let mut live = Vec::new();
    let mut monitor = Monitor::new()
        .should_restart(|worker, error| {
            // Works around apalis-amqp 1.0 (DESIGN.md section 9): after a broker restart an AMQP
            // worker ends with an error and its backend never reconnects, and apalis's
            // `Monitor::should_restart` restarts a worker at once, which with the broker still
            // down is a hot loop. So every restart builds a fresh backend (a new connection),
            // and that backend waits out `RestartBackoff` (capped, jittered) before connecting.
            tracing::warn!(worker = worker.name(), error = ?error, "worker stopped; restarting");
            true
        })
        .shutdown_timeout(settings.shutdown_timeout);
    for function in functions {
        monitor = match function {
            Function::OnOrderCreated => {
                queue_worker!(monitor, *function, OrderCreated, on_order_created, deps, settings, health, live)
            }
            Function::OnOrderCompleted => {
                queue_worker!(monitor, *function, OrderCompleted, on_order_completed, deps, settings, health, live)
            }
            Function::OnOrderExpired => {
                queue_worker!(monitor, *function, OrderExpired, on_order_expired, deps, settings, health, live)
            }
            Function::ExpireOrders => {
                let schedule = cron::Schedule::from_str(&settings.expiry_schedule)
                    .with_context(|| format!("Invalid EXPIRY_SCHEDULE `{}`", settings.expiry_schedule))?;
                let (deps, name) = (deps.clone(), worker_name(*function, settings));
                let queue = board_queue(*function, &settings.topology);
                live.push(live_worker(*function, &name, &queue, Arc::new(AtomicBool::new(true))));
                let settings = settings.clone();
                let function = *function;
                monitor.register(move |_restarts| {
                    WorkerBuilder::new(name.as_str())
                        .backend(CronScheduler::new(schedule.clone()))
                        .data(deps.clone())
                        .retry(retry_policy(settings.max_retries, settings.retry_base, deps.shutdown.clone()))
                        .layer(ShutdownGuardLayer::new(deps.shutdown.clone()))
                        .layer(settings.journal_layer(function, &queue))
                        .catch_panic()
                        .enable_tracing()
                        .build(expire_orders)
                })
            }
        };
    }
    Ok((monitor, live))
}

/// A worker as the heartbeats report it; `up` tells whether it is consuming.
fn live_worker(function: Function, name: &str, queue: &str, up: Arc<AtomicBool>) -> LiveWorker {
    LiveWorker { name: name.into(), queue: queue.into(), function: function.name().into(), layers: LAYERS.into(), up }
}

fn worker_name(function: Function, settings: &WorkerSettings) -> String {
    format!("{}@{}", function.name(), settings.process_name)
}

/// `<host>-<pid>`: tells the workers of several processes apart in logs, the journal and cron runs.
fn process_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_triggers_exactly_one_function() {
        for event in EventType::ALL {
            let consumers: Vec<_> = Function::ALL.into_iter().filter(|f| f.trigger() == Some(event)).collect();
            assert_eq!(consumers, [Function::consuming(event)], "{event}");
        }
    }
}
