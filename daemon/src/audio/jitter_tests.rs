//! Jitter buffer behaviour with synthetic time.

use super::*;

const FRAME: Duration = Duration::from_millis(20);
const RATE: u32 = 16_000;
const CFG: JitterConfig = JitterConfig {
    frame: FRAME,
    min_delay: Duration::from_millis(40),
    max_delay: Duration::from_millis(300),
    max_age: Duration::from_millis(200),
    capacity: 64,
};

fn ts(seq: u16) -> u32 {
    u32::from(seq) * 320
}

/// Pops everything available at `now`.
fn drain(jb: &mut JitterBuffer<u16>, now: Instant) -> Vec<Option<u16>> {
    std::iter::from_fn(|| jb.pop(now)).map(|p| if let Pop::Packet(s) = p { Some(s) } else { None }).collect()
}

#[test]
fn in_order_packets_play_in_order_once_the_target_is_buffered() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    jb.insert(0, ts(0), RATE, 0, t0);
    assert_eq!(jb.pop(t0), None, "one 20 ms packet is below the 40 ms target");
    jb.insert(1, ts(1), RATE, 1, t0);
    assert_eq!(drain(&mut jb, t0), [Some(0), Some(1)]);
    jb.insert(2, ts(2), RATE, 2, t0);
    jb.end();
    assert_eq!(drain(&mut jb, t0), [Some(2)]);
    assert!(jb.is_finished());
    assert_eq!(jb.stats().played, 3);
}

#[test]
fn a_single_packet_plays_after_the_target_delay() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    jb.insert(0, 0, RATE, 0, t0);
    assert_eq!(jb.pop(t0 + Duration::from_millis(39)), None);
    assert_eq!(jb.pop(t0 + Duration::from_millis(40)), Some(Pop::Packet(0)));
}

#[test]
fn reordered_packets_come_out_in_sequence() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    for seq in [1u16, 0, 3, 2, 4] {
        jb.insert(seq, ts(seq), RATE, seq, t0);
    }
    jb.end();
    assert_eq!(drain(&mut jb, t0), [Some(0), Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(jb.stats().late, 0);
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    for seq in [0u16, 1, 1, 2, 0] {
        jb.insert(seq, ts(seq), RATE, seq, t0);
    }
    jb.end();
    assert_eq!(drain(&mut jb, t0), [Some(0), Some(1), Some(2)]);
    assert_eq!(jb.stats().duplicates, 2);
}

#[test]
fn a_lost_packet_is_waited_for_up_to_max_age_then_concealed() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    for seq in [0u16, 1, 3, 4] {
        jb.insert(seq, ts(seq), RATE, seq, t0);
    }
    assert_eq!(drain(&mut jb, t0), [Some(0), Some(1)]);
    assert_eq!(jb.pop(t0 + Duration::from_millis(199)), None, "still waiting for 2");
    assert_eq!(jb.pop(t0 + Duration::from_millis(200)), Some(Pop::Conceal));
    assert_eq!(drain(&mut jb, t0 + Duration::from_millis(200)), [Some(3), Some(4)]);
    assert_eq!(jb.stats().concealed, 1);
}

#[test]
fn a_packet_later_than_max_age_is_dropped_as_late() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    for seq in [0u16, 1, 3] {
        jb.insert(seq, ts(seq), RATE, seq, t0);
    }
    let later = t0 + Duration::from_millis(250);
    assert_eq!(drain(&mut jb, later), [Some(0), Some(1), None, Some(3)]);
    jb.insert(2, ts(2), RATE, 2, later);
    assert_eq!(jb.stats().late, 1);
    assert_eq!(jb.pop(later), None);
}

#[test]
fn sequence_numbers_wrap_around_16_bits() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    let seqs = [65_533u16, 65_534, 65_535, 0, 1, 2];
    // Out of order across the wrap, too.
    for seq in [65_533u16, 65_535, 65_534, 1, 0, 2] {
        jb.insert(seq, u32::from(seq.wrapping_sub(65_533)) * 320, RATE, seq, t0);
    }
    jb.end();
    assert_eq!(drain(&mut jb, t0), seqs.map(Some));
    assert_eq!(unwrap_seq(0, 65_535), 65_536);
    assert_eq!(unwrap_seq(65_535, 65_536), 65_535);
    assert_eq!(unwrap_seq(5, 3 * 65_536 + 2), 3 * 65_536 + 5);
}

#[test]
fn a_burst_is_held_whole_and_played_without_loss() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    for seq in 0..50u16 {
        jb.insert(seq, ts(seq), RATE, seq, t0);
    }
    jb.end();
    assert_eq!(jb.pop(t0), Some(Pop::Packet(0)), "a burst longer than the target starts at once");
    assert_eq!(drain(&mut jb, t0).len(), 49);
    assert_eq!(jb.stats().target, CFG.min_delay, "a burst is not jitter");
    // A burst bigger than the ring overflows, counted.
    let mut small = JitterBuffer::new(JitterConfig { capacity: 8, ..CFG });
    for seq in 0..10u16 {
        small.insert(seq, ts(seq), RATE, seq, t0);
    }
    assert_eq!(small.stats().overflow, 2);
}

#[test]
fn running_dry_rebuffers_to_the_target() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    jb.insert(0, 0, RATE, 0, t0);
    jb.insert(1, ts(1), RATE, 1, t0);
    assert_eq!(drain(&mut jb, t0).len(), 2);
    assert_eq!(jb.stats().underruns, 1);
    let t1 = t0 + Duration::from_millis(100);
    jb.insert(2, ts(2), RATE, 2, t1);
    assert_eq!(jb.pop(t1), None);
    assert_eq!(jb.pop(t1 + Duration::from_millis(40)), Some(Pop::Packet(2)));
}

/// Packets sent every 20 ms arrive with up to ±`spread` ms of jitter; a consumer pulls every
/// 20 ms from the moment the buffer first releases one. Returns the stats at the end.
fn paced_run(spread: u64, packets: u16) -> JitterStats {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig { capacity: 256, ..CFG });
    let mut rng = fastrand::Rng::with_seed(7);
    let mut arrivals: Vec<(Instant, u16)> = (0..packets)
        .map(|seq| {
            let jitter = if spread == 0 { 0 } else { rng.u64(0..=2 * spread) };
            (t0 + FRAME * u32::from(seq) + Duration::from_millis(jitter), seq)
        })
        .collect();
    arrivals.sort();
    let (mut arrived, mut now, mut next_pull) = (0, t0, None::<Instant>);
    while jb.stats().played + jb.stats().concealed < u32::from(packets) && now < t0 + Duration::from_secs(60) {
        while arrived < arrivals.len() && arrivals[arrived].0 <= now {
            let seq = arrivals[arrived].1;
            jb.insert(seq, ts(seq), RATE, seq, now);
            arrived += 1;
        }
        if arrived == arrivals.len() {
            jb.end();
        }
        if next_pull.is_none_or(|t| now >= t) && jb.pop(now).is_some() {
            next_pull = Some(next_pull.unwrap_or(now) + FRAME);
        }
        now += Duration::from_millis(1);
    }
    jb.stats()
}

#[test]
fn the_target_adapts_to_jitter_and_the_added_delay_stays_near_it() {
    let steady = paced_run(0, 200);
    assert_eq!(steady.target, CFG.min_delay);
    assert_eq!((steady.played, steady.concealed, steady.late), (200, 0, 0));

    let jittery = paced_run(15, 300);
    assert!(jittery.target > CFG.min_delay, "jitter raises the target: {jittery:?}");
    assert_eq!(jittery.played + jittery.concealed, 300);
    // The mean time a packet waits stays within two frames of the target it adapted to.
    let (mean, target) = (jittery.delay_mean(), jittery.target);
    assert!(mean.abs_diff(target) <= 2 * FRAME, "mean delay {mean:?} vs target {target:?}");
    assert!(jittery.delay_max <= CFG.max_delay + 2 * FRAME, "{jittery:?}");
}

#[test]
fn reset_forgets_the_reply_but_not_the_jitter() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(CFG);
    jb.insert(5, ts(5), RATE, 5, t0);
    jb.end();
    jb.reset();
    assert!(!jb.is_finished());
    assert_eq!(jb.pop(t0), None);
    jb.insert(100, ts(100), RATE, 100, t0);
    jb.end();
    assert_eq!(drain(&mut jb, t0), [Some(100)]);
}

#[test]
fn slots_are_initialised_only_as_far_as_packets_reach_and_never_reallocated() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig { capacity: 6_000, ..CFG });
    let reserved = jb.slots.capacity();
    assert!(reserved >= 6_000 && jb.slots.is_empty(), "reserved, not touched");
    for seq in 0..90u16 {
        jb.insert(seq, ts(seq), RATE, seq, t0);
    }
    jb.end();
    assert_eq!(jb.slots.len(), 90, "a 1.8 s reply touches 90 slots");
    assert_eq!(drain(&mut jb, t0).len(), 90);
    // The next reply, from 0 again, and one that wraps the ring: still the same allocation.
    jb.reset();
    for seq in (5_990..6_010u16).chain(0..3) {
        jb.insert(seq, ts(seq), RATE, seq, t0);
    }
    assert_eq!(jb.slots.capacity(), reserved);
    assert_eq!(jb.slots.len(), 6_000);
}
