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
