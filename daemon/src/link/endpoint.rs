//! Where a dialling backend connects and how it keeps the connection: the `[server]` keys the
//! WebSocket backends share (`url`, `token`/`token_file`, `ca_file`, the heartbeat and the
//! reconnect delays), read and checked here for each of them.

use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

use crate::files;
use crate::secret::{Secret, is_token, read_token_file};
use crate::settings::{Checker, Section};
use crate::text::{QUOTE_CHARS, quote, shorten};

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub token: Option<Secret>,
    /// Where the token came from, when it was a file (Home Assistant reads it again after
    /// rejecting a token).
    pub token_file: Option<PathBuf>,
    /// A token or a token file was written (even one that could not be used).
    pub token_written: bool,
    pub ca_file: Option<PathBuf>,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawEndpoint {
    url: String,
    token: String,
    token_file: String,
    ca_file: String,
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    reconnect_min_ms: u64,
    reconnect_max_ms: u64,
}

impl Default for RawEndpoint {
    fn default() -> Self {
        Self {
            url: String::new(),
            token: String::new(),
            token_file: String::new(),
            ca_file: String::new(),
            ping_interval_ms: 2_000,
            ping_timeout_ms: 5_000,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
        }
    }
}

/// How a backend takes the URL the user wrote.
pub struct UrlRule {
    /// The URL to connect to, from what was written (Home Assistant takes its web address).
    pub normalize: fn(&str) -> String,
    /// What is wrong with a written URL (quoted) that gives no `ws://`/`wss://` host.
    pub wrong: fn(&str) -> String,
}

/// A `ws://` or `wss://` URL, taken as written.
pub const WEBSOCKET_URL: UrlRule =
    UrlRule { normalize: str::to_string, wrong: |url| format!("{url} is not a ws:// or wss:// address with a host") };

impl Endpoint {
    /// Reads the shared keys of `section`, reporting every problem on `checker`.
    pub fn read(section: &mut Section, checker: &dyn Checker, rule: &UrlRule) -> Self {
        let raw: RawEndpoint = section.part(checker);
        let url = url(&raw.url, checker, rule);
        let (token, token_file) = token(&raw, checker);
        let ca_file = ca_file(&raw.ca_file, checker);
        heartbeat(&raw, checker);
        Self {
            url,
            token,
            token_file,
            token_written: !raw.token.is_empty() || !raw.token_file.is_empty(),
            ca_file,
            ping_interval: Duration::from_millis(raw.ping_interval_ms),
            ping_timeout: Duration::from_millis(raw.ping_timeout_ms),
            reconnect_min: Duration::from_millis(raw.reconnect_min_ms),
            reconnect_max: Duration::from_millis(raw.reconnect_max_ms),
        }
    }
}

fn url(written: &str, checker: &dyn Checker, rule: &UrlRule) -> String {
    if !checker.check(!written.is_empty(), "server.url", || {
        "missing: the voice server's address, e.g. ws://192.168.1.10:8765/".into()
    }) {
        return String::new();
    }
    let url = (rule.normalize)(written);
    let uri: Result<tokio_tungstenite::tungstenite::http::Uri, _> = url.parse();
    let scheme_ok = uri.as_ref().is_ok_and(|u| matches!(u.scheme_str(), Some("ws" | "wss")) && u.host().is_some());
    checker.check(scheme_ok, "server.url", || (rule.wrong)(&quote(written, QUOTE_CHARS)));
    url
}

/// The token (never quoted in a message) and the file it came from.
fn token(raw: &RawEndpoint, checker: &dyn Checker) -> (Option<Secret>, Option<PathBuf>) {
    checker.check(raw.token.is_empty() || raw.token_file.is_empty(), "server.token", || {
        "set token or token_file, not both".into()
    });
    let token_file = (!raw.token_file.is_empty()).then(|| checker.path(&raw.token_file));
    let token = match &token_file {
        Some(_) if !checker.files_are_here() => None,
        Some(path) => read_token_file(path).map_err(|e| checker.report("server.token_file", e)).ok(),
        None if raw.token.is_empty() => None,
        None => checker
            .check(is_token(&raw.token), "server.token", || {
                "holds characters a token cannot have (spaces, control or non-ASCII)".into()
            })
            .then(|| Secret::new(raw.token.clone())),
    };
    (token, token_file)
}

/// `server.ca_file`, read as the TLS set-up will read it: bounded, PEM, a certificate at least.
fn ca_file(value: &str, checker: &dyn Checker) -> Option<PathBuf> {
    let ca = (!value.is_empty()).then(|| checker.path(value))?;
    if checker.files_are_here() {
        let shown = shorten(&ca.display().to_string(), 2 * QUOTE_CHARS);
        let certs = files::read_bounded(&ca, files::CA_FILE_MAX).and_then(|pem| {
            let certs: Result<Vec<CertificateDer<'static>>, _> = CertificateDer::pem_slice_iter(&pem).collect();
            certs.map_err(|e| format!("not a PEM certificate file: {e}"))
        });
        match certs {
            Err(e) => checker.report("server.ca_file", format!("{shown}: {e}")),
            Ok(certs) => {
                checker.check(!certs.is_empty(), "server.ca_file", || format!("{shown}: holds no certificate"));
            }
        }
    }
    Some(ca)
}

fn heartbeat(raw: &RawEndpoint, checker: &dyn Checker) {
    let (interval, timeout) = (raw.ping_interval_ms, raw.ping_timeout_ms);
    checker.check((100..=60_000).contains(&interval), "server.ping_interval_ms", || "100 to 60000 ms".into());
    checker.check(timeout > interval, "server.ping_timeout_ms", || {
        format!("must be longer than ping_interval_ms ({interval})")
    });
    checker.check(timeout <= 600_000, "server.ping_timeout_ms", || "at most 600000 ms".into());
    let (min, max) = (raw.reconnect_min_ms, raw.reconnect_max_ms);
    checker.check((10..=60_000).contains(&min), "server.reconnect_min_ms", || "10 to 60000 ms".into());
    checker.check(max >= min, "server.reconnect_max_ms", || format!("must be at least reconnect_min_ms ({min})"));
    checker.check(max <= 3_600_000, "server.reconnect_max_ms", || "at most 3600000 ms (an hour)".into());
}
