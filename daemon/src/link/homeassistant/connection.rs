//! One authenticated connection to Home Assistant: the session's commands and HA's messages
//! become inputs of the runs (`run.rs`), whose actions are carried out here — frames written,
//! events reported, replies fetched. HA's `ping` command is the heartbeat.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::messages::{self, ErrorData, Incoming, PipelineEvent, RunOptions};
use super::run::{Action, Input, Run};
use super::{Link, pipeline_failure, resolve};
use crate::audio::CODEC_RATE;
use crate::link::lifecycle::Ended;
use crate::link::protocol::ws_frame_len;
use crate::link::{AudioChunk, Command, Event, Socket, TurnId, reply};
use crate::repeats::{Repeats, more};
use crate::text::shorten;

/// A run and the flag that stops its reply download.
struct Tracked {
    run: Run,
    cancel: Arc<AtomicBool>,
}

/// What one connection keeps: HA wants strictly increasing command ids on it.
struct Connection {
    sink: SplitSink<Socket, WsMessage>,
    last_id: u64,
    runs: Vec<Tracked>,
    /// Outgoing audio frames are carved from here (handler byte + PCM).
    arena: BytesMut,
    write_limit: Duration,
    /// Messages pivox cannot use: the first is logged, the rest counted.
    bad: Repeats,
    /// The runs' actions, one buffer lent to every input.
    actions: Vec<Action>,
}

impl Connection {
    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// The live (not abandoned) run of `turn`.
    fn find_turn(&self, turn: TurnId) -> Option<usize> {
        self.runs.iter().rposition(|r| r.run.turn == turn && r.run.live())
    }
}

/// Runs one connection until it fails or the session closes the link.
pub(super) async fn serve(link: &mut Link, socket: Socket, commands: &mut mpsc::Receiver<Command>) -> Ended {
    let server = link.settings.server.clone();
    let (sink, mut stream) = socket.split();
    let mut conn = Connection {
        sink,
        last_id: 0,
        runs: Vec::new(),
        arena: BytesMut::with_capacity(16 * 1024),
        write_limit: server.ping_timeout,
        bad: Repeats::default(),
        actions: Vec::with_capacity(8),
    };
    let mut ping = tokio::time::interval(server.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let ended = loop {
        let deadline = conn.runs.iter().filter_map(|r| r.run.deadline()).min();
        let step = tokio::select! {
            command = commands.recv() => match command {
                Some(command) => link.command(&mut conn, command).await,
                None => {
                    let _ = timeout(Duration::from_secs(1), conn.sink.send(WsMessage::Close(None))).await;
                    break Ended::Closed;
                }
            },
            frame = stream.next() => {
                last_heard = Instant::now();
                link.frame(&mut conn, frame).await
            }
            // Heartbeat: HA's own ping command, which proves its WebSocket handler runs.
            _ = ping.tick() => {
                if last_heard.elapsed() > server.ping_timeout {
                    Err(format!("no answer from Home Assistant for {:?}", server.ping_timeout))
                } else {
                    let id = conn.next_id();
                    link.send(&mut conn, WsMessage::text(messages::ping(id))).await
                }
            }
            _ = tokio::time::sleep_until(deadline.map_or_else(tokio::time::Instant::now, Into::into)), if deadline.is_some() => {
                link.tick(&mut conn).await
            }
        };
        if let Err(reason) = step {
            break Ended::Lost(reason);
        }
    };
    let unused = conn.bad.finish();
    if unused > 0 {
        log::warn!("Home Assistant sent {unused} more messages pivox could not use on this connection");
    }
    // Whatever was in flight is over; the replies being fetched are not wanted any more.
    for tracked in &conn.runs {
        tracked.cancel.store(true, Ordering::Relaxed);
        if let (true, Ended::Lost(reason)) = (tracked.run.unanswered(), &ended) {
            log::warn!("turn {}: {reason} in the middle of the turn", tracked.run.turn);
        }
    }
    ended
}

impl Link {
    async fn send(&self, conn: &mut Connection, message: WsMessage) -> Result<(), String> {
        let len = ws_frame_len(message.len(), true);
        match timeout(conn.write_limit, conn.sink.send(message)).await {
            Ok(Ok(())) => {
                self.counters.bytes_up.fetch_add(len as u64, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("a write did not finish within {:?}", conn.write_limit)),
        }
    }

    async fn command(&mut self, conn: &mut Connection, command: Command) -> Result<(), String> {
        let (turn, input) = match command {
            Command::StartTurn { turn, .. } => return self.start_run(conn, turn).await,
            Command::Audio(AudioChunk { turn, payload, .. }) => (turn, Input::Audio(payload)),
            Command::EndTurn { turn, .. } => (turn, Input::EndAudio),
            Command::CancelTurn { turn } => {
                self.stop_replies(conn);
                (turn, Input::Cancel)
            }
            // Connected already.
            Command::ConnectNow | Command::Button { .. } | Command::TurnOver { .. } => return Ok(()),
        };
        match conn.find_turn(turn) {
            Some(index) => self.feed(conn, index, input).await,
            None => Ok(()),
        }
    }

    /// A new press: the replies still downloading are not wanted, and a run starts.
    async fn start_run(&mut self, conn: &mut Connection, turn: TurnId) -> Result<(), String> {
        self.stop_replies(conn);
        let id = conn.next_id();
        let settings = &self.settings;
        let conversation = self
            .conversation
            .as_ref()
            .filter(|(_, at)| at.elapsed() < settings.conversation_timeout)
            .map(|(id, _)| id.as_str());
        let options = RunOptions {
            pipeline: settings.pipeline.as_deref(),
            conversation_id: conversation,
            device_id: settings.device_id.as_deref(),
            server_vad: settings.server_vad,
            timeout_s: self.params.longest_turn.as_secs().max(1) as u32 + 1,
        };
        let message = messages::run(id, CODEC_RATE, &options);
        conn.runs.push(Tracked { run: Run::new(id, turn), cancel: Arc::new(AtomicBool::new(false)) });
        self.send(conn, WsMessage::text(message)).await
    }

    /// Stops every reply download of this connection: a new press or a cancel means none
    /// is wanted any more, even one whose run has ended on HA's side.
    fn stop_replies(&mut self, conn: &Connection) {
        for tracked in &conn.runs {
            tracked.cancel.store(true, Ordering::Relaxed);
        }
        self.fetcher.cancel_all();
    }

    /// Gives the run at `index` an input and carries out what it asks.
    async fn feed(&mut self, conn: &mut Connection, index: usize, input: Input) -> Result<(), String> {
        let mut actions = std::mem::take(&mut conn.actions);
        conn.runs[index].run.handle(input, Instant::now(), &mut actions);
        let mut done = false;
        let mut result = Ok(());
        for action in actions.drain(..) {
            if result.is_err() {
                continue;
            }
            match action {
                Action::Write { handler, payload } => {
                    conn.arena.reserve(1 + payload.len());
                    conn.arena.put_u8(handler);
                    conn.arena.put_slice(&payload);
                    let frame = conn.arena.split().freeze();
                    result = self.send(conn, WsMessage::Binary(frame)).await;
                }
                Action::Emit(event) => self.events.emit(event).await,
                Action::FetchReply { tts, key } => self.fetch_reply(conn, index, tts, key).await,
                Action::StopReply => conn.runs[index].cancel.store(true, Ordering::Relaxed),
                Action::Fail(error) => {
                    let turn = Some(conn.runs[index].run.turn);
                    let failure = pipeline_failure(error.code, error.message, self.settings.pipeline.as_deref());
                    self.events.emit(Event::TurnFailed { turn, failure }).await;
                }
                Action::Done => done = true,
            }
        }
        conn.actions = actions;
        result?;
        if done {
            conn.runs.remove(index);
        }
        Ok(())
    }

    async fn fetch_reply(&mut self, conn: &Connection, index: usize, tts: messages::TtsOutput, key: Option<String>) {
        let Tracked { run, cancel } = &conn.runs[index];
        let url = resolve(&self.http_base, &tts.url);
        log::debug!("turn {}: fetching the reply from {url}", run.turn);
        self.events.emit(Event::ReplyAnnounced { turn: run.turn, at: Instant::now() }).await;
        self.fetcher.fetch(reply::Job {
            turn: run.turn,
            cache_key: key.unwrap_or_else(|| url.clone()),
            url,
            mime_type: tts.mime_type,
            cancel: cancel.clone(),
        });
    }

    /// Runs past their end-of-run grace.
    async fn tick(&mut self, conn: &mut Connection) -> Result<(), String> {
        let now = Instant::now();
        while let Some(index) = conn.runs.iter().position(|r| r.run.deadline().is_some_and(|at| now >= at)) {
            self.feed(conn, index, Input::Tick).await?;
        }
        Ok(())
    }

    /// One frame from HA. A message pivox cannot read is logged and skipped: one bad message
    /// is no reason to drop a working connection.
    async fn frame(
        &mut self,
        conn: &mut Connection,
        frame: Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), String> {
        match frame {
            None => Err("Home Assistant closed the connection".to_string()),
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(WsMessage::Close(close))) => Err(format!(
                "Home Assistant closed the connection{}",
                close.map(|c| format!(" ({}: {})", c.code, c.reason)).unwrap_or_default()
            )),
            Some(Ok(WsMessage::Text(text))) => {
                self.counters.bytes_down.fetch_add(ws_frame_len(text.len(), false) as u64, Ordering::Relaxed);
                self.message(conn, &text).await
            }
            Some(Ok(WsMessage::Binary(data))) => {
                log::debug!("Home Assistant sent a binary message of {} bytes; ignored", data.len());
                Ok(())
            }
            // Protocol pings are answered by tungstenite; pongs only prove HA is alive.
            Some(Ok(_)) => Ok(()),
        }
    }

    async fn message(&mut self, conn: &mut Connection, text: &str) -> Result<(), String> {
        let message = match Incoming::parse(text) {
            Ok(message) => message,
            Err(e) => {
                if let Some(before) = conn.bad.occur(Instant::now()) {
                    log::warn!("Home Assistant sent a message pivox cannot read ({e}); ignored{}", more(before));
                }
                return Ok(());
            }
        };
        match message {
            Incoming::Event { id, event } => {
                let Some(index) = conn.runs.iter().position(|r| r.run.id == id) else {
                    if let Some(before) = conn.bad.occur(Instant::now()) {
                        let kind = shorten(&event.kind, 40);
                        log::warn!(
                            "Home Assistant sent a `{kind}` event for an unknown run (id {id}); ignored{}",
                            more(before)
                        );
                    }
                    return Ok(());
                };
                match self.input_of(conn.runs[index].run.turn, event) {
                    Some(input) => self.feed(conn, index, input).await,
                    None => Ok(()),
                }
            }
            Incoming::Result { id, success: false, error } => {
                let error = error.unwrap_or(ErrorData { code: "unknown".into(), message: String::new() });
                match conn.runs.iter().position(|r| r.run.id == id) {
                    Some(index) => {
                        self.feed(conn, index, Input::Error(error)).await?;
                        if let Some(index) = conn.runs.iter().position(|r| r.run.id == id) {
                            conn.runs.remove(index);
                        }
                    }
                    None => log::warn!("Home Assistant refused command {id}: {}: {}", error.code, error.message),
                }
                Ok(())
            }
            Incoming::Result { .. } | Incoming::Pong { .. } => Ok(()),
            other @ (Incoming::AuthRequired { .. } | Incoming::AuthOk { .. } | Incoming::AuthInvalid { .. }) => {
                log::warn!("Home Assistant sent {other:?} after authentication; ignored");
                Ok(())
            }
        }
    }

    /// A pipeline event as an input of its run; `None` for events pivox has no use for.
    fn input_of(&mut self, turn: TurnId, event: PipelineEvent) -> Option<Input> {
        Some(match event.kind.as_str() {
            "run-start" => {
                let pipeline = event.data.get("pipeline").and_then(serde_json::Value::as_str).unwrap_or("?");
                log::debug!("turn {turn}: Home Assistant runs pipeline {pipeline}");
                Input::Started {
                    handler: event.stt_handler(),
                    stream_response: event.stream_response(),
                    tts: event.tts_output(),
                }
            }
            "stt-vad-end" | "stt-end" => Input::SpeechEnded { transcript: event.transcript().map(str::to_string) },
            "intent-end" => {
                if let Some(id) = event.conversation_id() {
                    self.conversation = Some((id.to_string(), Instant::now()));
                }
                Input::Answered { speech: event.speech().map(str::to_string) }
            }
            "intent-progress" if event.tts_start_streaming() => Input::TtsStreaming,
            "tts-start" => Input::TtsStarted { key: event.tts_key() },
            "tts-end" => Input::TtsEnded { tts: event.tts_output() },
            "run-end" => Input::RunEnded,
            "error" => Input::Error(event.error()),
            other => {
                log::debug!("turn {turn}: Home Assistant: {other}");
                return None;
            }
        })
    }
}
