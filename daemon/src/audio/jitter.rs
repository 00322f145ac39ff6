//! The reply jitter buffer: reorders packets by their 16-bit wrapping sequence number,
//! holds back playback by a target delay adapted to the measured arrival jitter, and
//! gives up on a missing packet once a later one has waited `max_age` (the decoder then
//! conceals the gap).
//!
//! Packets go in still encoded: Opus concealment needs the decoder to see packets in
//! order, so decoding happens after this buffer. The consumer (the playback thread)
//! calls [`JitterBuffer::pop`] whenever the speaker has room for another frame.
//!
//! Storage is a ring of `capacity` slots allocated once; a packet more than `capacity`
//! frames ahead of playback is dropped and counted as overflow. Slots are initialised as
//! packets first reach them (within the allocation, so nothing is allocated then): a reply's
//! sequence numbers start at 0, so a 120 s ring that holds 2 s replies touches 2 s of it, and
//! the rest stays untouched memory rather than resident (issue 14).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// Media duration of one packet.
    pub frame: Duration,
    /// The target delay never goes below this.
    pub min_delay: Duration,
    /// ... nor above this.
    pub max_delay: Duration,
    /// A later packet waits at most this long for a missing earlier one.
    pub max_age: Duration,
    /// Slots in the ring: how far ahead of playback packets may arrive.
    pub capacity: usize,
}

/// Counters for one reply; they go into the per-turn metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct JitterStats {
    pub received: u32,
    pub played: u32,
    pub duplicates: u32,
    /// Arrived after their slot had been played or concealed.
    pub late: u32,
    pub concealed: u32,
    pub overflow: u32,
    pub underruns: u32,
    /// The delay the buffer added before the reply's first packet played.
    pub first_delay: Option<Duration>,
    /// Time packets spent in the buffer, summed and at most (a reply sent faster than real
    /// time waits here by design, so these grow with the reply's length).
    pub delay_total: Duration,
    pub delay_max: Duration,
    /// Measured arrival jitter (smoothed lateness, see `measure_jitter`) at the end.
    pub jitter: Duration,
    pub target: Duration,
}

impl JitterStats {
    pub fn delay_mean(&self) -> Duration {
        if self.played == 0 { Duration::ZERO } else { self.delay_total / self.played }
    }
}

/// What the consumer should play next.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<P> {
    Packet(P),
    /// A packet is missing for good: let the decoder conceal one frame.
    Conceal,
}

#[derive(Debug)]
struct Slot<P> {
    seq: u64,
    payload: P,
    arrived: Instant,
}

#[derive(Debug)]
pub struct JitterBuffer<P> {
    cfg: JitterConfig,
    slots: Vec<Option<Slot<P>>>,
    /// Next sequence number to play (extended to 64 bits), once the first packet came.
    next: Option<u64>,
    /// Highest sequence number stored.
    highest: u64,
    playing: bool,
    /// When the current buffering period began (first packet after start or underrun).
    buffering_since: Option<Instant>,
    ended: bool,
    /// Smoothed lateness in seconds (see `measure_jitter`), and the fastest transit time seen.
    jitter: f64,
    fastest_transit: Option<f64>,
    epoch: Instant,
    stats: JitterStats,
}

impl<P> JitterBuffer<P> {
    pub fn new(cfg: JitterConfig) -> Self {
        assert!(cfg.capacity > 0, "jitter buffer capacity must be positive");
        let slots = Vec::with_capacity(cfg.capacity);
        let now = Instant::now();
        let mut jb = Self {
            cfg,
            slots,
            next: None,
            highest: 0,
            playing: false,
            buffering_since: None,
            ended: false,
            jitter: 0.0,
            fastest_transit: None,
            epoch: now,
            stats: JitterStats::default(),
        };
        jb.stats.target = jb.target();
        jb
    }

    /// Forgets everything for a new reply; keeps the jitter estimate (same network).
    pub fn reset(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.next = None;
        self.highest = 0;
        self.playing = false;
        self.buffering_since = None;
        self.ended = false;
        self.fastest_transit = None;
        self.stats = JitterStats { jitter: self.stats.jitter, target: self.target(), ..JitterStats::default() };
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The delay held before playback starts: one frame plus the measured lateness, within
    /// `[min_delay, max_delay]`.
    pub fn target(&self) -> Duration {
        let adaptive = self.cfg.frame + Duration::from_secs_f64(self.jitter);
        adaptive.clamp(self.cfg.min_delay, self.cfg.max_delay)
    }

    /// No more packets will come for this reply.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// True once the reply has ended and every packet has been played or given up on.
    pub fn is_finished(&self) -> bool {
        self.ended && self.next.is_none_or(|next| next > self.highest)
    }

    /// Stores a packet with its 16-bit sequence number and media timestamp (in samples at `rate`).
    pub fn insert(&mut self, seq: u16, timestamp: u32, rate: u32, payload: P, now: Instant) {
        self.stats.received += 1;
        let mut next = *self.next.get_or_insert(u64::from(seq));
        let seq = unwrap_seq(seq, next.max(self.highest));
        let nothing_played = self.stats.played == 0 && self.stats.concealed == 0;
        if seq < next && nothing_played && self.highest - seq < self.cfg.capacity as u64 {
            // An earlier packet overtaken by a later one before playback began still fits in front.
            next = seq;
            self.next = Some(seq);
        }
        if seq < next {
            self.stats.late += 1;
            return;
        }
        if seq - next >= self.cfg.capacity as u64 {
            self.stats.overflow += 1;
            return;
        }
        let index = (seq % self.cfg.capacity as u64) as usize;
        if index >= self.slots.len() {
            // Within the capacity reserved at start: no allocation.
            self.slots.resize_with(index + 1, || None);
        }
        let slot = &mut self.slots[index];
        if slot.as_ref().is_some_and(|s| s.seq == seq) {
            self.stats.duplicates += 1;
            return;
        }
        *slot = Some(Slot { seq, payload, arrived: now });
        self.highest = self.highest.max(seq);
        self.buffering_since.get_or_insert(now);
        self.measure_jitter(timestamp, rate, now);
    }

    /// Lateness is a packet's transit time (arrival minus media time) above the fastest
    /// transit seen in this reply. A server sending faster than real time keeps lowering the
    /// fastest transit, so a burst reads as no jitter; a late packet reads as its lateness.
    /// The estimate rises quickly (1/4) and decays slowly (1/64), so the target covers the
    /// late packets rather than the average one.
    fn measure_jitter(&mut self, timestamp: u32, rate: u32, now: Instant) {
        let transit = (now - self.epoch).as_secs_f64() - f64::from(timestamp) / f64::from(rate);
        let fastest = self.fastest_transit.get_or_insert(transit);
        *fastest = fastest.min(transit);
        let lateness = transit - *fastest;
        let gain = if lateness > self.jitter { 0.25 } else { 1.0 / 64.0 };
        self.jitter += (lateness - self.jitter) * gain;
        self.stats.jitter = Duration::from_secs_f64(self.jitter);
        self.stats.target = self.target();
    }

    fn buffered(&self, next: u64) -> Duration {
        if self.highest < next { Duration::ZERO } else { self.cfg.frame * (self.highest - next + 1) as u32 }
    }

    /// The next thing to play, or `None` when playback should wait.
    pub fn pop(&mut self, now: Instant) -> Option<Pop<P>> {
        let next = self.next?;
        if !self.playing {
            let since = self.buffering_since?;
            let target = self.target();
            if !(self.ended || self.buffered(next) >= target || now - since >= target) {
                return None;
            }
            self.playing = true;
        }
        let index = (next % self.cfg.capacity as u64) as usize;
        if let Some(slot) = self.slots.get_mut(index).and_then(|slot| slot.take_if(|s| s.seq == next)) {
            self.next = Some(next + 1);
            let waited = now.saturating_duration_since(slot.arrived);
            self.stats.played += 1;
            self.stats.first_delay.get_or_insert(waited);
            self.stats.delay_total += waited;
            self.stats.delay_max = self.stats.delay_max.max(waited);
            return Some(Pop::Packet(slot.payload));
        }
        if next > self.highest {
            if !self.ended {
                // Ran dry mid-reply: buffer up to the target again before resuming.
                self.stats.underruns += 1;
                self.playing = false;
                self.buffering_since = None;
            }
            return None;
        }
        // A gap: wait for the missing packet while the oldest later one is young enough.
        let oldest = self.slots.iter().flatten().map(|s| s.arrived).min()?;
        if self.ended || now.saturating_duration_since(oldest) >= self.cfg.max_age {
            self.next = Some(next + 1);
            self.stats.concealed += 1;
            return Some(Pop::Conceal);
        }
        None
    }
}

/// Extends a 16-bit sequence number to the 64-bit one nearest `reference`.
pub fn unwrap_seq(seq: u16, reference: u64) -> u64 {
    let delta = seq.wrapping_sub(reference as u16) as i16;
    reference.saturating_add_signed(i64::from(delta))
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;
