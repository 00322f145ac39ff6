//! pivox on the network as ESPHome devices are: the `_esphomelib._tcp` service over mDNS,
//! with the TXT records Home Assistant's discovery reads, so that HA offers to add the device
//! by itself ("Discovered: pivox-kitchen"). `mdns-sd` answers queries on its own thread; the
//! advertisement is withdrawn (goodbye packets) when the link closes.
//!
//! HA reads `mac` (required), `friendly_name`, and `api_encryption`: when present, HA asks
//! the user for the key at once; when absent (a device that lets HA provision its key), HA
//! tries plaintext first. The others (`version`, `platform`, `board`, `network`) say what the
//! device is, as ESPHome's do.

use std::net::SocketAddr;
use std::sync::Arc;

use mdns_sd::{ServiceDaemon, ServiceInfo};

use super::device::Device;
use super::frame::NOISE_PATTERN;

/// ESPHome's service type.
pub const SERVICE: &str = "_esphomelib._tcp.local.";

/// A running advertisement.
pub struct Advert {
    daemon: ServiceDaemon,
    /// Advertises again when HA sets or removes the key (`api_encryption` changes).
    watcher: tokio::task::JoinHandle<()>,
}

impl Advert {
    /// Advertises `device` listening on `listen` (all interfaces' addresses when it listens on all).
    pub fn start(device: &Arc<Device>, listen: SocketAddr) -> Result<Self, String> {
        let daemon = ServiceDaemon::new().map_err(|e| format!("cannot start mDNS: {e}"))?;
        daemon.register(service(device, listen)?).map_err(|e| format!("cannot advertise over mDNS: {e}"))?;
        log::info!("advertised over mDNS as {}.{SERVICE} (Home Assistant discovers it)", device.name);
        let (mut keyed, device, again) = (device.keyed(), device.clone(), daemon.clone());
        let watcher = tokio::spawn(async move {
            while keyed.changed().await.is_ok() {
                let registered =
                    service(&device, listen).and_then(|info| again.register(info).map_err(|e| e.to_string()));
                if let Err(e) = registered {
                    return log::warn!("cannot update the mDNS advertisement: {e}");
                }
            }
        });
        Ok(Self { daemon, watcher })
    }
}

/// The service record of `device`, with its TXT records as they are now.
fn service(device: &Device, listen: SocketAddr) -> Result<ServiceInfo, String> {
    let properties = txt(device);
    let host = format!("{}.local.", device.name);
    let ip = if listen.ip().is_unspecified() { String::new() } else { listen.ip().to_string() };
    let info = ServiceInfo::new(SERVICE, &device.name, &host, ip.as_str(), listen.port(), &properties[..])
        .map_err(|e| format!("cannot advertise over mDNS: {e}"))?;
    Ok(if listen.ip().is_unspecified() { info.enable_addr_auto() } else { info })
}

impl Drop for Advert {
    fn drop(&mut self) {
        self.watcher.abort();
        // Sends the goodbye packets and ends mdns-sd's thread; not waited for.
        let _ = self.daemon.shutdown();
    }
}

/// The TXT records of `device`.
pub fn txt(device: &Device) -> Vec<(&'static str, String)> {
    let mut records = vec![
        ("friendly_name", device.friendly_name.clone()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("mac", device.mac.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_lowercase()).collect()),
        ("platform", "pivox".to_string()),
        ("board", "raspberry-pi".to_string()),
        ("network", "wifi".to_string()),
        ("project_name", "pivox.satellite".to_string()),
        ("project_version", env!("CARGO_PKG_VERSION").to_string()),
    ];
    if device.key().is_some() {
        records.push(("api_encryption", NOISE_PATTERN.to_string()));
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::esphome::device::Encryption;

    #[test]
    fn txt_records_carry_what_home_assistant_reads() {
        let device = Device::new("kitchen".into(), "Kitchen".into(), "02:00:00:00:00:4A".into(), Encryption::Plaintext);
        let records = txt(&device);
        let get = |key: &str| records.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("mac"), Some("02000000004a"));
        assert_eq!(get("friendly_name"), Some("Kitchen"));
        assert_eq!(get("api_encryption"), None, "a device HA may provision says nothing of a key");
        let keyed = Device::new("k".into(), "K".into(), "02:00:00:00:00:4A".into(), Encryption::Key([1; 32]));
        assert!(txt(&keyed).iter().any(|(k, v)| *k == "api_encryption" && v == NOISE_PATTERN));
    }
}
