//! Delays between attempts (a server link reconnecting, a device reopening): exponential from `min` to `max`, each with "equal jitter" (a random
//! point in the upper half), so many devices that lost the same server do not return in step.
//!
//! [`Retry`] chooses between two such schedules by what the failed attempt cost the server.
//! An attempt that never reached it (connection refused, host unreachable, no answer) cost it
//! one SYN at most: such attempts go on every [`PROBE_MAX`] at most, so the appliance is ready
//! within about a second of its server coming back. An attempt that reached the server and
//! failed there (a TLS or HTTP error, a refused handshake) made it do real work: those back off
//! up to `reconnect_max`. A press while disconnected tries at once (`Command::ConnectNow`).

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

/// The longest pause between attempts that did not reach the server. On a LAN each costs
/// one SYN and the server kernel's RST, ~120 bytes and no work for the server process.
pub const PROBE_MAX: Duration = Duration::from_secs(1);

/// The reconnect schedule of one link (see the module comment).
#[derive(Debug)]
pub struct Retry {
    reached: Backoff,
    unreached: Backoff,
}

impl Retry {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { reached: Backoff::new(min, max), unreached: Backoff::new(min.min(PROBE_MAX), max.min(PROBE_MAX)) }
    }

    /// The pause after a failed attempt; `reached`: the server's port accepted the connection.
    pub fn next_delay(&mut self, reached: bool) -> Duration {
        if reached { self.reached.next_delay() } else { self.unreached.next_delay() }
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.reached.reset();
        self.unreached.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_that_never_reached_the_server_repeat_within_a_second() {
        let mut retry = Retry::new(Duration::from_millis(500), Duration::from_secs(30));
        for _ in 0..50 {
            assert!(retry.next_delay(false) <= PROBE_MAX);
        }
        // A server that answers and fails is backed off from up to the configured maximum.
        let longest = (0..20).map(|_| retry.next_delay(true)).max().unwrap();
        assert!(longest >= Duration::from_secs(15), "{longest:?}");
        retry.reset();
        assert!(retry.next_delay(true) <= Duration::from_millis(500));
    }

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
