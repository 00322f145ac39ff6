//! Talking to systemd: `READY=1` once the daemon is set up, `WATCHDOG=1` from the main loop,
//! `STATUS=` lines for `systemctl status`, `RELOADING=1` on SIGHUP, and `STOPPING=1` on the
//! way out.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing. The watchdog pings come from
//! the daemon's `select!` loop itself, so a loop that hangs stops pinging and systemd restarts
//! the service after `WatchdogSec`.

use std::time::Duration;

use sd_notify::NotifyState;

/// The service manager, as far as this process can see it.
pub struct Supervisor {
    watchdog: Option<Duration>,
}

impl Supervisor {
    /// Reads `WATCHDOG_USEC`/`WATCHDOG_PID` (set by systemd when the unit has `WatchdogSec`).
    pub fn from_env() -> Self {
        Self { watchdog: sd_notify::watchdog_enabled() }
    }

    /// How often the main loop should ping: half the watchdog period, as sd_watchdog_enabled(3)
    /// recommends, so one late pass of the loop is not fatal.
    pub fn ping_every(&self) -> Option<Duration> {
        self.watchdog.map(|period| (period / 2).max(Duration::from_millis(10)))
    }

    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn ping(&self) {
        send(&[NotifyState::Watchdog]);
    }

    pub fn status(&self, status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    /// SIGHUP: the daemon stops and starts again with the config read anew; systemd waits
    /// for the next `READY=1` (sd_notify(3): `RELOADING=1` with `MONOTONIC_USEC`).
    pub fn reloading(&self) {
        let now = nix_monotonic_usec();
        send(&[NotifyState::Reloading, NotifyState::MonotonicUsec(now)]);
    }

    pub fn stopping(&self) {
        send(&[NotifyState::Stopping]);
    }
}

/// CLOCK_MONOTONIC in microseconds, as systemd reads it.
fn nix_monotonic_usec() -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000 + i128::from(ts.tv_nsec) / 1_000
}

fn send(states: &[NotifyState]) {
    // A notify socket that went away (systemd restarting) must not take the daemon down.
    if let Err(e) = sd_notify::notify(states) {
        log::debug!("cannot notify systemd: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_at_half_the_watchdog_period() {
        let supervisor = Supervisor { watchdog: Some(Duration::from_secs(10)) };
        assert_eq!(supervisor.ping_every(), Some(Duration::from_secs(5)));
        assert_eq!(Supervisor { watchdog: None }.ping_every(), None);
    }
}
