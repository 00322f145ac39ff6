//! The HA run state machine, input by input, like the session's tests.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

/// The actions of one input, in a buffer of their own.
trait Feed {
    fn feed(&mut self, input: Input, now: Instant) -> Actions;
}

impl Feed for Run {
    fn feed(&mut self, input: Input, now: Instant) -> Actions {
        let mut out = Actions::new();
        Run::handle(self, input, now, &mut out);
        out
    }
}

fn pcm(n: u8) -> Bytes {
    Bytes::from(vec![n; 640])
}

fn tts() -> TtsOutput {
    TtsOutput { url: "/api/tts_proxy/a.mp3".into(), mime_type: Some("audio/mpeg".into()) }
}

fn started(handler: u8) -> Input {
    Input::Started { handler: Ok(handler), stream_response: false, tts: Some(tts()) }
}

fn writes(actions: &[Action]) -> Vec<(u8, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write { handler, payload } => Some((*handler, payload.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn audio_before_run_start_is_held_then_sent_in_order_with_the_end_marker() {
    let t0 = Instant::now();
    let mut run = Run::new(7, 1);
    assert!(run.feed(Input::Audio(pcm(1)), t0).is_empty());
    assert!(run.feed(Input::Audio(pcm(2)), t0).is_empty());
    assert!(run.feed(Input::EndAudio, t0).is_empty(), "no end marker before HA gave a handler");
    let out = run.feed(started(3), t0);
    assert_eq!(writes(&out), [(3, 640), (3, 640), (3, 0)]);
    assert_eq!(out[1], Action::Emit(Event::FirstAudioSent { turn: 1, at: t0 }));
    assert_eq!(out.last(), Some(&Action::Emit(Event::EndSent { turn: 1, at: t0, frames: 2 })));
    assert!(run.feed(Input::Audio(pcm(4)), t0).is_empty(), "nothing after the end");
}

#[test]
fn live_audio_goes_out_with_the_handler_and_the_first_frame_is_reported_once() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 4);
    run.feed(started(9), t0);
    let first = run.feed(Input::Audio(pcm(1)), t0);
    assert_eq!(writes(&first), [(9, 640)]);
    assert!(first.contains(&Action::Emit(Event::FirstAudioSent { turn: 4, at: t0 })));
    assert_eq!(run.feed(Input::Audio(pcm(2)), t0).len(), 1);
    assert!(run.feed(Input::Audio(Bytes::new()), t0).is_empty(), "an empty packet would end the audio");
}

#[test]
fn ha_ending_the_speech_closes_the_input_and_reports_the_frames_it_took() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 2);
    run.feed(started(1), t0);
    run.feed(Input::Audio(pcm(1)), t0);
    let out = run.feed(Input::SpeechEnded { transcript: Some("lights on".into()) }, t0);
    assert_eq!(
        out,
        [
            Action::Emit(Event::InputClosed { turn: 2, at: t0, frames: 1 }),
            Action::Emit(Event::Transcript { turn: 2, text: "lights on".into() }),
        ]
    );
    assert!(run.feed(Input::Audio(pcm(2)), t0).is_empty());
    assert!(run.feed(Input::EndAudio, t0).is_empty(), "no end marker after HA stopped listening");
}

#[test]
fn the_reply_is_fetched_once_and_the_run_is_done_at_its_end() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 1);
    run.feed(started(1), t0);
    run.feed(Input::TtsStarted { key: Some("engine|en|hello".into()) }, t0);
    let out = run.feed(Input::TtsEnded { tts: None }, t0);
    assert_eq!(out, [Action::FetchReply { tts: tts(), key: Some("engine|en|hello".into()) }]);
    assert!(run.feed(Input::TtsEnded { tts: None }, t0).is_empty(), "fetched once");
    assert_eq!(run.feed(Input::RunEnded, t0), [Action::Done]);
}

#[test]
fn a_streamed_answer_starts_playing_at_intent_progress() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 1);
    run.feed(Input::Started { handler: Ok(1), stream_response: true, tts: Some(tts()) }, t0);
    assert!(matches!(run.feed(Input::TtsStreaming, t0)[..], [Action::FetchReply { .. }]));
}

#[test]
fn a_run_that_ends_quietly_waits_for_a_late_error_then_ends_without_a_reply() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 5);
    run.feed(started(1), t0);
    assert!(run.feed(Input::RunEnded, t0).is_empty());
    assert_eq!(run.deadline(), Some(t0 + RUN_END_GRACE));
    assert!(run.feed(Input::Tick, t0 + Duration::from_millis(299)).is_empty());
    assert_eq!(run.feed(Input::Tick, t0 + RUN_END_GRACE), [Action::Emit(Event::ReplyEnd { turn: 5 }), Action::Done]);

    // HA's run timeout: its `error` comes after `run-end`, within the grace.
    let mut late = Run::new(2, 6);
    late.feed(started(1), t0);
    late.feed(Input::RunEnded, t0);
    let error = ErrorData { code: "timeout".into(), message: "too slow".into() };
    let out = late.feed(Input::Error(error.clone()), t0);
    assert_eq!(out, [Action::StopReply, Action::Fail(error), Action::Done]);
}

#[test]
fn an_error_is_reported_once_and_closes_the_input() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 1);
    run.feed(started(1), t0);
    let error = ErrorData { code: "stt-no-text-recognized".into(), message: String::new() };
    assert_eq!(run.feed(Input::Error(error.clone()), t0), [Action::StopReply, Action::Fail(error.clone())]);
    assert!(run.feed(Input::Error(error), t0).is_empty());
    assert!(run.feed(Input::Audio(pcm(1)), t0).is_empty());
    assert_eq!(run.feed(Input::RunEnded, t0), [Action::Done]);
}

#[test]
fn a_cancelled_run_ends_its_audio_and_reports_nothing_more() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 1);
    run.feed(Input::Audio(pcm(1)), t0);
    assert_eq!(run.feed(Input::Cancel, t0), [Action::StopReply]);
    assert!(!run.live());
    // HA starts the run after all: the held audio is gone, the end marker lets it finish.
    assert_eq!(writes(&run.feed(started(2), t0)), [(2, 0)]);
    assert!(run.feed(Input::SpeechEnded { transcript: Some("x".into()) }, t0).is_empty());
    assert!(run.feed(Input::Answered { speech: Some("y".into()) }, t0).is_empty());
    assert!(run.feed(Input::TtsEnded { tts: Some(tts()) }, t0).is_empty(), "no reply for a cancelled turn");
    let error = ErrorData { code: "timeout".into(), message: String::new() };
    assert_eq!(run.feed(Input::Error(error), t0), [Action::StopReply]);
}

#[test]
fn no_handler_or_no_reply_url_fails_the_run_with_its_reason() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 1);
    let out = run.feed(Input::Started { handler: Err("no stt handler".into()), stream_response: false, tts: None }, t0);
    assert_eq!(
        out,
        [Action::StopReply, Action::Fail(ErrorData { code: "no-stt".into(), message: "no stt handler".into() })]
    );

    let mut run = Run::new(2, 2);
    run.feed(Input::Started { handler: Ok(1), stream_response: false, tts: None }, t0);
    let out = run.feed(Input::TtsEnded { tts: None }, t0);
    assert!(matches!(&out[..], [Action::StopReply, Action::Fail(e)] if e.code == "tts-failed"), "{out:?}");
}

#[test]
fn held_audio_is_bounded() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 1);
    let big = Bytes::from(vec![0u8; MAX_HELD_AUDIO / 2]);
    run.feed(Input::Audio(big.clone()), t0);
    run.feed(Input::Audio(big.clone()), t0);
    run.feed(Input::Audio(big), t0);
    let out = run.feed(started(1), t0);
    assert_eq!(writes(&out).len(), 2, "the packet past the bound was dropped");
}

#[test]
fn a_run_cancelled_during_its_end_grace_is_done_at_once() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 1);
    run.feed(started(1), t0);
    run.feed(Input::EndAudio, t0);
    run.feed(Input::RunEnded, t0);
    assert_eq!(run.feed(Input::Cancel, t0), [Action::StopReply, Action::Done]);
}

#[test]
fn a_run_that_failed_before_run_start_takes_no_audio_after_it() {
    let t0 = Instant::now();
    let mut run = Run::new(1, 1);
    let error = ErrorData { code: "pipeline-not-found".into(), message: String::new() };
    run.feed(Input::Error(error), t0);
    assert!(run.feed(started(2), t0).is_empty(), "no held audio, no end marker for a failed run");
    assert!(run.feed(Input::Audio(pcm(1)), t0).is_empty());
}
