//! Home Assistant Assist as the voice server, over HA's WebSocket API (`/api/websocket`):
//! one authenticated connection kept open between turns, one `assist_pipeline/run` from
//! speech-to-text to text-to-speech per press, the spoken reply fetched over HTTP(S) from
//! the same host. `docs/homeassistant.md` is the user's side of this.
//!
//! A turn on the wire:
//! ```text
//! press    → {"id":N,"type":"assist_pipeline/run","start_stage":"stt","end_stage":"tts",…}
//!          ← result, run-start (runner_data.stt_binary_handler_id = H), stt-start
//! talking  → binary [H, PCM s16le…] per frame (frames from before run-start were held back)
//! release  → binary [H]                    (end of audio; a zero-length frame would close the socket)
//!          ← stt-end (transcript), intent-start, intent-end (answer text), tts-start,
//!            tts-end (tts_output.url), run-end            — or error {code, message}
//! reply    GET http(s)://HOST/api/tts_proxy/…  → decoded, framed, played as it downloads
//! ```
//! Audio goes out as 16 kHz PCM: the link reports `pcm` as the codec and puts HA's one-byte
//! handler prefix before each packet. The reconnecting is the shared
//! [`lifecycle`](super::lifecycle); each run is a pure state machine (`run.rs`) that the
//! connection (`connection.rs`) carries out.

mod connection;
mod messages;
mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::endpoint::{Endpoint, UrlRule};
use super::lifecycle::{self, Connected, Ended, Events, Failure};
use super::{CONNECT_TIMEOUT, Command, Counters, LinkHandle, LinkParams, ServerSpec, Socket, Wiring, reply, socket};
use crate::audio::codec::{self, Codec};
use crate::backoff::Retry;
use crate::secret::{Secret, read_token_file};
use crate::settings::{Checker, Section};
use messages::{ErrorData, Incoming};
use serde::Deserialize;

/// How often a rejected token file is read again to see whether the user replaced it.
const TOKEN_RECHECK: Duration = Duration::from_secs(5);
/// Largest message HA may send: event data carries transcripts and answer texts.
const MAX_MESSAGE: usize = 1 << 20;

/// The path HA's WebSocket API lives at.
pub const WEBSOCKET_PATH: &str = "/api/websocket";

/// `kind = "homeassistant"`: the shared connection keys and HA's own.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: Endpoint,
    /// The pipeline id (`None`: HA's preferred pipeline).
    pub pipeline: Option<String>,
    /// The device id runs are attributed to.
    pub device_id: Option<String>,
    /// Let HA's voice-activity detection end the speech (off: the button does).
    pub server_vad: bool,
    /// A turn within this long of the last answer continues its conversation.
    pub conversation_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawSettings {
    pipeline: String,
    device_id: String,
    server_vad: bool,
    conversation_timeout_s: f64,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self { pipeline: String::new(), device_id: String::new(), server_vad: false, conversation_timeout_s: 300.0 }
    }
}

/// HA takes its web address (`http://homeassistant.local:8123`) or the WebSocket URL itself.
const HA_URL: UrlRule = UrlRule {
    normalize: websocket_url,
    wrong: |url| format!("{url} is not Home Assistant's address, e.g. http://homeassistant.local:8123"),
};

/// Reads the `[server]` section for Home Assistant (the [`super::BACKENDS`] row).
pub fn settings(section: &mut Section, checker: &dyn Checker) -> Arc<dyn ServerSpec> {
    let server = Endpoint::read(section, checker, &HA_URL);
    let raw: RawSettings = section.part(checker);
    checker.check(server.token_written, "server.token_file", || {
        "missing: Home Assistant needs a long-lived access token (docs/homeassistant.md)".into()
    });
    let timeout = raw.conversation_timeout_s;
    let conversation_timeout =
        if checker.check((0.0..=86_400.0).contains(&timeout), "server.conversation_timeout_s", || {
            "0 (never continue) to 86400 seconds".into()
        }) {
            Duration::try_from_secs_f64(timeout).unwrap_or_default()
        } else {
            Duration::ZERO
        };
    let optional = |value: String| (!value.is_empty()).then_some(value);
    Arc::new(Settings {
        server,
        pipeline: optional(raw.pipeline),
        device_id: optional(raw.device_id),
        server_vad: raw.server_vad,
        conversation_timeout,
    })
}

/// Home Assistant's WebSocket URL from what a user is likely to write: HA's web address
/// (`http://homeassistant.local:8123`) or the WebSocket URL itself.
pub fn websocket_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => ("ws", rest),
        Some(("https", rest)) => ("wss", rest),
        Some((scheme, rest)) => (scheme, rest),
        None => ("ws", url),
    };
    let rest = rest.strip_suffix(WEBSOCKET_PATH).unwrap_or(rest);
    format!("{scheme}://{rest}{WEBSOCKET_PATH}")
}

impl ServerSpec for Settings {
    fn kind(&self) -> &'static str {
        "homeassistant"
    }

    fn describe(&self) -> String {
        self.server.url.clone()
    }

    fn spawn(&self, params: LinkParams) -> Result<LinkHandle, String> {
        let token = self.server.token.clone().ok_or_else(|| {
            "Home Assistant needs a long-lived access token: set server.token_file (docs/homeassistant.md)".to_string()
        })?;
        let http_base = http_base(&self.server.url)?;
        let connector = super::tls::connector(&self.server)?;
        let http_tls = if http_base.starts_with("https://") { Some(http_tls(&self.server)?) } else { None };
        let frame_samples = codec::frame_samples(params.frame_ms);
        let settings = self.clone();
        let retry = Retry::new(self.server.reconnect_min, self.server.reconnect_max);
        super::start(retry, |wiring| {
            let Wiring { events, counters, helpers } = wiring;
            let fetcher =
                reply::Fetcher::spawn(http_tls, reply::Timeouts::default(), frame_samples, events.clone(), helpers);
            Ok(Link { settings, params, connector, token, http_base, events, counters, fetcher, conversation: None })
        })
    }

    fn endpoint(&self) -> Option<&Endpoint> {
        Some(&self.server)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// `http(s)://host:port` of the HA instance behind a `ws(s)://host:port/api/websocket` URL:
/// the base HA's relative reply URLs are resolved against.
fn http_base(ws_url: &str) -> Result<String, String> {
    let uri: tokio_tungstenite::tungstenite::http::Uri =
        ws_url.parse().map_err(|e| format!("server.url `{ws_url}`: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some("wss") => "https",
        Some("ws") => "http",
        _ => return Err(format!("server.url `{ws_url}` is not a ws:// or wss:// address")),
    };
    let authority = uri.authority().ok_or_else(|| format!("server.url `{ws_url}` has no host"))?;
    Ok(format!("{scheme}://{authority}"))
}

/// An absolute URL for a reply URL from HA: relative ones live on HA's own host.
fn resolve(base: &str, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        format!("{base}/{url}")
    }
}

fn http_tls(server: &Endpoint) -> Result<ureq::tls::TlsConfig, String> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    let roots = super::tls::TrustedRoots::load(server)?;
    let certs: Vec<Certificate<'static>> =
        roots.system.iter().chain(&roots.extra).map(|der| Certificate::from_der(der.as_ref()).to_owned()).collect();
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(Arc::new(certs)))
        .unversioned_rustls_crypto_provider(super::tls::provider())
        .build())
}

struct Link {
    settings: Settings,
    params: LinkParams,
    connector: Option<Connector>,
    token: Secret,
    http_base: String,
    events: Events,
    counters: Arc<Counters>,
    fetcher: reply::Fetcher,
    /// The conversation the last answer belonged to, and when: continued by the next turn
    /// within `server.conversation_timeout_s`.
    conversation: Option<(String, Instant)>,
}

impl lifecycle::Backend for Link {
    type Connection = Socket;

    fn describe(&self) -> String {
        format!("Home Assistant at {}", self.settings.server.url)
    }

    async fn connect(&mut self) -> Result<Connected<Socket>, Failure> {
        let (connection, version) = self.dial().await?;
        Ok(Connected { connection, codec: Codec::Pcm, server: format!("Home Assistant {version}") })
    }

    async fn serve(&mut self, socket: Socket, commands: &mut mpsc::Receiver<Command>) -> Ended {
        connection::serve(self, socket, commands).await
    }

    /// HA rejected the token. Asking again with the same token would only count as one more
    /// failed login (HA can ban the address for that), so pivox waits until the token file
    /// holds a different token, or for good when the token is not in a file.
    async fn refused(&mut self, reason: &str, commands: &mut mpsc::Receiver<Command>) -> bool {
        let file: Option<PathBuf> = self.settings.server.token_file.clone();
        let advice = match &file {
            Some(path) => format!("put a new long-lived access token in {} (pivox reads it again)", path.display()),
            None => "put a new long-lived access token in the config and restart pivox".to_string(),
        };
        log::error!("Home Assistant rejected the access token ({reason}); not retrying: {advice}");
        loop {
            if !lifecycle::drain_until(tokio::time::sleep(TOKEN_RECHECK), commands).await {
                return false;
            }
            let Some(path) = &file else { continue };
            match read_token_file(path) {
                Ok(token) if token != self.token => {
                    log::info!("{} holds a new token; connecting to Home Assistant again", path.display());
                    self.token = token;
                    return true;
                }
                Ok(_) => {}
                Err(e) => log::debug!("{e}"),
            }
        }
    }

    fn close(&mut self) {
        // The daemon joins the download threads (LinkHandle::helpers) within its deadline.
        self.fetcher.cancel_all();
    }
}

impl Link {
    /// Connects and authenticates; a failure says whether HA's port was reached at all.
    async fn dial(&self) -> Result<(Socket, String), Failure> {
        let failed = Failure::Failed;
        let request = self.settings.server.url.as_str().into_client_request().map_err(|e| failed(e.to_string()))?;
        let config = WebSocketConfig::default()
            .read_buffer_size(crate::link::WS_READ_BUFFER)
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let stream = socket::connect(request.uri(), CONNECT_TIMEOUT).await.map_err(Failure::Unreached)?;
        let connecting =
            tokio_tungstenite::client_async_tls_with_config(request, stream, Some(config), self.connector.clone());
        let (mut socket, _) = match timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => return Err(failed(format!("no answer within {CONNECT_TIMEOUT:?}"))),
            Ok(Err(e)) => return Err(failed(super::tls::explain(e.to_string()))),
            Ok(Ok(connected)) => connected,
        };
        match next_text(&mut socket).await.map_err(failed)? {
            Incoming::AuthRequired { .. } => {}
            other => return Err(failed(format!("expected auth_required from Home Assistant, got {other:?}"))),
        }
        let auth = messages::auth(self.token.expose());
        timeout(CONNECT_TIMEOUT, socket.send(WsMessage::text(auth)))
            .await
            .map_err(|_| failed("sending the token timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        match next_text(&mut socket).await.map_err(failed)? {
            Incoming::AuthOk { ha_version } => Ok((socket, ha_version)),
            Incoming::AuthInvalid { message } => {
                // A clean close, as a browser's: HA logs the failed login and tells its owner.
                close_politely(&mut socket).await;
                Err(Failure::Refused(message))
            }
            other => Err(failed(format!("expected auth_ok from Home Assistant, got {other:?}"))),
        }
    }
}

/// HA's code for a run that heard no words: the session's "didn't catch that", not an error.
const NO_TEXT: &str = "stt-no-text-recognized";

/// An HA pipeline error (`code`, `message`), as the turn's failure: typed, and said on one
/// line for the user. Both HA links get these codes (the ESPHome link in its ERROR event).
pub(crate) fn pipeline_failure(code: String, message: String, pipeline: Option<&str>) -> super::TurnFailure {
    let error = ErrorData { code, message };
    let message = explain(&error, pipeline);
    match error.code.as_str() {
        NO_TEXT => super::TurnFailure::NotUnderstood(message),
        _ => super::TurnFailure::Server { code: error.code, message },
    }
}

/// What an HA pipeline error means for the user, on one line.
fn explain(error: &ErrorData, pipeline: Option<&str>) -> String {
    let detail = &error.message;
    match error.code.as_str() {
        "stt-no-text-recognized" => "Home Assistant didn't catch that (no text recognized)".into(),
        "pipeline-not-found" => format!(
            "Home Assistant has no pipeline `{}`: set server.pipeline to a pipeline id from Settings → Voice \
             assistants, or leave it out for the preferred one ({detail})",
            pipeline.unwrap_or_default()
        ),
        "tts-failed" => format!("Home Assistant could not speak the answer: text-to-speech failed ({detail})"),
        "timeout" => format!("Home Assistant gave up on the run: it took too long ({detail})"),
        "stt-stream-failed" | "stt-provider-missing" => format!("Home Assistant's speech-to-text failed ({detail})"),
        "intent-failed" => format!("Home Assistant's conversation agent failed ({detail})"),
        _ if detail.is_empty() => format!("Home Assistant reported `{}`", error.code),
        _ => detail.clone(),
    }
}

/// Sends a close frame and waits (briefly) for the peer's, completing the close handshake.
async fn close_politely(socket: &mut Socket) {
    let _ = timeout(Duration::from_secs(1), async {
        socket.close(None).await?;
        while socket.next().await.transpose()?.is_some() {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
}

/// The next text message during the handshake.
async fn next_text(socket: &mut Socket) -> Result<Incoming, String> {
    loop {
        let frame = timeout(CONNECT_TIMEOUT, socket.next())
            .await
            .map_err(|_| format!("Home Assistant said nothing for {CONNECT_TIMEOUT:?}"))?;
        match frame {
            Some(Ok(WsMessage::Text(text))) => return Incoming::parse(&text),
            Some(Ok(WsMessage::Close(_))) | None => return Err("Home Assistant closed the connection".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_urls_resolve_against_the_websocket_host() {
        let base = http_base("wss://ha.example:8123/api/websocket").unwrap();
        assert_eq!(base, "https://ha.example:8123");
        assert_eq!(resolve(&base, "/api/tts_proxy/abc.mp3"), "https://ha.example:8123/api/tts_proxy/abc.mp3");
        assert_eq!(resolve(&base, "api/tts_proxy/abc.mp3"), "https://ha.example:8123/api/tts_proxy/abc.mp3");
        assert_eq!(resolve(&base, "http://other:8123/x.mp3"), "http://other:8123/x.mp3");
        assert_eq!(http_base("ws://192.168.1.5:8123/api/websocket").unwrap(), "http://192.168.1.5:8123");
    }

    #[test]
    fn each_failure_says_what_happened() {
        let e = |code: &str| ErrorData { code: code.into(), message: "detail".into() };
        assert!(explain(&e("stt-no-text-recognized"), None).contains("didn't catch that"));
        assert!(explain(&e("pipeline-not-found"), Some("p1")).contains("no pipeline `p1`"));
        assert!(explain(&e("tts-failed"), None).contains("text-to-speech failed"));
        assert!(explain(&e("timeout"), None).contains("took too long"));
        assert_eq!(
            explain(&ErrorData { code: "odd".into(), message: String::new() }, None),
            "Home Assistant reported `odd`"
        );
    }
}
