//! pivox protocol v1 on the wire (the full description is `docs/protocol.md`).
//!
//! Control messages are JSON text frames with a `type` field. Audio travels in binary
//! frames: a 7-byte header (turn tag, sequence number, sample timestamp; big-endian)
//! followed by one encoded frame. Everything here is pure: parse and build, no I/O.

use serde::{Deserialize, Serialize};

use super::{EndReason, TurnId};
use crate::audio::codec::Codec;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Bytes before the payload in an audio frame.
pub const HEADER_LEN: usize = 7;

/// The largest binary frame either side accepts: 100 ms of PCM plus the header, rounded up.
pub const MAX_AUDIO_FRAME: usize = 4096;

/// The largest text message either side accepts.
pub const MAX_TEXT: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// Client → server, first message: what the client can do.
    Hello { version: u32, client: String, codecs: Vec<Codec>, sample_rate: u32, frame_ms: u32 },
    /// Server → client, answer to `hello`: the codec both directions use.
    Welcome { version: u32, server: String, codec: Codec, sample_rate: u32, frame_ms: u32 },
    /// Client → server: a turn begins; audio frames tagged with it follow.
    TurnStart { turn: TurnId, preroll_ms: u32 },
    /// Client → server: the utterance is complete; `frames` audio frames were sent.
    TurnEnd { turn: TurnId, reason: WireEndReason, frames: u32 },
    /// Client → server: forget the turn (mis-press, barge-in, timeout); send no reply.
    TurnCancel { turn: TurnId },
    /// Server → client: reply audio for `turn` follows.
    ReplyStart { turn: TurnId },
    /// Server → client: the reply is complete; `frames` audio frames were sent.
    ReplyEnd { turn: TurnId, frames: u32 },
    /// Server → client, optional: what the server heard.
    Transcript { turn: TurnId, text: String },
    /// Server → client, optional: the reply as text.
    ReplyText { turn: TurnId, text: String },
    /// Either way: something went wrong; `turn` when it concerns one turn.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn: Option<TurnId>,
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireEndReason {
    Released,
    MaxLength,
    /// The server replied (or stopped listening) while the button was still held.
    ServerEnded,
}

impl From<EndReason> for WireEndReason {
    fn from(r: EndReason) -> Self {
        match r {
            EndReason::Released => WireEndReason::Released,
            EndReason::MaxLength => WireEndReason::MaxLength,
            EndReason::ServerEnded => WireEndReason::ServerEnded,
        }
    }
}

impl Message {
    pub fn to_json(&self) -> String {
        // Serializing these plain enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Self, FrameError> {
        if text.len() > MAX_TEXT {
            return Err(FrameError::TooLong { len: text.len(), max: MAX_TEXT });
        }
        serde_json::from_str(text).map_err(|e| {
            // Tell a well-formed message of an unknown type apart from broken JSON.
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => match v.get("type").and_then(|t| t.as_str()) {
                    Some(t) if !KNOWN_TYPES.contains(&t) => FrameError::UnknownType(t.chars().take(40).collect()),
                    _ => FrameError::BadMessage(e.to_string()),
                },
                Err(_) => FrameError::BadJson(e.to_string()),
            }
        })
    }
}

const KNOWN_TYPES: &[&str] = &[
    "hello",
    "welcome",
    "turn_start",
    "turn_end",
    "turn_cancel",
    "reply_start",
    "reply_end",
    "transcript",
    "reply_text",
    "error",
];

/// The fixed part of every binary audio frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioHeader {
    /// The low 8 bits of the turn id the frame belongs to.
    pub turn_tag: u8,
    /// Frame counter within the turn (or reply), from 0, wrapping at 65536.
    pub seq: u16,
    /// Position of the frame's first sample, in samples at the codec rate, from 0 at turn start.
    pub timestamp: u32,
}

impl AudioHeader {
    pub fn tag(turn: TurnId) -> u8 {
        turn as u8
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = self.turn_tag;
        out[1..3].copy_from_slice(&self.seq.to_be_bytes());
        out[3..7].copy_from_slice(&self.timestamp.to_be_bytes());
        out
    }

    /// Splits a binary frame into its header and payload.
    pub fn parse(frame: &[u8]) -> Result<(AudioHeader, &[u8]), FrameError> {
        if frame.len() > MAX_AUDIO_FRAME {
            return Err(FrameError::TooLong { len: frame.len(), max: MAX_AUDIO_FRAME });
        }
        if frame.len() <= HEADER_LEN {
            return Err(FrameError::Truncated(frame.len()));
        }
        let header = AudioHeader {
            turn_tag: frame[0],
            seq: u16::from_be_bytes([frame[1], frame[2]]),
            timestamp: u32::from_be_bytes([frame[3], frame[4], frame[5], frame[6]]),
        };
        Ok((header, &frame[HEADER_LEN..]))
    }
}

/// A frame or message that breaks the protocol. Never fatal by itself: the receiver logs
/// it, answers with an `error` message where that helps, and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not JSON: {0}")]
    BadJson(String),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("malformed message: {0}")]
    BadMessage(String),
    #[error("audio frame of {0} bytes is shorter than its header plus one byte")]
    Truncated(usize),
    #[error("{len} bytes is over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
}

impl FrameError {
    /// The `code` of the `error` message a receiver answers with.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::BadJson(_) | FrameError::BadMessage(_) => "bad_message",
            FrameError::UnknownType(_) => "unknown_type",
            FrameError::Truncated(_) => "truncated_frame",
            FrameError::TooLong { .. } => "too_long",
        }
    }
}

/// Bytes a WebSocket frame with `payload` bytes takes on the wire (RFC 6455 §5.2):
/// 2 header bytes, 2 or 8 more for longer payloads, and a 4-byte mask from a client.
pub fn ws_frame_len(payload: usize, from_client: bool) -> usize {
    let length_bytes = match payload {
        0..=125 => 0,
        126..=65_535 => 2,
        _ => 8,
    };
    2 + length_bytes + if from_client { 4 } else { 0 } + payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<Message> {
        vec![
            Message::Hello {
                version: 1,
                client: "pivox/0.1.0".into(),
                codecs: vec![Codec::Opus, Codec::Pcm],
                sample_rate: 16_000,
                frame_ms: 20,
            },
            Message::Welcome { version: 1, server: "ref".into(), codec: Codec::Pcm, sample_rate: 16_000, frame_ms: 20 },
            Message::TurnStart { turn: 3, preroll_ms: 300 },
            Message::TurnEnd { turn: 3, reason: WireEndReason::MaxLength, frames: 1500 },
            Message::TurnCancel { turn: 3 },
            Message::ReplyStart { turn: 3 },
            Message::ReplyEnd { turn: 3, frames: 90 },
            Message::Transcript { turn: 3, text: "turn on the lights".into() },
            Message::ReplyText { turn: 3, text: "Done — «lights on»".into() },
            Message::Error { turn: Some(3), code: "busy".into(), message: "try later".into() },
            Message::Error { turn: None, code: "bad_message".into(), message: "x".into() },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in all_messages() {
            let json = m.to_json();
            assert_eq!(Message::from_json(&json).unwrap(), m, "{json}");
        }
        assert_eq!(Message::TurnCancel { turn: 9 }.to_json(), r#"{"type":"turn_cancel","turn":9}"#);
    }

    #[test]
    fn bad_messages_are_classified() {
        assert!(matches!(Message::from_json("{not json"), Err(FrameError::BadJson(_))));
        assert_eq!(Message::from_json(r#"{"type":"dance"}"#), Err(FrameError::UnknownType("dance".into())));
        assert!(matches!(Message::from_json(r#"{"type":"turn_start"}"#), Err(FrameError::BadMessage(_))));
        assert!(matches!(
            Message::from_json(r#"{"type":"turn_start","turn":-1,"preroll_ms":0}"#),
            Err(FrameError::BadMessage(_))
        ));
        assert!(matches!(Message::from_json(r#"[1,2]"#), Err(FrameError::BadMessage(_))));
        let huge = format!(r#"{{"type":"transcript","turn":1,"text":"{}"}}"#, "a".repeat(MAX_TEXT));
        assert!(matches!(Message::from_json(&huge), Err(FrameError::TooLong { .. })));
        assert_eq!(FrameError::UnknownType("x".into()).code(), "unknown_type");
    }

    #[test]
    fn audio_header_round_trips_and_bad_frames_are_errors() {
        let header = AudioHeader { turn_tag: AudioHeader::tag(0x1_05), seq: 65_535, timestamp: 0xDEAD_BEEF };
        assert_eq!(header.turn_tag, 5);
        let mut frame = [0u8; HEADER_LEN + 3];
        frame[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        frame[HEADER_LEN..].copy_from_slice(&[1, 2, 3]);
        assert_eq!(frame[..HEADER_LEN], [5, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(AudioHeader::parse(&frame).unwrap(), (header, &[1u8, 2, 3][..]));
        assert_eq!(AudioHeader::parse(&frame[..HEADER_LEN]), Err(FrameError::Truncated(HEADER_LEN)));
        assert_eq!(AudioHeader::parse(&[]), Err(FrameError::Truncated(0)));
        let big = vec![0u8; MAX_AUDIO_FRAME + 1];
        assert_eq!(
            AudioHeader::parse(&big),
            Err(FrameError::TooLong { len: MAX_AUDIO_FRAME + 1, max: MAX_AUDIO_FRAME })
        );
    }

    #[test]
    fn websocket_framing_overhead() {
        assert_eq!(ws_frame_len(67, true), 2 + 4 + 67);
        assert_eq!(ws_frame_len(67, false), 2 + 67);
        assert_eq!(ws_frame_len(647, true), 4 + 4 + 647);
        assert_eq!(ws_frame_len(70_000, false), 10 + 70_000);
    }
}
