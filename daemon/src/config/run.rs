//! How a server's container runs: memory, CPU and process limits, network, bind mounts and the
//! idle timeout. A server's catalog entry may set each; `config.toml`'s `[defaults]` table sets
//! the limits and the idle timeout for every server that does not.
//!
//! Each value is checked as it is parsed, so a bad one in a hand-edited file is reported with its
//! line, and one from `mcpctl` is refused before anything is written.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::mounts::HostPaths;

/// `config.toml`: settings for the whole gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub defaults: Defaults,
    /// The optional Streamable HTTP face; absent is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<super::http::HttpSettings>,
    /// `[process]`: whether servers of `kind = "process"` may run at all.
    #[serde(default, skip_serializing_if = "ProcessSettings::is_default")]
    pub process: ProcessSettings,
}

/// `[process]`. Off unless this file, which only the user edits, turns it on: a catalog entry
/// (an import, the built-in catalog, `mcpctl server add`) alone never runs a host command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSettings {
    #[serde(default)]
    pub enabled: bool,
}

impl ProcessSettings {
    fn is_default(&self) -> bool {
        *self == ProcessSettings::default()
    }
}

/// `[defaults]`: what a server gets when its catalog entry does not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub memory: Option<Memory>,
    pub cpus: Option<Cpus>,
    pub pids: Option<NonZeroU32>,
    /// Seconds without a request before a container is removed; 0 keeps it for good.
    pub idle_timeout: Option<u64>,
}

pub const DEFAULT_MEMORY: u64 = 512 * 1024 * 1024;
pub const DEFAULT_NANO_CPUS: u64 = 1_000_000_000;
pub const DEFAULT_PIDS: u32 = 256;
pub const DEFAULT_IDLE_TIMEOUT: u64 = 30 * 60;

/// Everything about a container's run that is not its image, command or environment, with the
/// defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    pub memory: u64,
    pub nano_cpus: u64,
    pub pids: u32,
    pub network: Network,
    pub mounts: Vec<Mount>,
    /// `None`: never stopped for idleness.
    pub idle_timeout: Option<Duration>,
}

impl Defaults {
    /// The settings a server runs with: its own, else these defaults, else the built-in ones.
    pub fn resolve(&self, def: &super::ServerDef) -> RunSettings {
        let idle = def
            .idle_timeout
            .or(self.idle_timeout)
            .unwrap_or(DEFAULT_IDLE_TIMEOUT);
        RunSettings {
            memory: def.memory.or(self.memory).map_or(DEFAULT_MEMORY, |m| m.0),
            nano_cpus: def.cpus.or(self.cpus).map_or(DEFAULT_NANO_CPUS, |c| c.0),
            pids: def.pids.or(self.pids).map_or(DEFAULT_PIDS, NonZeroU32::get),
            network: def.network.clone().unwrap_or(Network::None),
            mounts: def.mounts.clone(),
            idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
        }
    }
}

/// A memory limit in bytes, written like Docker's `--memory`: `512m`, `1g`, `1.5g`, `65536k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Memory(pub u64);

/// The least the engines accept.
const MIN_MEMORY: u64 = 6 * 1024 * 1024;

impl TryFrom<String> for Memory {
    type Error = String;

    fn try_from(text: String) -> Result<Memory, String> {
        let bad = || {
            format!(
                "invalid memory size {text:?}: write a number with an optional unit b, k, m or g, as in 512m"
            )
        };
        let lower = text.trim().to_ascii_lowercase();
        let lower = lower
            .strip_suffix("ib")
            .or_else(|| lower.strip_suffix('b'))
            .unwrap_or(&lower);
        let (number, scale) = match lower.char_indices().last() {
            Some((i, 'k')) => (&lower[..i], 1u64 << 10),
            Some((i, 'm')) => (&lower[..i], 1 << 20),
            Some((i, 'g')) => (&lower[..i], 1 << 30),
            _ => (lower, 1),
        };
        if !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(bad());
        }
        let number: f64 = number.parse().map_err(|_| bad())?;
        let bytes = number * scale as f64;
        if !(0.0..=i64::MAX as f64).contains(&bytes) {
            return Err(bad());
        }
        let bytes = bytes.round() as u64;
        if bytes < MIN_MEMORY {
            return Err(format!(
                "memory size {text:?} is below the 6m the container engines accept"
            ));
        }
        Ok(Memory(bytes))
    }
}

impl From<Memory> for String {
    fn from(memory: Memory) -> String {
        let bytes = memory.0;
        for (unit, scale) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
            if bytes.is_multiple_of(scale) {
                return format!("{}{unit}", bytes / scale);
            }
        }
        bytes.to_string()
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from(*self))
    }
}

/// A CPU limit, kept as billionths of a CPU (the engine's `NanoCpus`); written as a number of CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Cpus(pub u64);

impl TryFrom<f64> for Cpus {
    type Error = String;

    fn try_from(cpus: f64) -> Result<Cpus, String> {
        if !(0.01..=1024.0).contains(&cpus) {
            return Err(format!(
                "invalid cpus {cpus}: write a number of CPUs from 0.01 to 1024"
            ));
        }
        Ok(Cpus((cpus * 1e9).round() as u64))
    }
}

impl From<Cpus> for f64 {
    fn from(cpus: Cpus) -> f64 {
        cpus.0 as f64 / 1e9
    }
}

/// A server's network: none (the default), the engine's default network, or a named one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "NetworkValue", into = "NetworkValue")]
pub enum Network {
    None,
    Default,
    Named(String),
}

/// `network = true`, `false` or `"NAME"` in the catalog.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NetworkValue {
    Enabled(bool),
    Named(String),
}

impl Network {
    /// A named network; `host` and `container:…` would share a namespace with the host or
    /// another container, so they are refused.
    pub fn named(name: &str) -> Result<Network, String> {
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        match name {
            "none" => Ok(Network::None),
            "host" => {
                Err("network \"host\" is refused: it shares the host's network namespace".into())
            }
            _ if !valid => Err(format!(
                "invalid network {name:?}: write a network name (letters, digits, '_', '.', '-'), true or false"
            )),
            _ => Ok(Network::Named(name.to_owned())),
        }
    }
}

impl TryFrom<NetworkValue> for Network {
    type Error = String;

    fn try_from(value: NetworkValue) -> Result<Network, String> {
        match value {
            NetworkValue::Enabled(false) => Ok(Network::None),
            NetworkValue::Enabled(true) => Ok(Network::Default),
            NetworkValue::Named(name) => Network::named(&name),
        }
    }
}

impl From<Network> for NetworkValue {
    fn from(network: Network) -> NetworkValue {
        match network {
            Network::None => NetworkValue::Enabled(false),
            Network::Default => NetworkValue::Enabled(true),
            Network::Named(name) => NetworkValue::Named(name),
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Network::None => f.write_str("none"),
            Network::Default => f.write_str("default"),
            Network::Named(name) => f.write_str(name),
        }
    }
}

/// A host path bind-mounted into the container, read-only unless marked writable. Only
/// [`Mount::new`] makes one, so every mount has passed the host's refusal rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MountValue", into = "MountValue")]
pub struct Mount {
    source: PathBuf,
    target: PathBuf,
    writable: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MountValue {
    source: PathBuf,
    target: PathBuf,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    writable: bool,
}

impl Mount {
    pub fn new(source: PathBuf, target: PathBuf, writable: bool) -> Result<Mount, String> {
        HostPaths::from_env().check(&source)?;
        if !target.is_absolute() {
            return Err(format!(
                "mount target {} must be an absolute path",
                target.display()
            ));
        }
        Ok(Mount {
            source,
            target,
            writable,
        })
    }

    pub fn source(&self) -> &std::path::Path {
        &self.source
    }

    pub fn target(&self) -> &std::path::Path {
        &self.target
    }

    pub fn writable(&self) -> bool {
        self.writable
    }
}

impl TryFrom<MountValue> for Mount {
    type Error = String;

    fn try_from(value: MountValue) -> Result<Mount, String> {
        Mount::new(value.source, value.target, value.writable)
    }
}

impl From<Mount> for MountValue {
    fn from(mount: Mount) -> MountValue {
        MountValue {
            source: mount.source,
            target: mount.target,
            writable: mount.writable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_like_dockers_and_print_canonically() {
        for (text, bytes, canonical) in [
            ("512m", 512 << 20, "512m"),
            ("1g", 1 << 30, "1g"),
            ("1.5g", 3 << 29, "1536m"),
            ("1G", 1 << 30, "1g"),
            ("256MiB", 256 << 20, "256m"),
            ("65536k", 64 << 20, "64m"),
            ("10485760", 10 << 20, "10m"),
        ] {
            let memory = Memory::try_from(text.to_owned()).unwrap();
            assert_eq!(memory.0, bytes, "{text}");
            assert_eq!(String::from(memory), canonical);
        }
        for bad in ["", "m", "12x", "1m", "-5m", "1e400g", "5 gigs"] {
            assert!(Memory::try_from(bad.to_owned()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cpus_networks_and_defaults() {
        assert_eq!(Cpus::try_from(0.5).unwrap().0, 500_000_000);
        assert!(Cpus::try_from(0.0).is_err());
        assert!(Cpus::try_from(f64::NAN).is_err());
        assert_eq!(Network::named("none").unwrap(), Network::None);
        assert!(Network::named("host").is_err());
        assert!(Network::named("container:abc").is_err());
        assert_eq!(
            Network::named("my-net").unwrap(),
            Network::Named("my-net".into())
        );

        let def: super::super::ServerDef =
            toml::from_str("image = \"i\"\ncpus = 0.25\nidle_timeout = 0\n").unwrap();
        let defaults = Defaults {
            memory: Some(Memory(64 << 20)),
            idle_timeout: Some(5),
            ..Default::default()
        };
        let run = defaults.resolve(&def);
        assert_eq!(run.memory, 64 << 20);
        assert_eq!(run.nano_cpus, 250_000_000);
        assert_eq!(run.pids, DEFAULT_PIDS);
        assert_eq!(run.network, Network::None);
        assert_eq!(run.idle_timeout, None);
        let plain: super::super::ServerDef = toml::from_str("image = \"i\"").unwrap();
        assert_eq!(
            Defaults::default().resolve(&plain).idle_timeout,
            Some(Duration::from_secs(DEFAULT_IDLE_TIMEOUT))
        );
    }
}
