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

type Script = Box<dyn Fn(Call) -> Result<PaymentOutcome, PaymentError> + Send + Sync>;

/// One charge request, as the script sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The order charged.
    pub order_id: i64,
    /// How many charges came before this one, for any order.
    pub n: usize,
    /// How many charges came before this one for the same order.
    pub nth_for_order: usize,
}

/// Answers each call with `script(call)` and records every call.
pub struct ScriptedGateway {
    script: Script,
    calls: Mutex<Vec<(i64, Instant)>>,
}

impl ScriptedGateway {
    /// A gateway answering with `script`.
    pub fn new(script: impl Fn(Call) -> Result<PaymentOutcome, PaymentError> + Send + Sync + 'static) -> Arc<Self> {
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
        let call = {
            let mut calls = self.calls.lock().unwrap();
            let nth_for_order = calls.iter().filter(|(id, _)| *id == order_id).count();
            calls.push((order_id, Instant::now()));
            Call { order_id, n: calls.len() - 1, nth_for_order }
        };
        let answer = (self.script)(call);
        Box::pin(async move { answer })
    }
}
