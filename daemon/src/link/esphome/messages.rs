//! The ESPHome native API messages pivox exchanges with Home Assistant, as protobuf structs
//! (field numbers and types from `api.proto` in esphome/aioesphomeapi), each with its message
//! type id. Only the messages a voice satellite uses are here; any other type a client sends
//! is logged at debug level and ignored, as ESPHome devices do.

use prost::Message;

/// A message and its type id on the wire.
pub trait Typed: Message + Default {
    const TYPE: u32;
}

macro_rules! typed {
    ($($name:ident = $id:literal),* $(,)?) => {
        $(impl Typed for $name { const TYPE: u32 = $id; })*
    };
}

typed! {
    HelloRequest = 1, HelloResponse = 2, DisconnectRequest = 5, DisconnectResponse = 6,
    PingRequest = 7, PingResponse = 8, DeviceInfoRequest = 9, DeviceInfoResponse = 10,
    ListEntitiesRequest = 11, ListEntitiesBinarySensorResponse = 12, ListEntitiesDoneResponse = 19,
    SubscribeStatesRequest = 20, BinarySensorStateResponse = 21,
    ListEntitiesMediaPlayerResponse = 63, MediaPlayerStateResponse = 64, MediaPlayerCommandRequest = 65,
    SubscribeVoiceAssistantRequest = 89, VoiceAssistantRequest = 90, VoiceAssistantResponse = 91,
    VoiceAssistantEventResponse = 92, VoiceAssistantAudio = 106, VoiceAssistantTimerEventResponse = 115,
    VoiceAssistantAnnounceRequest = 119, VoiceAssistantAnnounceFinished = 120,
    VoiceAssistantConfigurationRequest = 121, VoiceAssistantConfigurationResponse = 122,
    VoiceAssistantSetConfiguration = 123,
    NoiseEncryptionSetKeyRequest = 124, NoiseEncryptionSetKeyResponse = 125,
    DeviceCapabilitiesRequest = 149, DeviceCapabilitiesResponse = 150,
}

/// `voice_assistant_feature_flags` bits.
pub mod feature {
    pub const VOICE_ASSISTANT: u32 = 1;
    pub const SPEAKER: u32 = 2;
    pub const API_AUDIO: u32 = 4;
    pub const TIMERS: u32 = 8;
    pub const ANNOUNCE: u32 = 16;
    pub const START_CONVERSATION: u32 = 32;
}

/// `VoiceAssistantEvent` values.
pub mod event {
    pub const ERROR: i32 = 0;
    pub const RUN_START: i32 = 1;
    pub const RUN_END: i32 = 2;
    pub const STT_START: i32 = 3;
    pub const STT_END: i32 = 4;
    pub const INTENT_START: i32 = 5;
    pub const INTENT_END: i32 = 6;
    pub const TTS_START: i32 = 7;
    pub const TTS_END: i32 = 8;
    pub const WAKE_WORD_START: i32 = 9;
    pub const WAKE_WORD_END: i32 = 10;
    pub const STT_VAD_START: i32 = 11;
    pub const STT_VAD_END: i32 = 12;
    pub const TTS_STREAM_START: i32 = 98;
    pub const TTS_STREAM_END: i32 = 99;
    pub const INTENT_PROGRESS: i32 = 100;
}

/// `VoiceAssistantTimerEvent` values.
pub mod timer {
    pub const STARTED: i32 = 0;
    pub const UPDATED: i32 = 1;
    pub const CANCELLED: i32 = 2;
    pub const FINISHED: i32 = 3;
}

#[derive(Clone, PartialEq, Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub client_info: String,
    #[prost(uint32, tag = "2")]
    pub api_version_major: u32,
    #[prost(uint32, tag = "3")]
    pub api_version_minor: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct HelloResponse {
    #[prost(uint32, tag = "1")]
    pub api_version_major: u32,
    #[prost(uint32, tag = "2")]
    pub api_version_minor: u32,
    #[prost(string, tag = "3")]
    pub server_info: String,
    #[prost(string, tag = "4")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct DisconnectRequest {
    #[prost(int32, tag = "1")]
    pub reason: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct DisconnectResponse {}

#[derive(Clone, PartialEq, Message)]
pub struct PingRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct PingResponse {}

#[derive(Clone, PartialEq, Message)]
pub struct DeviceInfoRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct DeviceInfoResponse {
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub mac_address: String,
    #[prost(string, tag = "4")]
    pub esphome_version: String,
    #[prost(string, tag = "5")]
    pub compilation_time: String,
    #[prost(string, tag = "6")]
    pub model: String,
    #[prost(string, tag = "8")]
    pub project_name: String,
    #[prost(string, tag = "9")]
    pub project_version: String,
    #[prost(string, tag = "12")]
    pub manufacturer: String,
    #[prost(string, tag = "13")]
    pub friendly_name: String,
    #[prost(uint32, tag = "17")]
    pub voice_assistant_feature_flags: u32,
    #[prost(bool, tag = "19")]
    pub api_encryption_supported: bool,
    #[prost(bool, tag = "26")]
    pub api_encryption_provisionable: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct DeviceCapabilitiesRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantCapabilities {
    #[prost(uint32, tag = "1")]
    pub feature_flags: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct DeviceCapabilitiesResponse {
    #[prost(message, optional, tag = "2")]
    pub voice_assistant: Option<VoiceAssistantCapabilities>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListEntitiesRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct ListEntitiesDoneResponse {}

#[derive(Clone, PartialEq, Message)]
pub struct SubscribeStatesRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct ListEntitiesBinarySensorResponse {
    #[prost(string, tag = "1")]
    pub object_id: String,
    #[prost(fixed32, tag = "2")]
    pub key: u32,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub device_class: String,
    #[prost(string, tag = "8")]
    pub icon: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct BinarySensorStateResponse {
    #[prost(fixed32, tag = "1")]
    pub key: u32,
    #[prost(bool, tag = "2")]
    pub state: bool,
    #[prost(bool, tag = "3")]
    pub missing_state: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct MediaPlayerSupportedFormat {
    #[prost(string, tag = "1")]
    pub format: String,
    #[prost(uint32, tag = "2")]
    pub sample_rate: u32,
    #[prost(uint32, tag = "3")]
    pub num_channels: u32,
    /// 0: default, 1: announcement.
    #[prost(int32, tag = "4")]
    pub purpose: i32,
    #[prost(uint32, tag = "5")]
    pub sample_bytes: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListEntitiesMediaPlayerResponse {
    #[prost(string, tag = "1")]
    pub object_id: String,
    #[prost(fixed32, tag = "2")]
    pub key: u32,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub icon: String,
    #[prost(bool, tag = "8")]
    pub supports_pause: bool,
    #[prost(message, repeated, tag = "9")]
    pub supported_formats: Vec<MediaPlayerSupportedFormat>,
    #[prost(uint32, tag = "11")]
    pub feature_flags: u32,
}

/// `MediaPlayerState`: 1 idle, 2 playing, 3 paused, 4 announcing.
#[derive(Clone, PartialEq, Message)]
pub struct MediaPlayerStateResponse {
    #[prost(fixed32, tag = "1")]
    pub key: u32,
    #[prost(int32, tag = "2")]
    pub state: i32,
    #[prost(float, tag = "3")]
    pub volume: f32,
    #[prost(bool, tag = "4")]
    pub muted: bool,
}

/// `MediaPlayerCommand`: 0 play, 1 pause, 2 stop, 3 mute, 4 unmute, 5 toggle, 6 volume up,
/// 7 volume down.
#[derive(Clone, PartialEq, Message)]
pub struct MediaPlayerCommandRequest {
    #[prost(fixed32, tag = "1")]
    pub key: u32,
    #[prost(bool, tag = "2")]
    pub has_command: bool,
    #[prost(int32, tag = "3")]
    pub command: i32,
    #[prost(bool, tag = "4")]
    pub has_volume: bool,
    #[prost(float, tag = "5")]
    pub volume: f32,
    #[prost(bool, tag = "6")]
    pub has_media_url: bool,
    #[prost(string, tag = "7")]
    pub media_url: String,
    #[prost(bool, tag = "8")]
    pub has_announcement: bool,
    #[prost(bool, tag = "9")]
    pub announcement: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct SubscribeVoiceAssistantRequest {
    #[prost(bool, tag = "1")]
    pub subscribe: bool,
    /// 1: HA sends the reply's audio over the API (pivox fetches the URL instead).
    #[prost(uint32, tag = "2")]
    pub flags: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantRequest {
    #[prost(bool, tag = "1")]
    pub start: bool,
    #[prost(string, tag = "2")]
    pub conversation_id: String,
    /// 1: use HA's voice-activity detection, 2: start at wake-word detection.
    #[prost(uint32, tag = "3")]
    pub flags: u32,
    #[prost(string, tag = "5")]
    pub wake_word_phrase: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantResponse {
    /// 0: the turn's audio goes over the API connection.
    #[prost(uint32, tag = "1")]
    pub port: u32,
    #[prost(bool, tag = "2")]
    pub error: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantEventData {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantEventResponse {
    #[prost(int32, tag = "1")]
    pub event_type: i32,
    #[prost(message, repeated, tag = "2")]
    pub data: Vec<VoiceAssistantEventData>,
}

impl VoiceAssistantEventResponse {
    /// The value of the event's data item `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.data.iter().find(|d| d.name == name).map(|d| d.value.as_str())
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantAudio {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: bytes::Bytes,
    #[prost(bool, tag = "2")]
    pub end: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantTimerEventResponse {
    #[prost(int32, tag = "1")]
    pub event_type: i32,
    #[prost(string, tag = "2")]
    pub timer_id: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(uint32, tag = "4")]
    pub total_seconds: u32,
    #[prost(uint32, tag = "5")]
    pub seconds_left: u32,
    #[prost(bool, tag = "6")]
    pub is_active: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantAnnounceRequest {
    #[prost(string, tag = "1")]
    pub media_id: String,
    #[prost(string, tag = "2")]
    pub text: String,
    #[prost(string, tag = "3")]
    pub preannounce_media_id: String,
    #[prost(bool, tag = "4")]
    pub start_conversation: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantAnnounceFinished {
    #[prost(bool, tag = "1")]
    pub success: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantConfigurationRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantConfigurationResponse {
    #[prost(string, repeated, tag = "2")]
    pub active_wake_words: Vec<String>,
    #[prost(uint32, tag = "3")]
    pub max_active_wake_words: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct VoiceAssistantSetConfiguration {
    #[prost(string, repeated, tag = "1")]
    pub active_wake_words: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NoiseEncryptionSetKeyRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NoiseEncryptionSetKeyResponse {
    #[prost(bool, tag = "1")]
    pub success: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_numbers_match_api_proto() {
        // HelloResponse{api_version_major: 1, api_version_minor: 10, server_info: "s", name: "n"}
        let hello =
            HelloResponse { api_version_major: 1, api_version_minor: 10, server_info: "s".into(), name: "n".into() };
        assert_eq!(hello.encode_to_vec(), [0x08, 1, 0x10, 10, 0x1a, 1, b's', 0x22, 1, b'n']);
        // key is fixed32 (wire type 5) in every entity message.
        let state = BinarySensorStateResponse { key: 1, state: true, missing_state: false };
        assert_eq!(state.encode_to_vec(), [0x0d, 1, 0, 0, 0, 0x10, 1]);
        let flags = DeviceInfoResponse { voice_assistant_feature_flags: 5, ..Default::default() };
        assert_eq!(flags.encode_to_vec(), [0x88, 0x01, 5]);
    }
}
