//! The pre-roll ring: the last few hundred ms of microphone audio before a press, so a
//! first syllable spoken together with the press is not lost.
//!
//! Holds whole frames in a ring of samples sized once at start-up; pushing never allocates.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct PreRoll {
    samples: VecDeque<i16>,
    capacity: usize,
}

impl PreRoll {
    /// A ring holding `frames` frames of `frame_samples` samples (0 frames: pre-roll off).
    pub fn new(frames: usize, frame_samples: usize) -> Self {
        let capacity = frames * frame_samples;
        Self { samples: VecDeque::with_capacity(capacity), capacity }
    }

    /// Remembers `frame`, forgetting the oldest frame when full.
    pub fn push(&mut self, frame: &[i16]) {
        if self.capacity == 0 {
            return;
        }
        let frame = &frame[frame.len().saturating_sub(self.capacity)..];
        let overflow = (self.samples.len() + frame.len()).saturating_sub(self.capacity);
        self.samples.drain(..overflow);
        self.samples.extend(frame);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn clear(&mut self) {
        self.samples.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Takes the oldest `frame.len()` samples out into `frame`; `None` when fewer are held.
    pub fn pop_frame(&mut self, frame: &mut [i16]) -> Option<usize> {
        if self.samples.len() < frame.len() || frame.is_empty() {
            return None;
        }
        let n = frame.len();
        for (slot, sample) in frame.iter_mut().zip(self.samples.drain(..n)) {
            *slot = sample;
        }
        Some(frame.len())
    }

    /// Takes the remembered audio out, oldest first, in `frame_samples` chunks.
    pub fn drain_frames(&mut self, frame_samples: usize, mut each: impl FnMut(&[i16])) {
        let (a, b) = self.samples.as_slices();
        // Frames may straddle the ring's seam; copy those through a stack buffer.
        let mut scratch = [0i16; super::MAX_FRAME_SAMPLES];
        let total = a.len() + b.len();
        let mut at = 0;
        while at + frame_samples <= total {
            let chunk = &mut scratch[..frame_samples];
            for (i, s) in chunk.iter_mut().enumerate() {
                let k = at + i;
                *s = if k < a.len() { a[k] } else { b[k - a.len()] };
            }
            each(chunk);
            at += frame_samples;
        }
        self.samples.clear();
    }
}

/// Where captured frames go: to the main loop while a turn streams, and into the pre-roll ring
/// otherwise, filled by the capture thread itself — so that between presses the main loop is
/// not woken 50 times a second only to keep the last few hundred milliseconds (issue 14).
///
/// The capture thread decides under the gate's lock, and sends under it too, so that the main
/// loop, opening or closing the gate under the same lock, sees every frame once and in order.
#[derive(Debug)]
pub struct CaptureGate(std::sync::Mutex<Gate>);

#[derive(Debug)]
struct Gate {
    streaming: bool,
    ring: PreRoll,
}

impl CaptureGate {
    /// A closed gate with a ring of `frames` frames of `frame_samples` samples.
    pub fn new(frames: usize, frame_samples: usize) -> Self {
        Self(std::sync::Mutex::new(Gate { streaming: false, ring: PreRoll::new(frames, frame_samples) }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a turn streams: the capture thread then reads frame by frame.
    pub fn streaming(&self) -> bool {
        self.lock().streaming
    }

    /// The capture thread's part: keeps `frame` in the ring while the gate is closed; while it
    /// is open, hands it to `send` (which must not block).
    pub fn take(&self, frame: &[i16], send: impl FnOnce()) {
        let mut gate = self.lock();
        if gate.streaming {
            send();
        } else {
            gate.ring.push(frame);
        }
    }

    /// A turn starts: frames go to the main loop from now on, and the ring's audio (the
    /// pre-roll) is moved into `into`, which is left with nothing older. Already open (a turn
    /// right after the last, before a frame closed the gate): the main loop's `into` and the
    /// frames queued for it are the pre-roll, and nothing changes.
    pub fn open(&self, into: &mut PreRoll) {
        let mut gate = self.lock();
        if gate.streaming {
            return;
        }
        gate.streaming = true;
        std::mem::swap(&mut gate.ring, into);
        gate.ring.clear();
    }

    /// No turn streams: the frames still queued (`queued` takes them) go into the ring in
    /// order, and the capture thread fills it from now on.
    pub fn close(&self, mut queued: impl FnMut() -> Option<super::FrameBuf>) {
        let mut gate = self.lock();
        while let Some(frame) = queued() {
            gate.ring.push(&frame);
        }
        gate.streaming = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_frames_and_drains_them_oldest_first() {
        let mut ring = PreRoll::new(3, 2);
        for f in 0..5i16 {
            ring.push(&[f * 10, f * 10 + 1]);
        }
        assert_eq!(ring.len(), 6);
        let mut out = Vec::new();
        let mut first = [0i16; 2];
        assert_eq!(ring.pop_frame(&mut first), Some(2));
        assert_eq!(first, [20, 21]);
        ring.drain_frames(2, |f| out.push(f.to_vec()));
        assert_eq!(out, [vec![30, 31], vec![40, 41]]);
        assert!(ring.is_empty());
        assert_eq!(ring.pop_frame(&mut first), None);
    }

    #[test]
    fn a_disabled_ring_keeps_nothing_and_capacity_never_grows() {
        let mut off = PreRoll::new(0, 320);
        off.push(&[1; 320]);
        assert!(off.is_empty());
        let mut ring = PreRoll::new(15, 320);
        let cap = ring.samples.capacity();
        for _ in 0..100 {
            ring.push(&[7; 320]);
        }
        assert_eq!(ring.samples.capacity(), cap, "pushing must not reallocate");
        assert_eq!(ring.len(), 15 * 320);
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    #[test]
    fn frames_go_to_the_ring_while_closed_to_the_main_loop_while_open_and_none_is_lost_or_reordered() {
        let gate = CaptureGate::new(3, 1);
        let mut sent = Vec::new();
        for f in 0..5i16 {
            gate.take(&[f], || sent.push(f));
        }
        assert!(sent.is_empty(), "closed: nothing for the main loop");
        let mut preroll = PreRoll::new(3, 1);
        preroll.push(&[99]);
        gate.open(&mut preroll);
        let mut held = Vec::new();
        preroll.drain_frames(1, |f| held.push(f[0]));
        assert_eq!(held, [2, 3, 4], "the last three frames, not the main loop's older one");
        gate.take(&[5], || sent.push(5));
        gate.take(&[6], || sent.push(6));
        assert_eq!(sent, [5, 6]);
        // Closed with frame 6 still queued: it goes into the ring before the next capture.
        let mut queue = vec![crate::audio::FrameBuf::from_slice(&[6]).unwrap()].into_iter();
        gate.close(|| queue.next());
        gate.take(&[7], || unreachable!("closed"));
        gate.open(&mut preroll);
        held.clear();
        preroll.drain_frames(1, |f| held.push(f[0]));
        assert_eq!(held, [6, 7]);
        gate.take(&[8], || sent.push(8));
        assert_eq!(sent, [5, 6, 8], "open again: frames go to the main loop");
        // Opened again while open: the main loop's pre-roll stays as it is.
        preroll.push(&[9]);
        gate.open(&mut preroll);
        assert_eq!(preroll.len(), 1);
    }
}
