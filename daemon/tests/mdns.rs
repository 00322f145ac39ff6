//! pivox advertises itself as Home Assistant discovers ESPHome devices: the `pivox` binary runs
//! in a network namespace this test creates (only its loopback, multicast on), and a browser in
//! the same namespace resolves `_esphomelib._tcp` with the TXT records HA reads. Needs root (for
//! `ip netns`), as CI has; nothing leaves the namespace.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent};

struct Namespace(String);

impl Namespace {
    fn create() -> Self {
        let name = format!("pivox-mdns-{}", std::process::id());
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().expect("ip (iproute2) runs");
            assert!(status.success(), "ip {args:?} failed (root is needed for network namespaces)");
        };
        ip(&["netns", "add", &name]);
        let ns = Self(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up", "multicast", "on"]);
        // Multicast goes out on loopback, the only interface there is.
        ip(&["-n", &ns.0, "route", "add", "224.0.0.0/4", "dev", "lo"]);
        ns
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The first `_esphomelib._tcp` service a fresh browser resolves within 15 s.
fn resolve() -> Option<Box<mdns_sd::ResolvedService>> {
    let browser = ServiceDaemon::new().unwrap();
    let events = browser.browse("_esphomelib._tcp.local.").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut found = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(service)) => {
                found = Some(service);
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = browser.shutdown();
    found
}

#[test]
fn the_esphome_service_is_found_in_a_network_namespace_with_the_records_home_assistant_reads_and_the_key_once_set() {
    let ns = Namespace::create();
    let dir = std::env::temp_dir().join(format!("pivox-mdns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let speech = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/speech.wav");
    let config = dir.join("pivox.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nkind = \"esphome\"\nlisten = \"127.0.0.1:6053\"\nname = \"pivox-kitchen\"\nfriendly_name = \"Kitchen\"\n\
             mac = \"02:00:00:00:00:4B\"\nstate_dir = {:?}\n[microphone]\nbackend = \"sim\"\ndevice = {:?}\n\
             [speaker]\nbackend = \"sim\"\n[button]\nbackend = \"sim\"\ndevice = \"press 60, release 61\"\n[led]\nbackend = \"sim\"\n",
            dir.display().to_string(),
            speech.display().to_string()
        ),
    )
    .unwrap();
    let pivox = Command::new("ip")
        .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_pivox"), "run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The browser joins the namespace on a thread of its own (a thread's namespace is its own;
    // mdns-sd's thread, started from it, inherits it).
    let netns = format!("/var/run/netns/{}", ns.0);
    let (found, keyed) = std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).unwrap();
        assert_eq!(unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) }, 0);
        let found = resolve();
        // HA sets the key (over the network, in the namespace): the advertisement now says so.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut ha =
                pivox_devtools::fake_esphome::FakeClient::connect(([127, 0, 0, 1], 6053).into(), None).await.unwrap();
            ha.hello("Home Assistant 2026.2.3").await.unwrap();
            let key = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_vec();
            ha.send(&pivox::link::esphome::messages::NoiseEncryptionSetKeyRequest { key }).await.unwrap();
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let keyed = loop {
            let service = resolve();
            let keyed =
                service.as_ref().is_some_and(|s| s.txt_properties.get_property_val_str("api_encryption").is_some());
            if keyed || Instant::now() > deadline {
                break service;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        (found, keyed)
    })
    .join()
    .unwrap();

    unsafe { libc::kill(pivox.id() as i32, libc::SIGTERM) };
    let output = pivox.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    let service = found.unwrap_or_else(|| panic!("no _esphomelib._tcp service resolved; pivox said:\n{log}"));
    assert_eq!(service.fullname, "pivox-kitchen._esphomelib._tcp.local.");
    assert_eq!(service.host, "pivox-kitchen.local.");
    assert_eq!(service.port, 6053);
    let txt = |key: &str| service.txt_properties.get_property_val_str(key).map(str::to_string);
    assert_eq!(txt("mac").as_deref(), Some("02000000004b"));
    assert_eq!(txt("friendly_name").as_deref(), Some("Kitchen"));
    assert_eq!(txt("platform").as_deref(), Some("pivox"));
    assert!(txt("version").is_some() && txt("network").is_some() && txt("board").is_some());
    assert_eq!(txt("api_encryption"), None, "no key yet: HA may provision one");
    let keyed = keyed.expect("resolved again after the key was set");
    let encryption = keyed.txt_properties.get_property_val_str("api_encryption");
    assert_eq!(encryption, Some("Noise_NNpsk0_25519_ChaChaPoly_SHA256"), "the key HA set is advertised");
    assert!(output.status.success(), "pivox stopped cleanly on SIGTERM:\n{log}");
}
