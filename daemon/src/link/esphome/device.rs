//! Who pivox is on the ESPHome API: its node name, MAC address and what it can do, and its
//! Noise key — configured, provisioned by Home Assistant (kept in the state directory, 0600),
//! or none (plaintext). Shared by every client connection.

use std::path::PathBuf;
use std::sync::Mutex;

use super::messages::{DeviceInfoResponse, feature};

/// The voice features pivox offers HA: push-to-talk turns with audio over the API, replies and
/// announcements as URLs pivox fetches itself (no SPEAKER flag: HA need not stream them),
/// timers and conversations HA starts.
pub const FEATURES: u32 =
    feature::VOICE_ASSISTANT | feature::API_AUDIO | feature::TIMERS | feature::ANNOUNCE | feature::START_CONVERSATION;

/// How connections are protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// This key, from the config.
    Key([u8; 32]),
    /// HA sets a key on its first connection (kept in `file`); plaintext until then.
    Provision { file: PathBuf },
    /// None: anyone on the network can talk to pivox.
    Plaintext,
}

pub struct Device {
    pub name: String,
    pub friendly_name: String,
    /// `AA:BB:CC:DD:EE:FF`, as ESPHome devices give it.
    pub mac: String,
    encryption: Encryption,
    /// The key connections use now (changes once, when HA provisions one).
    key: Mutex<Option<[u8; 32]>>,
    /// Tells plaintext connections that a key is set: they close, and come back encrypted.
    keyed: tokio::sync::watch::Sender<bool>,
}

impl Device {
    pub fn new(name: String, friendly_name: String, mac: String, encryption: Encryption) -> Self {
        let key = match &encryption {
            Encryption::Key(key) => Some(*key),
            Encryption::Provision { file } => read_key_file(file),
            Encryption::Plaintext => None,
        };
        let keyed = tokio::sync::watch::Sender::new(key.is_some());
        Self { name, friendly_name, mac, encryption, key: Mutex::new(key), keyed }
    }

    /// `true` while a key is set; changes when HA sets or removes one.
    pub fn keyed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.keyed.subscribe()
    }

    /// The Noise key a new connection must use; `None`: plaintext.
    pub fn key(&self) -> Option<[u8; 32]> {
        *self.key.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether HA may set a key now: provisioning is on and no key is set yet.
    pub fn provisionable(&self) -> bool {
        matches!(self.encryption, Encryption::Provision { .. }) && self.key().is_none()
    }

    /// Keeps the key HA sent (`NoiseEncryptionSetKeyRequest`); connections from now on use it.
    pub fn provision(&self, key: &[u8]) -> Result<(), String> {
        let Encryption::Provision { file } = &self.encryption else {
            return Err("this device's key is set in its config".into());
        };
        // HA sends the key as ESPHome writes it, in base64 (44 bytes); 32 raw bytes are taken too.
        let key: [u8; 32] = match key.len() {
            32 => key.try_into().unwrap_or([0; 32]),
            _ => decode_key(&String::from_utf8_lossy(key))?,
        };
        let mut current = self.key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.is_some() {
            return Err("a key is set already".into());
        }
        write_key_file(file, &key).map_err(|e| format!("cannot keep the key in {}: {e}", file.display()))?;
        *current = Some(key);
        self.keyed.send_replace(true);
        Ok(())
    }

    /// Forgets the key HA set (HA removing the device sends an empty key): new connections are
    /// plaintext again, and the next HA to add the device sets a new one.
    pub fn forget(&self) -> Result<(), String> {
        let Encryption::Provision { file } = &self.encryption else {
            return Err("this device's key is set in its config; remove it there".into());
        };
        let mut current = self.key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match std::fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", file.display())),
        }
        *current = None;
        self.keyed.send_replace(false);
        Ok(())
    }

    pub fn info(&self) -> DeviceInfoResponse {
        DeviceInfoResponse {
            name: self.name.clone(),
            mac_address: self.mac.clone(),
            // HA compares this with its own ESPHome version for update hints; pivox is not
            // ESPHome firmware, so it names itself.
            esphome_version: concat!("pivox ", env!("CARGO_PKG_VERSION")).into(),
            compilation_time: String::new(),
            model: "pivox voice satellite".into(),
            project_name: "pivox.satellite".into(),
            project_version: env!("CARGO_PKG_VERSION").into(),
            manufacturer: "pivox".into(),
            friendly_name: self.friendly_name.clone(),
            voice_assistant_feature_flags: FEATURES,
            api_encryption_supported: !matches!(self.encryption, Encryption::Plaintext),
            api_encryption_provisionable: self.provisionable(),
        }
    }
}

/// Decodes a base64 Noise key as ESPHome writes them (44 characters, 32 bytes).
pub fn decode_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64 ({e}); e.g. the output of `openssl rand -base64 32`"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, not 32; e.g. the output of `openssl rand -base64 32`", b.len()))
}

fn read_key_file(file: &std::path::Path) -> Option<[u8; 32]> {
    if !file.exists() {
        return None;
    }
    let text = match crate::files::read_text_bounded(file, crate::files::TOKEN_MAX) {
        Ok(text) => text,
        Err(e) => {
            log::warn!("cannot read the encryption key Home Assistant set: {e}; waiting for a new one");
            return None;
        }
    };
    match decode_key(&text) {
        Ok(key) => Some(key),
        Err(e) => {
            log::warn!("{} holds no usable key ({e}); waiting for Home Assistant to set a new one", file.display());
            None
        }
    }
}

fn write_key_file(file: &std::path::Path, key: &[u8; 32]) -> std::io::Result<()> {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(key) + "\n";
    crate::files::write_atomic(file, &text, 0o600)
}

/// The MAC address HA knows the device by: the first physical network interface's (wired
/// before wireless, as their names sort), or one made from the machine id.
pub fn default_mac() -> String {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    // Physical interfaces (a `device` link in sysfs) first, wired before wireless by name:
    // a bridge, bond or container interface's address can change or be shared.
    names.sort_by_key(|name| (!std::path::Path::new(&format!("/sys/class/net/{name}/device")).exists(), name.clone()));
    for name in names.iter().filter(|n| *n != "lo") {
        if let Ok(text) = small_text(&PathBuf::from(format!("/sys/class/net/{name}/address"))) {
            let mac = text.trim().to_ascii_uppercase();
            if mac.len() == 17 && mac != "00:00:00:00:00:00" {
                return mac;
            }
        }
    }
    let seed = small_text(std::path::Path::new("/etc/machine-id")).unwrap_or_default();
    // Locally administered, unicast: 02:…, the rest from the machine id.
    let hex: Vec<u8> = seed.trim().bytes().take(10).collect();
    let mut mac = String::from("02");
    for pair in hex.chunks(2) {
        mac.push(':');
        mac.push_str(&String::from_utf8_lossy(pair).to_ascii_uppercase());
    }
    if mac.len() == 17 { mac } else { "02:00:00:00:00:01".into() }
}

fn small_text(path: &std::path::Path) -> Result<String, String> {
    crate::files::read_text_bounded(path, 4096)
}

/// This machine's host name, as a node name: lower case letters, digits and hyphens.
pub fn default_name() -> String {
    // gethostname, not /proc/sys/kernel/hostname: pivox.service hides /proc/sys (ProcSubset=pid).
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the name is NUL-terminated within it.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(0);
    let host = if ok { String::from_utf8_lossy(&buf[..end]).into_owned() } else { String::new() };
    let name = sanitize(&host);
    if name.is_empty() { "pivox".into() } else { name }
}

/// A node name ESPHome accepts: lower case ASCII letters, digits and hyphens, at most 31.
pub fn sanitize(text: &str) -> String {
    let name: String = text
        .trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(31)
        .collect();
    name.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_from_base64_and_say_what_is_wrong() {
        let key = decode_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        assert_eq!(key[31], 31);
        assert!(decode_key("AAEC").unwrap_err().contains("3 bytes, not 32"));
        assert!(decode_key("not base64!").unwrap_err().contains("not base64"));
    }

    #[test]
    fn a_provisioned_key_is_kept_0600_and_read_back_after_a_restart() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pivox-esphome-key-{}", std::process::id()));
        let file = dir.join("esphome-key");
        let _ = std::fs::remove_file(&file);
        let device = Device::new(
            "p".into(),
            "P".into(),
            "02:00:00:00:00:01".into(),
            Encryption::Provision { file: file.clone() },
        );
        assert!(device.provisionable() && device.info().api_encryption_provisionable);
        assert!(device.provision(&[1u8; 31]).unwrap_err().contains("not base64"));
        assert!(device.provision(b"AAEC").unwrap_err().contains("3 bytes, not 32"));
        // As HA sends it: base64 text.
        device.provision(b"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").unwrap();
        assert_eq!(device.key(), Some([7u8; 32]));
        assert!(!device.info().api_encryption_provisionable);
        assert!(device.provision(&[8u8; 32]).is_err(), "set once");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let again = Device::new("p".into(), "P".into(), "m".into(), Encryption::Provision { file: file.clone() });
        assert_eq!(again.key(), Some([7u8; 32]), "read back after a restart");
        again.forget().unwrap();
        assert!(again.key().is_none() && !file.exists() && again.provisionable());
        assert!(Device::new("p".into(), "P".into(), "m".into(), Encryption::Key([1; 32])).forget().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn node_names_are_what_esphome_accepts() {
        assert_eq!(sanitize(" Kitchen Pi_2\n"), "kitchen-pi-2");
        assert_eq!(sanitize("---"), "");
        assert_eq!(default_mac().len(), 17);
    }
}
