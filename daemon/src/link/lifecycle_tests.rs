//! The shared link lifecycle on tokio's paused clock: a scripted backend, no sockets, and
//! time that moves only when every task waits, so the pauses are exact and the test instant.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::backoff::PROBE_MAX;

/// Connects as scripted, serves until told, and records when each attempt was made.
struct Scripted {
    attempts: VecDeque<Result<(), Failure>>,
    made: mpsc::UnboundedSender<Instant>,
    /// How the served connection ends, after how long.
    serve: (Duration, Ended),
    /// What `refused` answers, after how long.
    fixed: (Duration, bool),
    closed: mpsc::UnboundedSender<()>,
}

impl Backend for Scripted {
    type Connection = ();

    fn describe(&self) -> String {
        "the scripted server".into()
    }

    async fn connect(&mut self) -> Result<Connected<()>, Failure> {
        let _ = self.made.send(Instant::now());
        match self.attempts.pop_front() {
            Some(Ok(())) => Ok(Connected { connection: (), codec: Codec::Pcm, server: "scripted".into() }),
            Some(Err(failure)) => Err(failure),
            // Out of script: wait as a listening backend waits for a server to connect.
            None => std::future::pending().await,
        }
    }

    async fn serve(&mut self, (): (), commands: &mut mpsc::Receiver<Command>) -> Ended {
        tokio::select! {
            () = tokio::time::sleep(self.serve.0) => self.serve.1.clone(),
            () = drain_until_closed(commands) => Ended::Closed,
        }
    }

    async fn refused(&mut self, _reason: &str, commands: &mut mpsc::Receiver<Command>) -> bool {
        drain_until(tokio::time::sleep(self.fixed.0), commands).await && self.fixed.1
    }

    fn close(&mut self) {
        let _ = self.closed.send(());
    }
}

struct Harness {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    made: mpsc::UnboundedReceiver<Instant>,
    closed: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start(attempts: Vec<Result<(), Failure>>, serve: (Duration, Ended), fixed: (Duration, bool)) -> Harness {
    let (made_tx, made) = mpsc::unbounded_channel();
    let (closed_tx, closed) = mpsc::unbounded_channel();
    let backend = Scripted { attempts: attempts.into(), made: made_tx, serve, fixed, closed: closed_tx };
    let (commands, command_rx) = mpsc::channel(16);
    let (event_tx, events) = mpsc::channel(64);
    let retry = Retry::new(Duration::from_millis(500), Duration::from_secs(30));
    let task = tokio::spawn(run(backend, command_rx, Events::new(event_tx), retry));
    Harness { commands, events, made, closed, task }
}

fn unreached() -> Result<(), Failure> {
    Err(Failure::Unreached("connection refused".into()))
}

#[tokio::test(start_paused = true)]
async fn unreached_attempts_repeat_within_a_second_and_are_reported_once() {
    let mut h = start(vec![unreached(); 20], (Duration::from_secs(3600), Ended::Closed), (Duration::ZERO, false));
    let mut times = Vec::new();
    for _ in 0..20 {
        times.push(h.made.recv().await.unwrap());
    }
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] <= PROBE_MAX, "{:?}", pair[1] - pair[0]);
    }
    assert_eq!(h.events.recv().await, Some(Event::Down(Down::Unreachable("connection refused".into()))));
    assert!(h.events.try_recv().is_err(), "one Down for the whole run of failures");
    drop(h.commands);
    h.task.await.unwrap();
    assert_eq!(h.closed.recv().await, Some(()), "the backend is closed when the link ends");
}

#[tokio::test(start_paused = true)]
async fn attempts_that_reached_the_server_back_off_and_a_press_tries_at_once() {
    let failed = || Err(Failure::Failed("HTTP 500".into()));
    let mut h = start(vec![failed(); 8], (Duration::from_secs(3600), Ended::Closed), (Duration::ZERO, false));
    let mut times = Vec::new();
    for _ in 0..6 {
        times.push(h.made.recv().await.unwrap());
    }
    let last_pause = times[5] - times[4];
    assert!(last_pause >= Duration::from_secs(4), "backing off: {last_pause:?}");
    // A press while down: the next attempt comes now, not after the pause.
    let pressed = Instant::now();
    h.commands.send(Command::ConnectNow).await.unwrap();
    assert_eq!(h.made.recv().await.unwrap(), pressed);
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_is_reported_and_the_link_comes_back() {
    let lost = (Duration::from_secs(10), Ended::Lost("no answer for 5s".into()));
    let mut h = start(vec![Ok(()), Ok(())], lost, (Duration::ZERO, false));
    assert!(matches!(h.events.recv().await, Some(Event::Up { .. })));
    let up_at = Instant::now();
    assert_eq!(h.events.recv().await, Some(Event::Down(Down::Unreachable("no answer for 5s".into()))));
    assert_eq!(Instant::now() - up_at, Duration::from_secs(10));
    assert!(matches!(h.events.recv().await, Some(Event::Up { .. })), "reconnected");
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_wait_for_the_backend_then_connect_again() {
    let refused = Err(Failure::Refused("invalid token".into()));
    let mut h =
        start(vec![refused, Ok(())], (Duration::from_secs(3600), Ended::Closed), (Duration::from_secs(60), true));
    let first = h.made.recv().await.unwrap();
    assert_eq!(h.events.recv().await, Some(Event::Down(Down::Refused("invalid token".into()))));
    assert_eq!(h.made.recv().await.unwrap() - first, Duration::from_secs(60), "no retry before the fix");
    assert!(matches!(h.events.recv().await, Some(Event::Up { .. })));
}

#[tokio::test(start_paused = true)]
async fn closing_the_link_while_it_waits_for_a_connection_ends_it_at_once() {
    // A listening backend with nobody connecting: `connect` never returns by itself.
    let mut h = start(vec![], (Duration::ZERO, Ended::Closed), (Duration::ZERO, false));
    h.made.recv().await.unwrap();
    let asked = Instant::now();
    drop(h.commands);
    h.task.await.unwrap();
    assert_eq!(Instant::now(), asked);
    assert_eq!(h.closed.recv().await, Some(()));
}
