//! The voice side of the ESPHome link: the session's turns become voice messages on the
//! connection that subscribed to voice, and HA's voice messages become link events. At most
//! one run is live (HA runs one pipeline per satellite); a new press cancels the old run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::api::{ToClient, Voice as FromHa};
use super::messages::{self, Typed, event};
use crate::link::lifecycle::Events;
use crate::link::{AudioChunk, Command, Event, SERVER_TURNS, TurnFailure, TurnId, reply};
use crate::text::shorten;
use crate::timers::{TimerChange, TimerEvent};

/// Audio held while HA has not answered the start request yet: 5 s of 20 ms frames. Older
/// frames are dropped first (HA answers in milliseconds; this only bounds a stuck one).
const HELD_MAX: usize = 250;

/// Messages for the voice connection; a connection that cannot take them is lost.
pub struct Outbox {
    to: mpsc::Sender<ToClient>,
    /// Payloads are encoded here and split off, not allocated one by one.
    arena: BytesMut,
    failed: Option<String>,
}

impl Outbox {
    pub fn new(to: mpsc::Sender<ToClient>) -> Self {
        Self { to, arena: BytesMut::with_capacity(16 * 1024), failed: None }
    }

    /// Queues a message; never waits (the link must not block on one slow client).
    pub fn send<M: Typed>(&mut self, message: &M) {
        if self.arena.capacity() - self.arena.len() < message.encoded_len() {
            self.arena.reserve(16 * 1024);
        }
        if message.encode(&mut self.arena).is_err() {
            return;
        }
        let payload = self.arena.split().freeze();
        if let Err(e) = self.to.try_send(ToClient::Message(M::TYPE, payload)) {
            self.failed.get_or_insert_with(|| match e {
                mpsc::error::TrySendError::Full(_) => "Home Assistant stopped reading".into(),
                mpsc::error::TrySendError::Closed(_) => "Home Assistant's connection closed".into(),
            });
        }
    }

    pub fn failed(&mut self) -> Option<String> {
        self.failed.take()
    }
}

/// One pipeline run HA is doing for a turn.
struct Run {
    turn: TurnId,
    /// HA has answered the start request: audio goes straight out.
    started: bool,
    /// No more audio: the button was released, or HA stopped listening.
    input_over: bool,
    /// The release came before HA's answer: the end goes out after the held audio.
    end_held: bool,
    held: VecDeque<Bytes>,
    frames: u32,
    /// The reply's URL, known from RUN_START (HA 2026.2) or TTS_END.
    url: Option<String>,
    fetching: bool,
    /// HA wants to hear the user again once the reply has played (INTENT_END).
    continues: bool,
    cancel: Arc<AtomicBool>,
}

/// An announcement HA asked for: its chime, then its message, each played as a turn of its own
/// (the chime is the same every time, so it comes from the reply cache after the first).
struct Announcement {
    /// The turn playing now.
    turn: TurnId,
    /// What plays after it.
    next: Option<String>,
    /// Open the microphone once it has played (`start_conversation`).
    converse: bool,
    /// HA waits for AnnounceFinished (an announcement, not a media player's play_media).
    tell: bool,
    cancel: Arc<AtomicBool>,
}

impl Run {
    fn new(turn: TurnId) -> Self {
        Self {
            turn,
            started: false,
            input_over: false,
            end_held: false,
            held: VecDeque::new(),
            frames: 0,
            url: None,
            fetching: false,
            continues: false,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[derive(Default)]
pub struct Voice {
    run: Option<Run>,
    announcement: Option<Announcement>,
    /// The last turn number given to an announcement (from [`SERVER_TURNS`]).
    server_turns: TurnId,
    /// Turns whose reply pivox fetched: HA waits for AnnounceFinished once it has played.
    answered: Vec<TurnId>,
    /// HA's conversation the last answer belonged to; the next turn continues it (HA decides
    /// whether it is still open).
    conversation: String,
}

impl Voice {
    pub async fn command(&mut self, command: Command, out: &mut Outbox, events: &Events, fetcher: &reply::Fetcher) {
        match command {
            Command::StartTurn { turn, .. } => {
                self.abort_run(out);
                // A press during an announcement ends it: HA hears it is over.
                self.end_announcement(out);
                out.send(&messages::VoiceAssistantRequest {
                    start: true,
                    conversation_id: self.conversation.clone(),
                    flags: 0,
                    wake_word_phrase: String::new(),
                });
                self.run = Some(Run::new(turn));
            }
            Command::Audio(AudioChunk { turn, payload, .. }) => {
                let Some(run) = self.run.as_mut().filter(|r| r.turn == turn && !r.input_over) else { return };
                if run.started {
                    out.send(&messages::VoiceAssistantAudio { data: payload, end: false });
                    run.frames += 1;
                    if run.frames == 1 {
                        events.emit(Event::FirstAudioSent { turn, at: Instant::now() }).await;
                    }
                } else {
                    if run.held.len() == HELD_MAX {
                        run.held.pop_front();
                    }
                    run.held.push_back(payload);
                }
            }
            Command::EndTurn { turn, .. } => {
                let Some(run) = self.run.as_mut().filter(|r| r.turn == turn && !r.input_over) else { return };
                if run.started {
                    end_audio(run, out, events).await;
                } else {
                    run.end_held = true;
                }
            }
            // A press during an announcement: the rest of it (the message after the chime) is
            // not played, and HA hears it is over.
            Command::CancelTurn { turn } if self.announcement.as_ref().is_some_and(|a| a.turn == turn) => {
                self.end_announcement(out);
            }
            Command::CancelTurn { turn } => {
                if let Some(run) = self.run.take_if(|r| r.turn == turn) {
                    run.cancel.store(true, Ordering::Relaxed);
                    out.send(&messages::VoiceAssistantRequest { start: false, ..Default::default() });
                    log::debug!("turn {turn}: run cancelled");
                }
            }
            Command::TurnOver { turn, played } if self.announcement.as_ref().is_some_and(|a| a.turn == turn) => {
                self.announcement_played(played, out, events, fetcher).await;
            }
            Command::TurnOver { turn, played } => {
                if let Some(at) = self.answered.iter().position(|t| *t == turn) {
                    self.answered.remove(at);
                    out.send(&messages::VoiceAssistantAnnounceFinished { success: played });
                }
                let run = self.run.take_if(|r| r.turn == turn);
                if played && run.is_some_and(|r| r.continues) {
                    events.emit(Event::Listen).await;
                }
            }
            Command::ConnectNow | Command::Button { .. } => {}
        }
    }

    pub async fn message(&mut self, message: FromHa, out: &mut Outbox, events: &Events, fetcher: &reply::Fetcher) {
        match message {
            FromHa::Response(response) => self.response(response, out, events).await,
            FromHa::Event(event) => self.event(event, events, fetcher).await,
            FromHa::Timer(timer) => {
                let change = match timer.event_type {
                    messages::timer::STARTED => TimerChange::Started,
                    messages::timer::UPDATED => TimerChange::Updated,
                    messages::timer::CANCELLED => TimerChange::Cancelled,
                    messages::timer::FINISHED => TimerChange::Finished,
                    other => return log::debug!("timer event {other}, which pivox does not know; ignored"),
                };
                let event = TimerEvent {
                    change,
                    id: shorten(&timer.timer_id, 64),
                    name: shorten(&timer.name, 64),
                    seconds_left: timer.seconds_left,
                    active: timer.is_active,
                };
                events.emit(Event::Timer(event)).await;
            }
            FromHa::Announce(announce) => self.announce(announce, out, events, fetcher).await,
        }
    }

    async fn response(&mut self, response: messages::VoiceAssistantResponse, out: &mut Outbox, events: &Events) {
        let Some(run) = self.run.as_mut().filter(|r| !r.started) else { return };
        if response.error {
            let turn = run.turn;
            self.run = None;
            let failure = TurnFailure::Server {
                code: "start-failed".into(),
                message: "Home Assistant could not start its voice pipeline".into(),
            };
            return events.emit(Event::TurnFailed { turn: Some(turn), failure }).await;
        }
        run.started = true;
        let turn = run.turn;
        while let Some(payload) = run.held.pop_front() {
            out.send(&messages::VoiceAssistantAudio { data: payload, end: false });
            run.frames += 1;
            if run.frames == 1 {
                events.emit(Event::FirstAudioSent { turn, at: Instant::now() }).await;
            }
        }
        if run.end_held {
            end_audio(run, out, events).await;
        }
    }

    async fn event(
        &mut self,
        message: messages::VoiceAssistantEventResponse,
        events: &Events,
        fetcher: &reply::Fetcher,
    ) {
        let Some(run) = self.run.as_mut() else {
            return log::debug!("voice event {} with no run in progress; ignored", message.event_type);
        };
        let turn = run.turn;
        match message.event_type {
            event::RUN_START => run.url = message.get("url").filter(|u| !u.is_empty()).map(str::to_string),
            // HA heard the end of speech: the audio after it is not wanted.
            event::STT_VAD_END => input_closed(run, events).await,
            event::STT_END => {
                input_closed(run, events).await;
                let text = message.get("text").unwrap_or_default().to_string();
                events.emit(Event::Transcript { turn, text }).await;
            }
            event::INTENT_PROGRESS if message.get("tts_start_streaming") == Some("1") => {
                self.fetch(events, fetcher).await;
            }
            event::INTENT_END => {
                if let Some(id) = message.get("conversation_id") {
                    self.conversation = id.to_string();
                }
                run.continues = message.get("continue_conversation") == Some("1");
            }
            event::TTS_START => {
                let text = message.get("text").unwrap_or_default().to_string();
                events.emit(Event::ReplyText { turn, text }).await;
            }
            event::TTS_END => {
                if let Some(url) = message.get("url").filter(|u| !u.is_empty()) {
                    run.url = Some(url.to_string());
                }
                self.fetch(events, fetcher).await;
            }
            // Nothing to play: the turn is over without a reply.
            event::RUN_END if !run.fetching => {
                events.emit(Event::ReplyEnd { turn }).await;
                self.run = None;
            }
            event::ERROR => {
                input_closed(run, events).await;
                let code = message.get("code").unwrap_or_default().to_string();
                let text = message.get("message").unwrap_or_default().to_string();
                let failure = crate::link::homeassistant::pipeline_failure(code, text, None);
                run.cancel.store(true, Ordering::Relaxed);
                self.run = None;
                events.emit(Event::TurnFailed { turn: Some(turn), failure }).await;
            }
            _ => {}
        }
    }

    /// Starts fetching the run's reply, once.
    async fn fetch(&mut self, events: &Events, fetcher: &reply::Fetcher) {
        let Some(run) = self.run.as_mut().filter(|r| !r.fetching) else { return };
        let Some(url) = run.url.clone() else { return };
        run.fetching = true;
        self.answered.push(run.turn);
        events.emit(Event::ReplyAnnounced { turn: run.turn, at: Instant::now() }).await;
        fetcher.fetch(reply::Job {
            turn: run.turn,
            cache_key: url.clone(),
            url,
            mime_type: None,
            cancel: run.cancel.clone(),
        });
    }

    /// HA announces something: whatever runs is cut short (HA has cancelled its run), the
    /// chime and the message play, and HA hears when they have.
    async fn announce(
        &mut self,
        request: messages::VoiceAssistantAnnounceRequest,
        out: &mut Outbox,
        events: &Events,
        fetcher: &reply::Fetcher,
    ) {
        log::info!(
            "Home Assistant announces \"{}\"{}",
            shorten(&request.text, 200),
            if request.start_conversation { ", then listens" } else { "" }
        );
        if let Some(run) = self.run.take() {
            run.cancel.store(true, Ordering::Relaxed);
        }
        self.end_announcement(out);
        let (first, next) = match (request.preannounce_media_id.is_empty(), request.media_id.is_empty()) {
            (false, false) => (request.preannounce_media_id, Some(request.media_id)),
            (true, false) => (request.media_id, None),
            (false, true) => (request.preannounce_media_id, None),
            (true, true) => {
                log::warn!("Home Assistant sent an announcement with nothing to play");
                return out.send(&messages::VoiceAssistantAnnounceFinished { success: false });
            }
        };
        let cancel = Arc::new(AtomicBool::new(false));
        self.announcement =
            Some(Announcement { turn: 0, next, converse: request.start_conversation, tell: true, cancel });
        self.play_announcement(first, events, fetcher).await;
    }

    /// HA's media player plays `url` (`media_player.play_media`): like an announcement, without
    /// telling HA when it is over (its media player is idle all along).
    pub async fn play_media(&mut self, url: String, out: &mut Outbox, events: &Events, fetcher: &reply::Fetcher) {
        log::info!("Home Assistant plays media: {}", shorten(&url, 200));
        self.abort_run(out);
        self.end_announcement(out);
        let cancel = Arc::new(AtomicBool::new(false));
        self.announcement = Some(Announcement { turn: 0, next: None, converse: false, tell: false, cancel });
        self.play_announcement(url, events, fetcher).await;
    }

    /// Plays `url` as the announcement's next turn.
    async fn play_announcement(&mut self, url: String, events: &Events, fetcher: &reply::Fetcher) {
        let Some(announcement) = self.announcement.as_mut() else { return };
        self.server_turns = self.server_turns.wrapping_add(1).max(SERVER_TURNS);
        announcement.turn = self.server_turns;
        events.emit(Event::Announcement { turn: announcement.turn }).await;
        let cancel = announcement.cancel.clone();
        fetcher.fetch(reply::Job { turn: announcement.turn, cache_key: url.clone(), url, mime_type: None, cancel });
    }

    /// A part of the announcement has played (or failed): the next part, or the end.
    async fn announcement_played(&mut self, played: bool, out: &mut Outbox, events: &Events, fetcher: &reply::Fetcher) {
        let Some(announcement) = self.announcement.as_mut() else { return };
        if let Some(next) = announcement.next.take() {
            // A chime that failed does not keep the message from playing.
            return self.play_announcement(next, events, fetcher).await;
        }
        let (converse, tell) = (announcement.converse, announcement.tell);
        self.announcement = None;
        if !tell {
            return;
        }
        if played {
            log::info!("the announcement has played");
        } else {
            log::warn!("the announcement could not be played to its end");
        }
        out.send(&messages::VoiceAssistantAnnounceFinished { success: played });
        if played && converse {
            events.emit(Event::Listen).await;
        }
    }

    /// Aborts HA's run in progress (a new press, media HA plays).
    fn abort_run(&mut self, out: &mut Outbox) {
        if let Some(run) = self.run.take() {
            run.cancel.store(true, Ordering::Relaxed);
            out.send(&messages::VoiceAssistantRequest { start: false, ..Default::default() });
        }
    }

    /// Cuts the announcement in progress short; HA, if it waits for it, hears it is over.
    fn end_announcement(&mut self, out: &mut Outbox) {
        if let Some(announcement) = self.announcement.take() {
            announcement.cancel.store(true, Ordering::Relaxed);
            if announcement.tell {
                out.send(&messages::VoiceAssistantAnnounceFinished { success: false });
            }
        }
    }

    /// The connection is gone: whatever was in flight is over.
    pub fn abandon(&mut self, fetcher: &reply::Fetcher) {
        if let Some(run) = self.run.take() {
            run.cancel.store(true, Ordering::Relaxed);
        }
        if let Some(announcement) = self.announcement.take() {
            announcement.cancel.store(true, Ordering::Relaxed);
        }
        self.answered.clear();
        fetcher.cancel_all();
    }
}

async fn end_audio(run: &mut Run, out: &mut Outbox, events: &Events) {
    run.input_over = true;
    out.send(&messages::VoiceAssistantAudio { data: Bytes::new(), end: true });
    events.emit(Event::EndSent { turn: run.turn, at: Instant::now(), frames: run.frames }).await;
}

async fn input_closed(run: &mut Run, events: &Events) {
    if run.input_over {
        return;
    }
    run.input_over = true;
    run.held.clear();
    events.emit(Event::InputClosed { turn: run.turn, at: Instant::now(), frames: run.frames }).await;
}
