//! An LED that records every state it was set to, with the time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::{Led, LedState, Result};

/// Shared view of the states a [`SimLed`] went through.
#[derive(Debug, Clone, Default)]
pub struct LedProbe(Arc<Mutex<Vec<(Instant, LedState)>>>);

impl LedProbe {
    pub fn lock(&self) -> MutexGuard<'_, Vec<(Instant, LedState)>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The states alone, in order.
    pub fn states(&self) -> Vec<LedState> {
        self.lock().iter().map(|(_, s)| *s).collect()
    }
}

pub struct SimLed {
    probe: LedProbe,
}

impl SimLed {
    pub fn new(probe: LedProbe) -> Self {
        Self { probe }
    }
}

impl Led for SimLed {
    fn set(&mut self, state: LedState) -> Result<()> {
        log::trace!("sim LED: {state:?}");
        self.probe.lock().push((Instant::now(), state));
        Ok(())
    }
}
