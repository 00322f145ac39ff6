//! The messages of Home Assistant's WebSocket API that the Assist link uses: what pivox
//! sends (auth, `assist_pipeline/run`, ping) and what HA sends back (auth results, command
//! results, pipeline events, pongs). Shapes follow HA's `websocket_api` and
//! `assist_pipeline` components; fields pivox does not use are ignored, so newer HA
//! versions that add fields keep working.

use serde::Deserialize;
use serde_json::{Value, json};

/// What the run command asks of the pipeline beyond the fixed stt → tts stages.
#[derive(Debug, Clone, Default)]
pub struct RunOptions<'a> {
    pub pipeline: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub device_id: Option<&'a str>,
    /// HA's own voice-activity detection: off for push-to-talk (the button ends speech).
    pub server_vad: bool,
    /// How long HA may take for the whole run before it gives up (its default is 300 s).
    pub timeout_s: u32,
}

/// `{"type":"auth","access_token":…}`. The result holds the token: never log it.
pub fn auth(token: &str) -> String {
    json!({"type": "auth", "access_token": token}).to_string()
}

pub fn run(id: u64, sample_rate: u32, options: &RunOptions<'_>) -> String {
    let mut message = json!({
        "id": id,
        "type": "assist_pipeline/run",
        "start_stage": "stt",
        "end_stage": "tts",
        "input": {"sample_rate": sample_rate, "no_vad": !options.server_vad},
        "timeout": options.timeout_s,
    });
    let optional = [
        ("pipeline", options.pipeline),
        ("conversation_id", options.conversation_id),
        ("device_id", options.device_id),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            message[key] = json!(value);
        }
    }
    message.to_string()
}

pub fn ping(id: u64) -> String {
    json!({"id": id, "type": "ping"}).to_string()
}

/// One text message from HA.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Incoming {
    AuthRequired {},
    AuthOk {
        #[serde(default)]
        ha_version: String,
    },
    AuthInvalid {
        #[serde(default)]
        message: String,
    },
    /// The answer to a command: for a run, it comes before the run's events.
    Result {
        id: u64,
        success: bool,
        #[serde(default)]
        error: Option<ErrorData>,
    },
    Event {
        id: u64,
        event: PipelineEvent,
    },
    Pong {},
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ErrorData {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct PipelineEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Value,
}

/// Where HA says the spoken reply can be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsOutput {
    pub url: String,
    pub mime_type: Option<String>,
}

impl Incoming {
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("{e} in {}", excerpt(text)))
    }
}

impl PipelineEvent {
    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.data.pointer(pointer).and_then(Value::as_str)
    }

    /// `run-start`: the binary handler id this run's audio must carry. HA numbers handlers
    /// per connection and a new run gets a new one: never assume 1.
    pub fn stt_handler(&self) -> Result<u8, String> {
        match self.data.pointer("/runner_data/stt_binary_handler_id") {
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| format!("stt_binary_handler_id {n} does not fit in one byte")),
            Some(Value::Null) | None => Err("the run has no speech-to-text input (no stt_binary_handler_id)".into()),
            Some(other) => Err(format!("stt_binary_handler_id is not a number: {other}")),
        }
    }

    /// `run-start` (HA 2025+) or `tts-end`: the reply's URL and type.
    pub fn tts_output(&self) -> Option<TtsOutput> {
        let url = self.str_at("/tts_output/url")?.to_string();
        let mime_type = self.str_at("/tts_output/mime_type").map(str::to_string);
        Some(TtsOutput { url, mime_type })
    }

    /// `run-start`: whether HA may start speaking before the answer's text is complete
    /// (then `intent-progress` says when the reply URL can be fetched).
    pub fn stream_response(&self) -> bool {
        self.data.pointer("/tts_output/stream_response").and_then(Value::as_bool).unwrap_or(false)
    }

    /// `intent-progress`: the streamed reply can be fetched now.
    pub fn tts_start_streaming(&self) -> bool {
        self.data.get("tts_start_streaming").and_then(Value::as_bool).unwrap_or(false)
    }

    /// `stt-end`: the transcript.
    pub fn transcript(&self) -> Option<&str> {
        self.str_at("/stt_output/text")
    }

    /// `intent-end`: the answer's text.
    pub fn speech(&self) -> Option<&str> {
        self.str_at("/intent_output/response/speech/plain/speech")
    }

    /// `intent-end`: the conversation to continue on the next turn.
    pub fn conversation_id(&self) -> Option<&str> {
        self.str_at("/intent_output/conversation_id")
    }

    /// `tts-start`: what identifies the audio HA will make, whatever URL it gets (HA gives
    /// every run's reply a fresh random URL, so the URL alone never repeats).
    pub fn tts_key(&self) -> Option<String> {
        let text = self.str_at("/tts_input")?;
        let part = |key: &str| self.data.get(key).map(Value::to_string).unwrap_or_default();
        Some(format!("{}|{}|{}|{text}", part("engine"), part("language"), part("voice")))
    }

    /// `error`: its code and message.
    pub fn error(&self) -> ErrorData {
        ErrorData {
            code: self.str_at("/code").unwrap_or("unknown").to_string(),
            message: self.str_at("/message").unwrap_or_default().to_string(),
        }
    }
}

/// The start of a message, for a log line about it.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_command_carries_the_options_that_are_set() {
        let options = RunOptions { pipeline: Some("01abc"), timeout_s: 60, ..Default::default() };
        let run: Value = serde_json::from_str(&run(7, 16_000, &options)).unwrap();
        assert_eq!(run["id"], 7);
        assert_eq!(run["type"], "assist_pipeline/run");
        assert_eq!((run["start_stage"].as_str(), run["end_stage"].as_str()), (Some("stt"), Some("tts")));
        assert_eq!(run["input"], json!({"sample_rate": 16000, "no_vad": true}));
        assert_eq!(run["pipeline"], "01abc");
        assert_eq!(run["timeout"], 60);
        assert!(run.get("conversation_id").is_none() && run.get("device_id").is_none());
    }

    #[test]
    fn events_give_their_fields() {
        let text = r#"{"id":3,"type":"event","event":{"type":"run-start","data":{"pipeline":"p",
            "runner_data":{"stt_binary_handler_id":4,"timeout":300},
            "tts_output":{"token":"x.mp3","url":"/api/tts_proxy/x.mp3","mime_type":"audio/mpeg","stream_response":true}}}}"#;
        let Incoming::Event { id: 3, event } = Incoming::parse(text).unwrap() else { panic!("not an event") };
        assert_eq!(event.stt_handler(), Ok(4));
        assert_eq!(
            event.tts_output(),
            Some(TtsOutput { url: "/api/tts_proxy/x.mp3".into(), mime_type: Some("audio/mpeg".into()) })
        );
        assert!(event.stream_response());

        let end = r#"{"id":3,"type":"event","event":{"type":"intent-end","data":{"intent_output":
            {"response":{"speech":{"plain":{"speech":"It is 3 pm","extra_data":null}}},"conversation_id":"c1"}}}}"#;
        let Incoming::Event { event, .. } = Incoming::parse(end).unwrap() else { panic!("not an event") };
        assert_eq!((event.speech(), event.conversation_id()), (Some("It is 3 pm"), Some("c1")));
    }

    #[test]
    fn a_handler_id_that_is_missing_or_too_big_is_an_error() {
        let event = |data: Value| PipelineEvent { kind: "run-start".into(), data };
        assert!(event(json!({"runner_data": {"stt_binary_handler_id": null}})).stt_handler().is_err());
        assert!(event(json!({"runner_data": {"stt_binary_handler_id": 256}})).stt_handler().is_err());
        assert!(event(json!({})).stt_handler().is_err());
    }

    #[test]
    fn the_tts_key_ignores_the_url_and_names_the_voice() {
        let a = PipelineEvent {
            kind: "tts-start".into(),
            data: json!({"engine":"tts.piper","language":"en","voice":"amy","tts_input":"Hello"}),
        };
        let b = PipelineEvent {
            kind: "tts-start".into(),
            data: json!({"engine":"tts.piper","language":"en","voice":"joe","tts_input":"Hello"}),
        };
        assert_ne!(a.tts_key(), b.tts_key());
        assert!(a.tts_key().unwrap().ends_with("|Hello"));
    }

    #[test]
    fn garbage_is_an_error_with_an_excerpt() {
        assert!(Incoming::parse("not json").unwrap_err().contains("not json"));
        assert!(Incoming::parse(r#"{"type":"surprise"}"#).is_err());
        assert!(Incoming::parse(r#"{"type":"event","id":1}"#).is_err());
        let long = "x".repeat(500);
        assert!(excerpt(&long).chars().count() <= 121);
    }
}
