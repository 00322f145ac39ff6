//! `wss://` with certificate verification on: a throwaway CA (rcgen) signs a server
//! certificate, a rustls acceptor on loopback terminates TLS in front of the reference
//! server, and the daemon's link must trust exactly what `server.ca_file` says.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use pivox::audio::codec::Codec;
use pivox::daemon::{self, Probes, RunOptions};
use pivox::link::{Event, LinkParams};
use pivox_devtools::server::{self, ServerOptions};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA written to `<dir>/<name>.pem`, able to sign server certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem_path: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("pivox test CA {name}"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem_path = dir.join(format!("{name}.pem"));
        std::fs::write(&pem_path, issuer.pem()).unwrap();
        Self { issuer, pem_path }
    }

    /// A server certificate for `names` (DNS names or IP addresses) and its key.
    fn server_cert(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().clone(), PrivatePkcs8KeyDer::from(key.serialize_der()).into())
    }
}

/// A TLS front for a plain-TCP server: each connection is decrypted and piped to `backend`.
/// Returns its address and the handshake errors it saw.
async fn tls_front(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    backend: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let seen = refused.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        if let Ok(mut plain) = TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        }
                    }
                    Err(e) => seen.lock().unwrap().push(e.to_string()),
                }
            });
        }
    });
    (addr, refused)
}

fn params(url: String, ca_file: &Path) -> (pivox::config::Config, LinkParams) {
    let text = config_text(&url, "", "").replace("[server]\n", &format!("[server]\nca_file = {:?}\n", ca_file));
    let config = pivox::config::Config::parse(&text, "test.toml", Path::new(".")).unwrap().config;
    let longest_turn = config.session.max_turn + config.session.reply_timeout;
    let params = LinkParams { codecs: vec![Codec::Opus], frame_ms: 20, longest_turn };
    (config, params)
}

/// The link's first event, which is `Up` or `Down` after one connection attempt.
async fn first_event((config, params): (pivox::config::Config, LinkParams)) -> Event {
    let mut handle = config.server.spawn(params).unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), handle.events.recv()).await.unwrap().unwrap();
    handle.task.abort();
    event
}

#[tokio::test]
async fn wss_trusts_the_configured_ca_and_refuses_any_other_certificate() {
    let dir = temp_dir("tls");
    let (ours, theirs) = (Ca::new(&dir, "ours"), Ca::new(&dir, "theirs"));
    let server = server::start(ServerOptions::echo(([127, 0, 0, 1], 0).into())).await.unwrap();

    // Signed by the CA in ca_file, for the address we dial: the link comes up.
    let (cert, key) = ours.server_cert(&["127.0.0.1"]);
    let (good, _) = tls_front(cert, key, server.addr).await;
    match first_event(params(format!("wss://{good}/"), &ours.pem_path)).await {
        Event::Up { codec, .. } => assert_eq!(codec, Codec::Opus),
        other => panic!("expected the link up, got {other:?}"),
    }

    // Signed by a CA this device does not trust: refused, and the reason says so.
    let (cert, key) = theirs.server_cert(&["127.0.0.1"]);
    let (stranger, refused) = tls_front(cert, key, server.addr).await;
    match first_event(params(format!("wss://{stranger}/"), &ours.pem_path)).await {
        Event::Down(down) => {
            let reason = down.to_string();
            assert!(reason.contains("UnknownIssuer") && reason.contains("server.ca_file"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The acceptor's side of the failed handshake lands a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    while refused.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused.lock().unwrap().len(), 1, "the server saw the client abort the handshake");

    // Our CA, but issued for another name: refused too.
    let (cert, key) = ours.server_cert(&["voice.example.invalid"]);
    let (misnamed, _) = tls_front(cert, key, server.addr).await;
    match first_event(params(format!("wss://{misnamed}/"), &ours.pem_path)).await {
        Event::Down(down) => assert!(down.to_string().contains("not valid for name \"127.0.0.1\""), "{down}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(server.utterances().is_empty());
    server.kill().await;
}

#[tokio::test]
async fn a_whole_turn_over_wss_reaches_the_server_and_plays_the_reply() {
    let dir = temp_dir("tls-turn");
    let ca = Ca::new(&dir, "ca");
    let server = server::start(ServerOptions::echo(([127, 0, 0, 1], 0).into())).await.unwrap();
    let (cert, key) = ca.server_cert(&["127.0.0.1"]);
    let (front, _) = tls_front(cert, key, server.addr).await;
    let text = config_text(&format!("wss://{front}/"), "press 0.25, release 1.5", "[audio]\nearcon_volume = 0.0\n")
        .replace("[server]\n", &format!("[server]\nca_file = {:?}\n", ca.pem_path));
    let config = pivox::config::Config::parse(&text, "test.toml", Path::new(".")).unwrap().config;
    let probes = Probes::default();
    let options = RunOptions {
        turns: Some(1),
        probes: probes.clone(),
        epoch: Instant::now() + Duration::from_millis(100),
        ..Default::default()
    };
    let report = tokio::time::timeout(TURN_LIMIT, daemon::run(config, options)).await.unwrap().unwrap();
    assert_eq!(report.turns.len(), 1);
    let heard = server.utterances();
    assert_eq!(heard.len(), 1);
    let (r, _) = best_correlation(&speech()[..16_000], &heard[0].samples, 800);
    assert!(r > 0.9, "the utterance crossed TLS intact: correlation {r:.3}");
    assert!(probes.speaker.lock().samples.len() > 16_000, "the echo was played");
    server.kill().await;
}
