use std::sync::{Arc, Mutex};

type Probe = Arc<dyn Fn() -> bool + Send + Sync>;

/// Whether every broker connection of this process is up, for `/health/ready`. Each component
/// that holds a connection (the publisher, each worker) registers a probe.
#[derive(Clone, Default)]
pub struct BrokerHealth(Arc<Mutex<Vec<(String, Probe)>>>);

impl std::fmt::Debug for BrokerHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.down()).finish()
    }
}

impl BrokerHealth {
    /// Adds a named probe.
    pub fn register(&self, name: impl Into<String>, probe: impl Fn() -> bool + Send + Sync + 'static) {
        self.0.lock().expect("broker health lock poisoned").push((name.into(), Arc::new(probe)));
    }

    /// The names of the connections that are down.
    pub fn down(&self) -> Vec<String> {
        let probes = self.0.lock().expect("broker health lock poisoned").clone();
        probes.into_iter().filter(|(_, probe)| !probe()).map(|(name, _)| name).collect()
    }

    /// True when at least one connection is registered and all are up.
    pub fn is_up(&self) -> bool {
        let probes = self.0.lock().expect("broker health lock poisoned").clone();
        !probes.is_empty() && probes.iter().all(|(_, probe)| probe())
    }
}
