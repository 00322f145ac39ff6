//! How a turn ended: the session's verdict, named the same in the metrics and the logs.

use std::time::Duration;

use super::Limits;

/// How a turn ended, for metrics and for `--turns`; its name in the metrics is the variant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// The reply was played to the end.
    Completed,
    /// The server ended the turn without a reply.
    NoReply,
    /// Released before the minimum press length.
    TooShort,
    /// A new press cut the turn short.
    BargedIn,
    LinkLost,
    ReplyTimeout,
    /// The reply's audio stopped coming for `reply_timeout` before its end.
    ReplyStalled,
    /// The reply was still playing `max_reply` after the turn ended.
    ReplyTooLong,
    ServerError,
    /// The server recognised no words.
    NotUnderstood,
}

impl Outcome {
    /// The outcome's name, as the metrics and the turn's log line show it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Completed => "Completed",
            Outcome::NoReply => "NoReply",
            Outcome::TooShort => "TooShort",
            Outcome::BargedIn => "BargedIn",
            Outcome::LinkLost => "LinkLost",
            Outcome::ReplyTimeout => "ReplyTimeout",
            Outcome::ReplyStalled => "ReplyStalled",
            Outcome::ReplyTooLong => "ReplyTooLong",
            Outcome::ServerError => "ServerError",
            Outcome::NotUnderstood => "NotUnderstood",
        }
    }

    /// Why the session itself ended a turn that failed, for that turn's one log line. `None`
    /// for outcomes that are no fault (completed, barge-in, too short, nothing heard, no reply)
    /// and for those whose cause is logged where it happens (a lost link, a server's error).
    pub fn fault(self, limits: &Limits) -> Option<String> {
        let secs = |d: Duration| format!("{:.0} s", d.as_secs_f64());
        Some(match self {
            Outcome::ReplyTimeout => format!("no reply within {} of the end of the turn", secs(limits.reply_timeout)),
            Outcome::ReplyStalled => {
                format!("the reply stopped arriving for {} before its end", secs(limits.reply_timeout))
            }
            Outcome::ReplyTooLong => {
                format!("the reply was cut off after {} (session.max_reply_s)", secs(limits.max_reply))
            }
            Outcome::LinkLost
            | Outcome::ServerError
            | Outcome::NoReply
            | Outcome::Completed
            | Outcome::TooShort
            | Outcome::BargedIn
            | Outcome::NotUnderstood => return None,
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome is its name: what a metrics line or a test compares it with.
impl PartialEq<&str> for Outcome {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}
