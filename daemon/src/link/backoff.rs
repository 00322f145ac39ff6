//! Reconnect delays: exponential from `min` to `max`, each with "equal jitter" (a random
//! point in the upper half), so many devices that lost the same server do not return in step.

use std::time::Duration;

#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self::with_rng(min, max, fastrand::Rng::new())
    }

    pub fn with_rng(min: Duration, max: Duration, rng: fastrand::Rng) -> Self {
        Self { min, max: max.max(min), attempt: 0, rng }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.min.saturating_mul(1u32 << self.attempt.min(20)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = cap / 2;
        half + half.mul_f64(self.rng.f64())
    }

    /// After a successful connection: start from `min` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::with_rng(ms(100), ms(1000), fastrand::Rng::with_seed(1));
        let caps = [100, 200, 400, 800, 1000, 1000, 1000];
        for cap in caps {
            let d = b.next_delay();
            assert!(d >= ms(cap / 2) && d <= ms(cap), "{d:?} not in [{}, {cap}] ms", cap / 2);
        }
        b.reset();
        assert!(b.next_delay() <= ms(100));
        // Jitter: two devices with different seeds do not retry in step.
        let mut other = Backoff::with_rng(ms(100), ms(1000), fastrand::Rng::with_seed(2));
        let mut again = Backoff::with_rng(ms(100), ms(1000), fastrand::Rng::with_seed(1));
        let (a, c): (Vec<_>, Vec<_>) = (0..5).map(|_| (again.next_delay(), other.next_delay())).unzip();
        assert_ne!(a, c);
    }
}
