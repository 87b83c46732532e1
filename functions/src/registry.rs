//! Every function, registered in exactly one place: the queue functions on apalis workers over
//! RabbitMQ (retries with backoff, panics caught, traced), the expiry on an apalis-cron worker,
//! all on one apalis `Monitor`. The functions' names are spelled here and nowhere else.
//!
//! Jobs must be idempotent: any message may arrive twice (at-least-once delivery), and each
//! function is written so that running it twice has the effect of running it once.

use std::{
    str::FromStr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context;
use apalis::{
    layers::{
        catch_panic::CatchPanicLayer,
        retry::{BackoffRetryPolicy, HasherRng, RetryLayer, backoff::ExponentialBackoff},
        tracing::TraceLayer,
    },
    prelude::{AbortError, Backend, Data, Monitor, WorkerBuilder, WorkerBuilderExt},
};
use apalis_cron::{CronScheduler, Tick};
use clap::builder::PossibleValue;
use shared::{
    Config,
    db::board::Unstarted,
    events::{Event, EventType, OrderCompleted, OrderCreated, OrderExpired},
    journal::{Journal, JournalLayer, LiveWorker},
    messaging::{
        BrokerHealth, DeadLetterReports, EventBackend, InterruptibleRetry, JobBudget, RestartBackoff,
        ShutdownGuardLayer, Topology, amqp_config, retry_policy,
    },
    metrics::Metrics,
};
use tower::layer::util::{Identity, Stack};

use crate::{
    deps::FunctionDeps, expire_orders::expire_orders, on_order_completed::on_order_completed,
    on_order_created::on_order_created, on_order_expired::on_order_expired,
};

/// The functions a worker process can run (`orderflow worker --functions …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// Pays for new orders.
    OnOrderCreated,
    /// E-mails and records completed orders.
    OnOrderCompleted,
    /// Records expired orders.
    OnOrderExpired,
    /// Expires stale orders (cron).
    ExpireOrders,
}

impl Function {
    /// Every function.
    pub const ALL: [Function; 4] =
        [Function::OnOrderCreated, Function::OnOrderCompleted, Function::OnOrderExpired, Function::ExpireOrders];

    /// The function's name, as in `--functions`, logs, metrics, the journal, cron runs and the
    /// board: the one place it is spelled.
    pub const fn name(self) -> &'static str {
        match self {
            Function::OnOrderCreated => "on_order_created",
            Function::OnOrderCompleted => "on_order_completed",
            Function::OnOrderExpired => "on_order_expired",
            Function::ExpireOrders => "expire_orders",
        }
    }

    /// What the function does and what triggers it, as `--help` lists it.
    fn about(self) -> &'static str {
        match self {
            Function::OnOrderCreated => "Pays for new orders (queue `order-created-event`)",
            Function::OnOrderCompleted => "E-mails and records completed orders (queue `order-completed-event`)",
            Function::OnOrderExpired => "Records expired orders (queue `order-expired-event`)",
            Function::ExpireOrders => "Expires stale orders on `EXPIRY_SCHEDULE` (cron)",
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

/// `--functions` takes the names of [`Function::name`] (written by hand rather than derived, so
/// that the names are spelled once).
impl clap::ValueEnum for Function {
    fn value_variants<'a>() -> &'a [Self] {
        &Function::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()).help(self.about()))
    }
}

/// How the workers are set up.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// Queue names and declarations.
    pub topology: Topology,
    /// Messages a queue worker holds at once (its concurrency), never more than the budget.
    pub prefetch: u16,
    /// The jobs in flight across all of the process's queues (its memory budget), shared by
    /// every queue worker and their restarts.
    pub budget: JobBudget,
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

/// The stack [`LAYERS`] names, inside `Base`, as a type: apalis's `Monitor::register` needs the
/// concrete worker type, so the stack is named once here. A queue worker's jobs get the deps
/// from their backend ([`EventBackend::carrying`], which does not copy the job's context); the
/// cron's from a `Data` layer.
type Layers<Base = Identity> = Stack<
    TraceLayer,
    Stack<
        CatchPanicLayer<fn(&Box<dyn std::any::Any + Send>) -> AbortError, AbortError>,
        Stack<JournalLayer, Stack<ShutdownGuardLayer, Stack<RetryLayer<Retry>, Base>>>,
    >,
>;

/// The cron worker's stack: [`Layers`] with the deps as data outside it.
type CronLayers = Layers<Stack<Data<FunctionDeps>, Identity>>;

/// The retry policy of [`retry_policy`].
type Retry = InterruptibleRetry<BackoffRetryPolicy<ExponentialBackoff<HasherRng>>>;

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
        let budget = JobBudget::new(config.worker_max_in_flight);
        WorkerSettings {
            amqp_url: config.amqp_url.clone(),
            topology,
            prefetch: budget.prefetch(config.worker_prefetch),
            budget,
            max_retries: config.max_retries,
            retry_base: Duration::from_millis(config.retry_base_ms),
            expiry_schedule: config.expiry_schedule.clone(),
            shutdown_timeout,
            process_name: process_name(),
            journal,
            metrics,
        }
    }

    /// A queue function's jobs wait for their turn at the database (`FunctionDeps::db`) before
    /// they do anything, and are journaled as started when they get it; the cron's runs start
    /// at once.
    fn journal_layer(&self, function: Function, queue: &str) -> JournalLayer {
        let layer =
            JournalLayer::new(self.journal.clone(), self.metrics.clone(), function.name(), queue, self.max_retries);
        if function.trigger().is_some() { layer.reporting_start_on_admission() } else { layer }
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

/// How the board and the retention sweep name a published event no worker has started yet: a
/// job of the function it triggers, on its queue, which may take `max_attempts`.
pub fn unstarted(topology: &Topology, max_attempts: i32) -> Unstarted {
    let mut unstarted = Unstarted { max_attempts, ..Unstarted::default() };
    for function in Function::ALL {
        if let Some(event) = function.trigger() {
            unstarted.event_types.push(event.as_str().to_owned());
            unstarted.queues.push(board_queue(function, topology));
            unstarted.functions.push(function.name().to_owned());
        }
    }
    unstarted
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
    // Each arm gives its handler to the worker: with the handler's type (and so the worker's)
    // different in each, a generic `register` would need all of `Monitor::register`'s bounds.
    for &function in functions {
        let plan = WorkerPlan::new(function, deps, settings);
        monitor = match function {
            Function::OnOrderCreated => {
                let worker = queue_worker::<OrderCreated>(plan, health, &mut live);
                monitor.register(move |restart| worker(restart).build(on_order_created))
            }
            Function::OnOrderCompleted => {
                let worker = queue_worker::<OrderCompleted>(plan, health, &mut live);
                monitor.register(move |restart| worker(restart).build(on_order_completed))
            }
            Function::OnOrderExpired => {
                let worker = queue_worker::<OrderExpired>(plan, health, &mut live);
                monitor.register(move |restart| worker(restart).build(on_order_expired))
            }
            Function::ExpireOrders => {
                let worker = cron_worker(plan, &mut live)?;
                monitor.register(move |restart| worker(restart).build(expire_orders))
            }
        };
    }
    Ok((monitor, live))
}

/// What one function's worker is built from, at its start and every restart.
#[derive(Clone)]
struct WorkerPlan {
    function: Function,
    /// `<function>@<process>`.
    name: String,
    /// The queue its jobs are journaled and shown under.
    queue: String,
    deps: FunctionDeps,
    settings: WorkerSettings,
}

impl WorkerPlan {
    fn new(function: Function, deps: &FunctionDeps, settings: &WorkerSettings) -> Self {
        WorkerPlan {
            function,
            name: format!("{}@{}", function.name(), settings.process_name),
            queue: board_queue(function, &settings.topology),
            deps: deps.clone(),
            settings: settings.clone(),
        }
    }

    /// The worker as the heartbeats report it; `up` tells whether it is consuming.
    fn live(&self, up: Arc<AtomicBool>) -> LiveWorker {
        LiveWorker {
            name: self.name.clone(),
            queue: self.queue.clone(),
            function: self.function.name().into(),
            layers: LAYERS.into(),
            up,
        }
    }

    /// `worker` (named, on its backend, its jobs given the deps) with the middleware of
    /// [`LAYERS`]: the one place it is applied, for queue and cron workers alike.
    fn layered<Args, B: Backend, Base>(
        &self,
        worker: WorkerBuilder<Args, B, Base>,
    ) -> WorkerBuilder<Args, B, Layers<Base>> {
        let (deps, settings) = (&self.deps, &self.settings);
        worker
            .retry(retry_policy(settings.max_retries, settings.retry_base, deps.shutdown.clone()))
            .layer(ShutdownGuardLayer::new(deps.shutdown.clone()))
            .layer(settings.journal_layer(self.function, &self.queue))
            .catch_panic()
            .enable_tracing()
    }
}

/// A queue function's worker, for each (re)start: an [`EventBackend`] on its event's queue,
/// made afresh and connecting after the restart backoff, whose consumer reports to `health`.
fn queue_worker<E: Event>(
    plan: WorkerPlan,
    health: &BrokerHealth,
    live: &mut Vec<LiveWorker>,
) -> impl Fn(usize) -> WorkerBuilder<E, EventBackend<E>, Layers> + Send + Sync + use<E> {
    debug_assert_eq!(plan.function.trigger(), Some(E::TYPE), "{} is triggered by another event", plan.function.name());
    let consuming = Arc::new(AtomicBool::new(false));
    health.register(format!("{} consumer", plan.function.name()), {
        let consuming = consuming.clone();
        move || consuming.load(std::sync::atomic::Ordering::Relaxed)
    });
    live.push(plan.live(consuming.clone()));
    let restarts = RestartBackoff::default();
    move |restart| {
        let delay = restarts.delay(restart);
        if !delay.is_zero() {
            tracing::info!(worker = %plan.name, delay_ms = delay.as_millis(), "reconnecting after a backoff");
        }
        let settings = &plan.settings;
        let config = amqp_config(&settings.topology, E::TYPE, settings.prefetch);
        let backend = EventBackend::<E>::new(&settings.amqp_url, config, delay, consuming.clone())
            .expect("AMQP_URL was validated at start-up")
            .reporting_to(settings.dead_letter_reports(plan.function))
            .within(&settings.budget)
            .carrying(plan.deps.clone());
        plan.layered(WorkerBuilder::new(plan.name.as_str()).backend(backend))
    }
}

/// The cron function's worker, on `EXPIRY_SCHEDULE`.
///
/// # Errors
/// The schedule does not parse.
fn cron_worker(
    plan: WorkerPlan,
    live: &mut Vec<LiveWorker>,
) -> anyhow::Result<
    impl Fn(usize) -> WorkerBuilder<Tick, CronScheduler<cron::Schedule>, CronLayers> + Send + Sync + use<>,
> {
    let expression = &plan.settings.expiry_schedule;
    let schedule =
        cron::Schedule::from_str(expression).with_context(|| format!("Invalid EXPIRY_SCHEDULE `{expression}`"))?;
    live.push(plan.live(Arc::new(AtomicBool::new(true))));
    Ok(move |_restart| {
        plan.layered(
            WorkerBuilder::new(plan.name.as_str())
                .backend(CronScheduler::new(schedule.clone()))
                .data(plan.deps.clone()),
        )
    })
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
