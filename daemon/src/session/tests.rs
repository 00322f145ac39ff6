//! Every transition of the session state machine, with synthetic time.

use super::*;

const LIMITS: Limits = Limits {
    min_press: Duration::from_millis(150),
    max_turn: Duration::from_secs(30),
    reply_timeout: Duration::from_secs(10),
    max_reply: Duration::from_secs(60),
    ring_for: Duration::from_secs(20),
};

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

fn connected() -> (Session, Instant) {
    let mut s = Session::new(LIMITS);
    assert_eq!(s.handle(Event::LinkUp).as_slice(), [Action::Led(LedState::Idle)]);
    (s, Instant::now())
}

#[test]
fn a_whole_turn_goes_idle_listening_waiting_playing_idle() {
    let (mut s, t0) = connected();
    assert_eq!(
        s.handle(Event::Pressed(t0)).as_slice(),
        [Action::StartTurn(1), Action::Earcon(Earcon::Press), Action::Led(LedState::Listening)]
    );
    assert_eq!(s.streaming_turn(), Some(1));
    assert_eq!(s.next_deadline(), Some(t0 + LIMITS.max_turn));
    assert_eq!(
        s.handle(Event::Released(ms(t0, 2000))).as_slice(),
        [Action::EndTurn(1, EndReason::Released), Action::Earcon(Earcon::Release), Action::Led(LedState::Thinking)]
    );
    assert_eq!(s.state(), State::Waiting { turn: 1, since: ms(t0, 2000) });
    assert_eq!(s.streaming_turn(), None);
    assert_eq!(s.reply_turn(), Some(1));
    assert_eq!(s.handle(Event::ReplyStarted(1, t0)).as_slice(), [Action::Led(LedState::Speaking)]);
    assert!(s.handle(Event::ReplyAudio(1, ms(t0, 2100))).is_empty());
    assert!(s.handle(Event::ReplyEnded(1)).is_empty());
    assert_eq!(s.state(), State::Playing { turn: 1, reply_ended: true });
    assert_eq!(
        s.handle(Event::PlaybackFinished(1)).as_slice(),
        [Action::TurnDone(1, Outcome::Completed), Action::Led(LedState::Idle)]
    );
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.next_deadline(), None);
    // The next turn gets the next id.
    assert_eq!(s.handle(Event::Pressed(ms(t0, 5000)))[0], Action::StartTurn(2));
}

#[test]
fn a_press_shorter_than_the_minimum_is_cancelled() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    assert_eq!(
        s.handle(Event::Released(ms(t0, 149))).as_slice(),
        [Action::CancelTurn(1), Action::TurnDone(1, Outcome::TooShort), Action::Led(LedState::Idle)]
    );
    assert_eq!(s.state(), State::Idle);
    // Exactly the minimum counts as a real press.
    s.handle(Event::Pressed(ms(t0, 1000)));
    assert_eq!(s.handle(Event::Released(ms(t0, 1150)))[0], Action::EndTurn(2, EndReason::Released));
}

#[test]
fn the_maximum_turn_length_ends_the_turn_and_the_late_release_is_ignored() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    assert!(s.handle(Event::Tick(ms(t0, 29_999))).is_empty());
    assert_eq!(s.handle(Event::Tick(ms(t0, 30_000)))[0], Action::EndTurn(1, EndReason::MaxLength));
    assert_eq!(s.state(), State::Waiting { turn: 1, since: ms(t0, 30_000) });
    assert!(s.handle(Event::Released(ms(t0, 31_000))).is_empty());
}

#[test]
fn a_press_while_a_reply_plays_stops_it_and_starts_a_new_turn() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    s.handle(Event::Released(ms(t0, 1000)));
    s.handle(Event::ReplyStarted(1, t0));
    assert_eq!(
        s.handle(Event::Pressed(ms(t0, 1500))).as_slice(),
        [
            Action::StopPlayback,
            Action::CancelTurn(1),
            Action::TurnDone(1, Outcome::BargedIn),
            Action::StartTurn(2),
            Action::Earcon(Earcon::Press),
            Action::Led(LedState::Listening),
        ]
    );
    assert_eq!(s.streaming_turn(), Some(2));
    // Late news about the old turn changes nothing.
    assert!(s.handle(Event::PlaybackFinished(1)).is_empty());
    assert!(s.handle(Event::ReplyEnded(1)).is_empty());
    assert_eq!(s.streaming_turn(), Some(2));
}

#[test]
fn a_press_while_waiting_cancels_the_old_turn() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    s.handle(Event::Released(ms(t0, 1000)));
    let out = s.handle(Event::Pressed(ms(t0, 1200)));
    assert_eq!(out[..3], [Action::CancelTurn(1), Action::TurnDone(1, Outcome::BargedIn), Action::StartTurn(2)]);
}

#[test]
fn link_down_during_a_turn_gives_the_error_earcon_and_returns_to_idle() {
    for stage in 0..3 {
        let (mut s, t0) = connected();
        s.handle(Event::Pressed(t0));
        if stage >= 1 {
            s.handle(Event::Released(ms(t0, 1000)));
        }
        if stage >= 2 {
            s.handle(Event::ReplyStarted(1, t0));
        }
        let out = s.handle(Event::LinkDown);
        assert!(out.contains(&Action::Earcon(Earcon::Error)), "stage {stage}: {out:?}");
        assert!(out.contains(&Action::TurnDone(1, Outcome::LinkLost)), "stage {stage}: {out:?}");
        assert_eq!(out.last(), Some(&Action::Led(LedState::Disconnected)));
        assert_eq!(out.contains(&Action::StopPlayback), stage == 2);
        assert_eq!(s.state(), State::Idle);
        // The button still held when the link dropped is released later: nothing happens.
        assert!(s.handle(Event::Released(ms(t0, 3000))).is_empty());
    }
}

#[test]
fn a_reply_that_fully_arrived_keeps_playing_when_the_link_drops() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    s.handle(Event::Released(ms(t0, 1000)));
    s.handle(Event::ReplyStarted(1, t0));
    s.handle(Event::ReplyAudio(1, ms(t0, 1100)));
    s.handle(Event::ReplyEnded(1));
    assert_eq!(s.handle(Event::LinkDown).as_slice(), [Action::Led(LedState::Disconnected)]);
    assert_eq!(
        s.handle(Event::PlaybackFinished(1)).as_slice(),
        [Action::TurnDone(1, Outcome::Completed), Action::Led(LedState::Disconnected)]
    );
}

#[test]
fn a_press_while_disconnected_is_refused_and_reconnecting_is_announced() {
    let mut s = Session::new(LIMITS);
    let t0 = Instant::now();
    assert_eq!(
        s.handle(Event::Pressed(t0)).as_slice(),
        [Action::Earcon(Earcon::Error), Action::Led(LedState::Disconnected)]
    );
    assert_eq!(s.state(), State::Idle);
    // The first connection is not a "re"-connection.
    assert_eq!(s.handle(Event::LinkUp).as_slice(), [Action::Led(LedState::Idle)]);
    s.handle(Event::LinkDown);
    assert_eq!(s.handle(Event::LinkUp).as_slice(), [Action::Earcon(Earcon::Reconnected), Action::Led(LedState::Idle)]);
}

#[test]
fn no_reply_start_within_the_timeout_fails_the_turn() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    s.handle(Event::Released(ms(t0, 1000)));
    assert_eq!(s.next_deadline(), Some(ms(t0, 11_000)));
    assert!(s.handle(Event::Tick(ms(t0, 10_999))).is_empty());
    let out = s.handle(Event::Tick(ms(t0, 11_000)));
    assert_eq!(
        out.as_slice(),
        [
            Action::CancelTurn(1),
            Action::Earcon(Earcon::Error),
            Action::TurnDone(1, Outcome::ReplyTimeout),
            Action::Led(LedState::Error)
        ]
    );
}

#[test]
fn a_reply_end_without_audio_ends_the_turn() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    s.handle(Event::Released(ms(t0, 1000)));
    assert_eq!(s.handle(Event::ReplyEnded(1))[0], Action::TurnDone(1, Outcome::NoReply));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn server_errors_fail_the_current_turn_only() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    // An error about another turn does not end this one.
    assert_eq!(s.handle(Event::ServerError(Some(7))).as_slice(), [Action::Earcon(Earcon::Error)]);
    assert_eq!(s.streaming_turn(), Some(1));
    let out = s.handle(Event::ServerError(Some(1)));
    assert!(out.contains(&Action::TurnDone(1, Outcome::ServerError)));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn stray_events_in_idle_do_nothing() {
    let (mut s, t0) = connected();
    for e in [
        Event::Released(t0),
        Event::ReplyStarted(1, t0),
        Event::ReplyEnded(1),
        Event::PlaybackFinished(1),
        Event::Tick(t0),
    ] {
        assert!(s.handle(e).is_empty(), "{e:?}");
    }
}

#[test]
fn a_turn_with_no_words_in_it_gets_its_own_earcon_and_no_error_light() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    s.handle(Event::Released(ms(t0, 1000)));
    assert_eq!(
        s.handle(Event::NotUnderstood(1)).as_slice(),
        [
            Action::Earcon(Earcon::NotUnderstood),
            Action::TurnDone(1, Outcome::NotUnderstood),
            Action::Led(LedState::Idle)
        ]
    );
    assert_eq!(s.state(), State::Idle);
    // A late report about a turn that is over changes nothing.
    assert!(s.handle(Event::NotUnderstood(1)).is_empty());
}

/// Issue 11.3: Home Assistant's own end-of-speech detection while the button is still held.
#[test]
fn the_server_ending_the_listening_moves_to_waiting_and_the_reply_is_taken() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    assert_eq!(
        s.handle(Event::InputClosed(1, ms(t0, 1200))).as_slice(),
        [Action::EndTurn(1, EndReason::ServerEnded), Action::Earcon(Earcon::Release), Action::Led(LedState::Thinking)]
    );
    assert_eq!(s.state(), State::Waiting { turn: 1, since: ms(t0, 1200) });
    // The release that follows changes nothing; the reply plays.
    assert!(s.handle(Event::Released(ms(t0, 3000))).is_empty());
    assert_eq!(s.handle(Event::ReplyStarted(1, ms(t0, 3100))).as_slice(), [Action::Led(LedState::Speaking)]);
    s.handle(Event::ReplyAudio(1, ms(t0, 3100)));
    s.handle(Event::ReplyEnded(1));
    assert_eq!(s.handle(Event::PlaybackFinished(1))[0], Action::TurnDone(1, Outcome::Completed));
}

#[test]
fn a_reply_that_starts_while_the_button_is_held_ends_the_listening_and_plays() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    assert_eq!(
        s.handle(Event::ReplyStarted(1, ms(t0, 900))).as_slice(),
        [
            Action::EndTurn(1, EndReason::ServerEnded),
            Action::Earcon(Earcon::Release),
            Action::Led(LedState::Thinking),
            Action::Led(LedState::Speaking)
        ]
    );
    assert_eq!(s.state(), State::Playing { turn: 1, reply_ended: false });
    assert_eq!(s.streaming_turn(), None);
}

/// Issue 11.6: a run that ends before the button is released is over at once, not 15 s later.
#[test]
fn the_server_ending_the_turn_while_the_button_is_held_ends_it_now() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    assert_eq!(
        s.handle(Event::ReplyEnded(1)).as_slice(),
        [Action::CancelTurn(1), Action::TurnDone(1, Outcome::NoReply), Action::Led(LedState::Idle)]
    );
    assert_eq!(s.state(), State::Idle);
    assert!(s.handle(Event::Released(ms(t0, 2000))).is_empty());
}

/// Issue 11.6: a reply whose audio stops coming, or never ends, is ended in bounded time.
#[test]
fn a_stalled_or_endless_reply_is_ended_in_bounded_time() {
    let playing = |s: &mut Session, t0| {
        s.handle(Event::Pressed(t0));
        s.handle(Event::Released(ms(t0, 1000)));
        s.handle(Event::ReplyStarted(1, ms(t0, 1100)));
    };
    // Stalled: audio until 3 s, then nothing; ended reply_timeout after the last audio.
    let (mut s, t0) = connected();
    playing(&mut s, t0);
    s.handle(Event::ReplyAudio(1, ms(t0, 3000)));
    assert_eq!(s.next_deadline(), Some(ms(t0, 13_000)));
    assert!(s.handle(Event::Tick(ms(t0, 12_999))).is_empty());
    let out = s.handle(Event::Tick(ms(t0, 13_000)));
    assert!(out.contains(&Action::StopPlayback) && out.contains(&Action::CancelTurn(1)), "{out:?}");
    assert!(out.contains(&Action::TurnDone(1, Outcome::ReplyStalled)), "{out:?}");
    assert_eq!(s.state(), State::Idle);

    // Endless: audio keeps coming and never ends; cut off max_reply after the turn ended.
    let (mut s, t0) = connected();
    playing(&mut s, t0);
    for at in (1100..61_000).step_by(5_000) {
        s.handle(Event::ReplyAudio(1, ms(t0, at)));
        assert!(s.handle(Event::Tick(ms(t0, at))).is_empty());
    }
    assert_eq!(s.next_deadline(), Some(ms(t0, 61_000)));
    assert!(s.handle(Event::Tick(ms(t0, 61_000))).contains(&Action::TurnDone(1, Outcome::ReplyTooLong)));

    // A reply that fully arrived is not "stalled", but is still bounded by max_reply.
    let (mut s, t0) = connected();
    playing(&mut s, t0);
    s.handle(Event::ReplyEnded(1));
    assert!(s.handle(Event::Tick(ms(t0, 30_000))).is_empty());
    assert_eq!(s.next_deadline(), Some(ms(t0, 61_000)));
}

/// Issue 11.11: a reply that played nothing of this turn is not "Completed".
#[test]
fn a_reply_without_audio_for_the_turn_is_no_reply() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    s.handle(Event::Released(ms(t0, 1000)));
    s.handle(Event::ReplyStarted(1, ms(t0, 1100)));
    s.handle(Event::ReplyAudio(2, ms(t0, 1200)));
    s.handle(Event::ReplyEnded(1));
    assert_eq!(s.handle(Event::PlaybackFinished(1))[0], Action::TurnDone(1, Outcome::NoReply));
}

#[test]
fn a_failed_turn_shows_the_error_for_a_while_then_the_idle_light() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    s.handle(Event::Released(ms(t0, 1000)));
    let out = s.handle(Event::ServerError(Some(1)));
    assert_eq!(out.last(), Some(&Action::Led(LedState::Error)));
    assert_eq!(s.after_error(), Some((ERROR_SHOWN, LedState::Idle)));
}

#[test]
fn a_device_fault_shows_the_error_then_the_light_of_what_the_session_is_doing() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    assert_eq!(s.handle(Event::DeviceFault).as_slice(), [Action::Led(LedState::Error)]);
    assert_eq!(s.after_error(), Some((ERROR_SHOWN, LedState::Listening)), "still listening");
    assert_eq!(s.state(), State::Listening { turn: 1, since: t0 }, "a retried device does not end the turn");
}

#[test]
fn refused_credentials_keep_the_error_light_until_the_link_is_up() {
    let (mut s, t0) = connected();
    s.handle(Event::Pressed(t0));
    let out = s.handle(Event::CredentialsRefused);
    assert!(out.contains(&Action::TurnDone(1, Outcome::LinkLost)), "{out:?}");
    assert_eq!(out.last(), Some(&Action::Led(LedState::Error)));
    assert_eq!(s.after_error(), None, "the error stays");
    // A press while refused: the error tones, and the error light, not "disconnected".
    let press = s.handle(Event::Pressed(ms(t0, 5000)));
    assert_eq!(press.as_slice(), [Action::Earcon(Earcon::Error), Action::Led(LedState::Error)]);
    // The link coming back (a new token) ends it.
    assert_eq!(s.handle(Event::LinkUp).as_slice(), [Action::Earcon(Earcon::Reconnected), Action::Led(LedState::Idle)]);
    assert_eq!(s.after_error(), Some((ERROR_SHOWN, LedState::Idle)));
    // A later plain failure to connect is "disconnected" again, not an error.
    assert_eq!(s.handle(Event::LinkDown).as_slice(), [Action::Led(LedState::Disconnected)]);
}

#[test]
fn an_announcement_plays_as_a_reply_and_cuts_short_the_turn_in_progress() {
    let (mut s, t0) = connected();
    let announcement = crate::link::SERVER_TURNS;
    assert_eq!(s.handle(Event::Announced(announcement, t0)).as_slice(), [Action::Led(LedState::Thinking)]);
    assert_eq!(s.handle(Event::ReplyStarted(announcement, t0)).as_slice(), [Action::Led(LedState::Speaking)]);
    s.handle(Event::ReplyAudio(announcement, ms(t0, 100)));
    s.handle(Event::ReplyEnded(announcement));
    assert_eq!(
        s.handle(Event::PlaybackFinished(announcement)).as_slice(),
        [Action::TurnDone(announcement, Outcome::Completed), Action::Led(LedState::Idle)]
    );

    // One that arrives while the user's reply plays stops it.
    s.handle(Event::Pressed(ms(t0, 1000)));
    s.handle(Event::Released(ms(t0, 2000)));
    s.handle(Event::ReplyStarted(1, ms(t0, 2100)));
    assert_eq!(
        s.handle(Event::Announced(announcement + 1, ms(t0, 2200))).as_slice(),
        [
            Action::StopPlayback,
            Action::CancelTurn(1),
            Action::TurnDone(1, Outcome::BargedIn),
            Action::Led(LedState::Thinking)
        ]
    );
    // Its audio is bounded like a reply's: none within the reply timeout fails it.
    assert_eq!(s.next_deadline(), Some(ms(t0, 2200) + LIMITS.reply_timeout));
}

#[test]
fn the_server_may_ask_to_listen_only_while_nothing_else_happens() {
    let (mut s, t0) = connected();
    assert_eq!(
        s.handle(Event::ListenRequested(t0)).as_slice(),
        [Action::StartTurn(1), Action::Earcon(Earcon::Press), Action::Led(LedState::Listening)]
    );
    // No button is held: the server's voice detection ends the turn ...
    assert_eq!(s.handle(Event::InputClosed(1, ms(t0, 3000)))[0], Action::EndTurn(1, EndReason::ServerEnded));
    // ... and a second request while a turn is in progress is not a second turn.
    assert!(s.handle(Event::ListenRequested(ms(t0, 3100))).is_empty());
    s.handle(Event::ReplyEnded(1));
    assert_eq!(s.state(), State::Idle);
    // Down, it cannot listen.
    s.handle(Event::LinkDown);
    assert!(s.handle(Event::ListenRequested(ms(t0, 5000))).is_empty());
}

#[test]
fn a_running_timer_shows_on_the_idle_light_and_a_finished_one_rings_until_a_press() {
    let (mut s, t0) = connected();
    assert_eq!(s.handle(Event::TimerRunning(true)).as_slice(), [Action::Led(LedState::TimerRunning)]);
    assert_eq!(
        s.handle(Event::TimerFinished(t0)).as_slice(),
        [Action::Earcon(Earcon::Alarm), Action::Led(LedState::TimerRinging)]
    );
    assert_eq!(s.next_deadline(), Some(t0 + RING_EVERY));
    assert_eq!(s.handle(Event::Tick(t0 + RING_EVERY)).as_slice(), [Action::Earcon(Earcon::Alarm)]);
    // The press silences it and starts no turn; its release is nothing either.
    assert_eq!(s.handle(Event::Pressed(ms(t0, 2500))).as_slice(), [Action::Led(LedState::TimerRunning)]);
    assert!(s.handle(Event::Released(ms(t0, 2600))).is_empty());
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.handle(Event::TimerRunning(false)).as_slice(), [Action::Led(LedState::Idle)]);
}

#[test]
fn a_timer_nobody_answers_stops_ringing_after_its_time() {
    let (mut s, t0) = connected();
    s.handle(Event::TimerFinished(t0));
    let mut alarms = 1;
    let mut now = t0;
    for _ in 0..100 {
        let Some(next) = s.next_deadline() else { break };
        now = next;
        alarms += s.handle(Event::Tick(now)).iter().filter(|a| **a == Action::Earcon(Earcon::Alarm)).count();
    }
    assert_eq!(now, t0 + LIMITS.ring_for);
    assert_eq!(alarms, 10, "every 2 s for 20 s");
    assert_eq!(s.next_deadline(), None);
    // A turn goes on as usual while a timer rings; the alarm keeps sounding over it.
    s.handle(Event::TimerFinished(now));
    s.handle(Event::Pressed(now));
    assert_eq!(s.state(), State::Idle, "the first press only silences the alarm");
    assert_eq!(s.handle(Event::Pressed(now))[0], Action::StartTurn(1));
}
