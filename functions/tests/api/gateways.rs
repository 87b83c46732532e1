//! Payment gateways whose answers the test decides, recording when they were asked.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use futures::future::BoxFuture;
use shared::{
    domain::Money,
    payments::{PaymentError, PaymentGateway, PaymentOutcome},
};

type Script = Box<dyn Fn(usize) -> Result<PaymentOutcome, PaymentError> + Send + Sync>;

/// Answers call `n` (0-based) with `script(n)` and records every call.
pub struct ScriptedGateway {
    script: Script,
    calls: Mutex<Vec<(i64, Instant)>>,
}

impl ScriptedGateway {
    /// A gateway answering with `script`.
    pub fn new(script: impl Fn(usize) -> Result<PaymentOutcome, PaymentError> + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(ScriptedGateway { script: Box::new(script), calls: Mutex::new(Vec::new()) })
    }

    /// Approves everything.
    pub fn approving() -> Arc<Self> {
        Self::new(|_| Ok(PaymentOutcome::Approved))
    }

    /// How many charges were asked for.
    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// When each charge was asked for.
    pub fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().iter().map(|(_, at)| *at).collect()
    }
}

impl PaymentGateway for ScriptedGateway {
    fn charge(&self, order_id: i64, _total: Money) -> BoxFuture<'_, Result<PaymentOutcome, PaymentError>> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((order_id, Instant::now()));
            calls.len() - 1
        };
        let answer = (self.script)(n);
        Box::pin(async move { answer })
    }
}
