//! A spoken reply a server gives as a URL (Home Assistant's `tts_output.url`, and any backend
//! that is handed media to play): fetched over HTTP(S), decoded and cut into PCM frames for
//! the shared playback path, on a thread of its own per reply (the HTTP client and the
//! decoder both block, and neither should hold up the link — nor should a download that
//! stalls hold up the next turn's reply). Every thread is joined when the link closes.
//!
//! Every download is bounded: it stops at once when its turn is abandoned (the cancel flag is
//! checked before every read, and a read waits at most [`Timeouts::read`]), and a reply that
//! has not given one playable sample within [`Timeouts::first_audio`] is given up with a
//! line that says how much arrived.
//!
//! Playback starts with the first decoded frames, while the rest is still downloading.
//! Decoded replies are kept in a small cache, so a repeated answer ("Turned on the
//! light") plays again without a fetch. HA gives each run's reply a fresh random URL, so
//! the cache is keyed by what is spoken (HA: engine, language, voice, text, when `tts-start`
//! said so) and by the URL otherwise (older HA versions made the URL from the text).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};

use super::lifecycle::Events;
use super::{AudioChunk, Event, Helpers, TurnFailure, TurnId};
use crate::audio::CODEC_RATE;
use crate::audio::media::MediaDecoder;

/// The largest reply pivox downloads: about 10 minutes of 32 kbit/s MP3.
const MAX_DOWNLOAD: u64 = 8 * 1024 * 1024;
/// A reply no longer than this (at 16 kHz) is cached: 30 s, 960 KB.
const CACHE_MAX_SAMPLES: usize = 30 * CODEC_RATE as usize;
/// The cache holds at most this many replies, and this many samples in all (2 MB).
const CACHE_ENTRIES: usize = 16;
const CACHE_TOTAL_SAMPLES: usize = 64 * CODEC_RATE as usize;

/// One reply to fetch and play.
pub struct Job {
    pub turn: TurnId,
    /// Absolute `http(s)://` URL.
    pub url: String,
    pub mime_type: Option<String>,
    /// What the audio says, when HA told (see the module comment); the URL otherwise.
    pub cache_key: String,
    /// Set by the link when the turn is abandoned (barge-in, error, connection lost).
    pub cancel: Arc<AtomicBool>,
}

/// Timeouts of the reply download.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// From the request to the response's headers.
    pub response: Duration,
    /// Longest wait for the next piece of the body: a stalled download is given up.
    pub read: Duration,
    /// From the request to the first decoded sample: a trickling download is given up.
    pub first_audio: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(10),
            read: Duration::from_secs(5),
            // Well inside the session's 15 s reply timeout, so this line, saying why, comes first.
            first_audio: Duration::from_secs(10),
        }
    }
}

/// Starts a download thread per reply; events go straight to the link's event queue. The
/// threads are registered with the link's [`Helpers`], which the daemon stops and joins.
pub struct Fetcher {
    worker: Arc<Worker>,
    helpers: Helpers,
}

impl Fetcher {
    pub fn spawn(
        tls: Option<ureq::tls::TlsConfig>,
        timeouts: Timeouts,
        frame_samples: usize,
        events: Events,
        helpers: Helpers,
    ) -> Self {
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(timeouts.connect))
            .timeout_recv_response(Some(timeouts.response))
            .timeout_per_read(Some(timeouts.read))
            .max_redirects(3)
            .user_agent(concat!("pivox/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = tls {
            config = config.tls_config(tls);
        }
        let agent = ureq::Agent::new_with_config(config.build());
        let cache = std::sync::Mutex::new(ReplyCache::default());
        let worker = Arc::new(Worker { agent, frame_samples, events, cache, first_audio: timeouts.first_audio });
        Self { worker, helpers }
    }

    /// Fetches and plays `job` on a thread of its own. A reply still downloading for an older
    /// turn has been cancelled by the link and ends at its next read.
    pub fn fetch(&self, job: Job) {
        let worker = self.worker.clone();
        let (turn, cancel) = (job.turn, job.cancel.clone());
        match std::thread::Builder::new().name("reply-fetch".into()).spawn(move || worker.play(job)) {
            Ok(handle) => self.helpers.add(format!("turn {turn}'s reply download"), cancel, handle),
            Err(e) => log::error!("turn {turn}: cannot start a thread for the reply download: {e}"),
        }
    }

    /// Stops every download still running (each ends at its next read).
    pub fn cancel_all(&self) {
        self.helpers.cancel_all();
    }
}

struct Worker {
    agent: ureq::Agent,
    frame_samples: usize,
    events: Events,
    cache: std::sync::Mutex<ReplyCache>,
    first_audio: Duration,
}

/// Cuts 16 kHz PCM into frames and hands them on as reply events.
struct Framer<'a> {
    turn: TurnId,
    events: &'a Events,
    frame_samples: usize,
    pending: Vec<i16>,
    /// Frame payloads are carved from here, not allocated one by one.
    arena: BytesMut,
    seq: u16,
    timestamp: u32,
    started: bool,
    /// Everything emitted, for the cache, until it grows past what the cache keeps.
    kept: Option<Vec<i16>>,
}

impl<'a> Framer<'a> {
    fn new(turn: TurnId, events: &'a Events, frame_samples: usize) -> Self {
        Self {
            turn,
            events,
            frame_samples,
            pending: Vec::with_capacity(frame_samples * 2),
            arena: BytesMut::with_capacity(64 * 1024),
            seq: 0,
            timestamp: 0,
            started: false,
            kept: Some(Vec::new()),
        }
    }

    /// Queues samples; whole frames go out at once. False: the daemon has gone away.
    fn push(&mut self, samples: &[i16]) -> bool {
        if let Some(kept) = self.kept.as_mut() {
            kept.extend_from_slice(samples);
            if kept.len() > CACHE_MAX_SAMPLES {
                self.kept = None;
            }
        }
        self.pending.extend_from_slice(samples);
        let mut sent = 0;
        while self.pending.len() - sent >= self.frame_samples {
            if !self.emit_frame(sent, self.frame_samples) {
                return false;
            }
            sent += self.frame_samples;
        }
        self.pending.drain(..sent);
        true
    }

    fn emit_frame(&mut self, from: usize, len: usize) -> bool {
        if !self.started {
            self.started = true;
            if !self.events.emit_blocking(Event::ReplyStart { turn: self.turn }) {
                return false;
            }
        }
        self.arena.reserve(len * 2);
        for &sample in &self.pending[from..from + len] {
            self.arena.put_i16_le(sample);
        }
        let payload = self.arena.split().freeze();
        let chunk = AudioChunk { turn: self.turn, seq: self.seq, timestamp: self.timestamp, payload };
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(len as u32);
        self.events.emit_blocking(Event::ReplyAudio { chunk, at: Instant::now() })
    }

    /// Sends the last partial frame and the end of the reply.
    fn finish(mut self) -> Option<Vec<i16>> {
        let rest = self.pending.len();
        if rest > 0 && !self.emit_frame(0, rest) {
            return None;
        }
        if self.started {
            self.events.emit_blocking(Event::ReplyEnd { turn: self.turn });
        }
        self.kept
    }
}

impl Worker {
    fn play(&self, job: Job) {
        if job.cancel.load(Ordering::Relaxed) {
            return;
        }
        let cached = self.cache.lock().ok().and_then(|mut cache| cache.get(&job.cache_key));
        if let Some(samples) = cached {
            log::debug!("turn {}: reply from the cache ({} samples)", job.turn, samples.len());
            let mut framer = Framer::new(job.turn, &self.events, self.frame_samples);
            framer.kept = None;
            if framer.push(&samples) {
                framer.finish();
            }
            return;
        }
        match self.fetch(&job) {
            Ok(Some(samples)) => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.insert(job.cache_key, samples);
                }
            }
            Ok(None) => {}
            Err(_) if job.cancel.load(Ordering::Relaxed) => {}
            Err(message) => {
                let code = "reply-fetch-failed".into();
                let message = format!("cannot play the spoken reply from {}: {message}", job.url);
                let failure = TurnFailure::Server { code, message };
                self.events.emit_blocking(Event::TurnFailed { turn: Some(job.turn), failure });
            }
        }
    }

    /// Downloads and plays one reply. `Ok(Some)` holds the samples when they fit the
    /// cache; `Ok(None)`: too long for it, cancelled, or broken off after part of it played
    /// (that part is kept, the rest logged as lost). `Err`: nothing could be played.
    fn fetch(&self, job: &Job) -> Result<Option<Vec<i16>>, String> {
        let response = self.agent.get(&job.url).call().map_err(describe)?;
        let mime_type = job
            .mime_type
            .clone()
            .or_else(|| response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string));
        let extension = job.url.rsplit_once('.').map(|(_, ext)| ext.to_string()).filter(|ext| ext.len() <= 4);
        let heard = Arc::new(AtomicBool::new(false));
        let reader = Watched {
            inner: response.into_body().into_with_config().limit(MAX_DOWNLOAD).reader(),
            cancel: job.cancel.clone(),
            heard: heard.clone(),
            first_audio_by: Instant::now() + self.first_audio,
            first_audio: self.first_audio,
            bytes: 0,
        };
        let mut decoder =
            MediaDecoder::new(reader, mime_type.as_deref(), extension.as_deref()).map_err(|e| e.to_string())?;
        let mut framer = Framer::new(job.turn, &self.events, self.frame_samples);
        let mut chunk = Vec::with_capacity(4096);
        loop {
            if job.cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            chunk.clear();
            let more = decoder.next_chunk(&mut chunk);
            if !chunk.is_empty() {
                heard.store(true, Ordering::Relaxed);
            }
            if !framer.push(&chunk) {
                return Ok(None); // the daemon is shutting down
            }
            match more {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) if job.cancel.load(Ordering::Relaxed) => return Ok(None),
                Err(e) if framer.started || !framer.pending.is_empty() => {
                    log::warn!("turn {}: the spoken reply broke off: {e}", job.turn);
                    framer.finish();
                    return Ok(None);
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        if !framer.started && framer.pending.is_empty() {
            return Err("the reply holds no audio".into());
        }
        Ok(framer.finish())
    }
}

/// The body of a reply download, stopped when its turn is abandoned or when it has not
/// given a playable sample in time.
struct Watched<R> {
    inner: R,
    cancel: Arc<AtomicBool>,
    /// Set once the decoder produced samples.
    heard: Arc<AtomicBool>,
    first_audio_by: Instant,
    first_audio: Duration,
    bytes: u64,
}

impl<R: std::io::Read> std::io::Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error, ErrorKind};
        if self.cancel.load(Ordering::Relaxed) {
            // Not `Interrupted`: readers retry that kind.
            return Err(Error::other("the reply is not wanted any more"));
        }
        if !self.heard.load(Ordering::Relaxed) && Instant::now() >= self.first_audio_by {
            let message = format!(
                "no playable audio within {:?} of the request ({} bytes arrived)",
                self.first_audio, self.bytes
            );
            return Err(Error::new(ErrorKind::TimedOut, message));
        }
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A one-line reason for a failed download.
fn describe(error: ureq::Error) -> String {
    match error {
        ureq::Error::StatusCode(404) => "HTTP 404: Home Assistant no longer has this reply".into(),
        ureq::Error::StatusCode(code) => format!("HTTP {code}"),
        ureq::Error::Timeout(what) => format!("timed out ({what})"),
        ureq::Error::BodyExceedsLimit(limit) => format!("the reply is larger than {limit} bytes"),
        other => crate::link::tls::explain(other.to_string()),
    }
}

/// Decoded replies by key, oldest evicted first, bounded in entries and in samples.
#[derive(Default)]
struct ReplyCache {
    entries: VecDeque<(String, Arc<[i16]>)>,
    samples: usize,
}

impl ReplyCache {
    fn get(&mut self, key: &str) -> Option<Arc<[i16]>> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        // Most recently used goes to the back.
        let entry = self.entries.remove(at)?;
        let samples = entry.1.clone();
        self.entries.push_back(entry);
        Some(samples)
    }

    fn insert(&mut self, key: String, samples: Vec<i16>) {
        if samples.len() > CACHE_MAX_SAMPLES || self.get(&key).is_some() {
            return;
        }
        self.samples += samples.len();
        self.entries.push_back((key, samples.into()));
        while self.entries.len() > CACHE_ENTRIES || self.samples > CACHE_TOTAL_SAMPLES {
            let Some((_, old)) = self.entries.pop_front() else { break };
            self.samples -= old.len();
        }
    }
}
