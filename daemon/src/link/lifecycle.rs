//! One lifecycle for every link: connect, report `Up`, serve the connection until it ends,
//! report `Down`, pause, and again — until the session closes the link.
//!
//! A backend says how to connect and how to serve one connection ([`Backend`]); this loop
//! does the rest the same way for all of them:
//! - "Connect" is whatever brings a connection: dialling a server (the pivox protocol, Home
//!   Assistant's WebSocket API) or waiting for one to connect to pivox (a listening backend).
//!   The session's commands are drained meanwhile, so closing the link never waits on it.
//! - A failed attempt says what it cost the server ([`Failure`]), and [`Retry`] picks the
//!   pause from that: attempts that never reached it go on about every second, the others
//!   back off up to `reconnect_max`; a press while down ([`Command::ConnectNow`]) tries at once.
//! - Refused credentials stop the retries until [`Backend::refused`] says trying can help.
//! - The first failure of a run of them is a warning, the repeats go to debug; a lost
//!   connection is one warning naming the server and why.

use std::future::Future;

use tokio::sync::mpsc;

use super::{Command, Down, Event};
use crate::audio::codec::Codec;
use crate::backoff::Retry;

/// A connection ready for turns.
pub struct Connected<C> {
    pub connection: C,
    /// The codec agreed for the turn's audio and the reply.
    pub codec: Codec,
    /// The server's own name for itself ("pivox-server 0.1", "Home Assistant 2026.2").
    pub server: String,
}

/// Why an attempt to connect failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server's port was never reached (refused, unreachable, no answer): cheap to retry.
    Unreached(String),
    /// The server was reached and the attempt failed there (TLS, HTTP, a refused greeting).
    Failed(String),
    /// The server refused pivox's credentials: the same ones cannot succeed.
    Refused(String),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The session closed the link: stop for good.
    Closed,
    Lost(String),
    /// The server refused pivox's credentials on a live connection.
    Refused(String),
}

/// The link's events, as every part of a backend sends them (the async loop and any threads).
#[derive(Clone)]
pub struct Events(mpsc::Sender<Event>);

impl Events {
    pub fn new(sender: mpsc::Sender<Event>) -> Self {
        Self(sender)
    }

    /// Sends an event; the receiver only goes away at shutdown, when nothing needs it any more.
    pub async fn emit(&self, event: Event) {
        let _ = self.0.send(event).await;
    }

    /// [`Events::emit`] from a thread. False: the daemon has gone away.
    pub fn emit_blocking(&self, event: Event) -> bool {
        self.0.blocking_send(event).is_ok()
    }
}

/// What a backend supplies to the lifecycle.
pub trait Backend: Send + 'static {
    /// One live connection.
    type Connection: Send;

    /// The server, for log lines ("ws://192.168.1.10:8765/", "Home Assistant at ws://…").
    fn describe(&self) -> String;

    /// Dials the server, or waits for it to connect, and greets it.
    fn connect(&mut self) -> impl Future<Output = Result<Connected<Self::Connection>, Failure>> + Send;

    /// Serves one connection until it ends or the session closes the link (`commands` ends).
    fn serve(
        &mut self,
        connection: Self::Connection,
        commands: &mut mpsc::Receiver<Command>,
    ) -> impl Future<Output = Ended> + Send;

    /// The server refused pivox's credentials (`reason`): waits until trying again can help
    /// (Home Assistant: the token file holds a new token). False: the link was closed meanwhile.
    /// By default the same credentials cannot succeed: the link waits to be closed (a restart
    /// with a new config). A backend that never reports [`Failure::Refused`] keeps this.
    fn refused(&mut self, reason: &str, commands: &mut mpsc::Receiver<Command>) -> impl Future<Output = bool> + Send {
        log::error!(
            "{} refused pivox's credentials ({reason}); not retrying: fix the config and restart pivox",
            self.describe()
        );
        async move {
            drain_until_closed(commands).await;
            false
        }
    }

    /// The link is closing for good: whatever the backend runs besides (reply downloads) is
    /// told to stop, without waiting (the daemon joins those threads: [`super::Helpers`]).
    fn close(&mut self);
}

/// Runs a link until the session drops its command sender.
pub async fn run<B: Backend>(mut backend: B, mut commands: mpsc::Receiver<Command>, events: Events, mut retry: Retry) {
    let server = backend.describe();
    let mut failures = 0u32;
    loop {
        let attempt = tokio::select! {
            attempt = backend.connect() => attempt,
            () = drain_until_closed(&mut commands) => break,
        };
        let mut reached = true;
        let refused = match attempt {
            Ok(Connected { connection, codec, server: name }) => {
                log::debug!("connected to {server} ({name}), codec {codec}");
                failures = 0;
                retry.reset();
                events.emit(Event::Up { codec, server: name }).await;
                match backend.serve(connection, &mut commands).await {
                    Ended::Closed => break,
                    Ended::Refused(reason) => Some(reason),
                    Ended::Lost(reason) => {
                        log::warn!("lost the connection to {server}: {reason}");
                        events.emit(Event::Down(Down::Unreachable(reason))).await;
                        None
                    }
                }
            }
            Err(Failure::Refused(reason)) => Some(reason),
            Err(Failure::Unreached(reason)) => {
                reached = false;
                failures += 1;
                connect_failed(&events, &server, failures, reason).await;
                None
            }
            Err(Failure::Failed(reason)) => {
                failures += 1;
                connect_failed(&events, &server, failures, reason).await;
                None
            }
        };
        if let Some(reason) = refused {
            events.emit(Event::Down(Down::Refused(reason.clone()))).await;
            if !backend.refused(&reason, &mut commands).await {
                break;
            }
            continue;
        }
        if !drain_until(tokio::time::sleep(retry.next_delay(reached)), &mut commands).await {
            break;
        }
    }
    backend.close();
}

/// Says the first of a run of failed attempts; repeats of it go to debug so the journal stays
/// readable.
async fn connect_failed(events: &Events, server: &str, failures: u32, reason: String) {
    if failures == 1 {
        log::warn!("cannot connect to {server}: {reason}; retrying");
        events.emit(Event::Down(Down::Unreachable(reason))).await;
    } else {
        log::debug!("attempt {failures} to connect to {server} failed: {reason}");
    }
}

/// Drops the session's commands (no turn can happen while the link is down) until the
/// session closes the link.
async fn drain_until_closed(commands: &mut mpsc::Receiver<Command>) {
    while commands.recv().await.is_some() {}
}

/// Waits for `pause` while dropping the session's commands; [`Command::ConnectNow`] cuts the
/// pause short. False: the session closed the link.
pub async fn drain_until(pause: tokio::time::Sleep, commands: &mut mpsc::Receiver<Command>) -> bool {
    tokio::pin!(pause);
    loop {
        tokio::select! {
            _ = &mut pause => return true,
            command = commands.recv() => match command {
                None => return false,
                Some(Command::ConnectNow) => return true,
                Some(_) => {}
            },
        }
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
