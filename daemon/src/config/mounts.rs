//! Which host paths a server may never have bind-mounted: `/`, the home directory as a whole, the
//! container engine's socket (which is root on the host), the gateway's own socket and
//! configuration, and the folders where tools keep credentials.
//!
//! A source is refused when it is one of those paths, lies inside one, or contains one (mounting
//! `/var` would hand out `/var/run/docker.sock`). Paths are compared both as written (made
//! lexically clean) and with symbolic links resolved, so a link to `~/.ssh` is refused too.

use std::path::{Component, Path, PathBuf};

/// Credential folders and files under the home directory.
const HOME_CREDENTIALS: &[&str] = &[
    ".ssh",
    ".aws",
    ".gnupg",
    ".docker",
    ".kube",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".config/containers",
    ".config/hub",
    ".password-store",
    ".local/share/keyrings",
    ".local/share/containers",
    ".pki",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".terraform.d",
    ".vault-token",
];

/// Engine sockets at their usual places, whatever the user's environment says.
const ENGINE_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/var/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
];

/// What the rules protect on this host.
pub struct HostPaths {
    home: Option<PathBuf>,
    /// Engine sockets, credential folders and the gateway's own files.
    protected: Vec<(PathBuf, &'static str)>,
}

impl HostPaths {
    /// The protected paths of the user the daemon runs as, from its environment.
    pub fn from_env() -> HostPaths {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        HostPaths::new(
            var("HOME"),
            var("XDG_RUNTIME_DIR"),
            var("XDG_CONFIG_HOME"),
            std::env::var("DOCKER_HOST").ok(),
        )
    }

    pub fn new(
        home: Option<PathBuf>,
        runtime_dir: Option<PathBuf>,
        config_home: Option<PathBuf>,
        docker_host: Option<String>,
    ) -> HostPaths {
        let mut protected: Vec<(PathBuf, &'static str)> = ENGINE_SOCKETS
            .iter()
            .map(|p| (PathBuf::from(p), "the container engine's socket"))
            .collect();
        if let Some(path) = docker_host
            .as_deref()
            .and_then(|host| host.strip_prefix("unix://"))
        {
            protected.push((path.into(), "the container engine's socket"));
        }
        if let Some(runtime) = &runtime_dir {
            for socket in ["podman/podman.sock", "docker.sock"] {
                protected.push((runtime.join(socket), "the container engine's socket"));
            }
            protected.push((runtime.join("mcp-gateway.sock"), "the gateway's socket"));
        }
        if let Some(home) = &home {
            for folder in HOME_CREDENTIALS {
                protected.push((home.join(folder), "a credential folder"));
            }
        }
        let config_home = config_home.or_else(|| home.as_ref().map(|h| h.join(".config")));
        if let Some(config) = config_home {
            protected.push((
                config.join("mcp-gateway"),
                "the gateway's configuration and secrets",
            ));
            protected.push((config.join("gcloud"), "a credential folder"));
        }
        HostPaths { home, protected }
    }

    /// Why `source` may not be bind-mounted, if it may not.
    pub fn check(&self, source: &Path) -> Result<(), String> {
        if !source.is_absolute() {
            return Err(format!(
                "mount source {} must be an absolute path",
                source.display()
            ));
        }
        let refuse =
            |reason: String| Err(format!("mount of {} refused: {reason}", source.display()));
        for candidate in forms(source) {
            if candidate.parent().is_none() {
                return refuse("it is the root of the file system".into());
            }
            if self
                .home
                .as_deref()
                .is_some_and(|home| forms(home).contains(&candidate))
            {
                return refuse("it is the home directory as a whole".into());
            }
            for (path, what) in &self.protected {
                for path in forms(path) {
                    if candidate == path {
                        return refuse(format!("it is {what} {}", path.display()));
                    }
                    if candidate.starts_with(&path) {
                        return refuse(format!("it is inside {what} {}", path.display()));
                    }
                    if path.starts_with(&candidate) {
                        return refuse(format!("it contains {what} {}", path.display()));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The path made lexically clean, and with symbolic links resolved when it exists.
fn forms(path: &Path) -> Vec<PathBuf> {
    let clean = clean(path);
    let mut forms = vec![clean.clone()];
    if let Ok(real) = std::fs::canonicalize(&clean)
        && real != clean
    {
        forms.push(real);
    }
    forms
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostPaths {
        HostPaths::new(
            Some("/home/ada".into()),
            Some("/run/user/1000".into()),
            None,
            Some("unix:///srv/engine.sock".into()),
        )
    }

    #[test]
    fn dangerous_sources_are_refused_with_the_reason() {
        let host = host();
        for (source, reason) in [
            ("/", "root of the file system"),
            ("/home/ada", "home directory as a whole"),
            ("/home/ada/", "home directory as a whole"),
            ("/home/ada/work/..", "home directory as a whole"),
            ("/home", "contains a credential folder /home/ada/.ssh"),
            ("/var/run/docker.sock", "engine's socket"),
            ("/run/docker.sock", "engine's socket"),
            ("/var/run", "contains the container engine's socket"),
            ("/run/user/1000/podman/podman.sock", "engine's socket"),
            ("/run/user/1000", "contains"),
            ("/srv/engine.sock", "engine's socket"),
            ("/home/ada/.ssh", "credential folder"),
            ("/home/ada/.ssh/id_ed25519", "inside a credential folder"),
            ("/home/ada/.aws", "credential folder"),
            ("/home/ada/.gnupg", "credential folder"),
            ("/home/ada/.docker/config.json", "credential folder"),
            ("/home/ada/.kube", "credential folder"),
            ("/home/ada/.config/gcloud", "credential folder"),
            ("/home/ada/.azure", "credential folder"),
            ("/home/ada/.config", "contains"),
            ("/home/ada/.config/mcp-gateway/secrets.toml", "secrets"),
        ] {
            let err = host.check(Path::new(source)).unwrap_err();
            assert!(err.contains(reason), "{source}: {err}");
            assert!(err.starts_with("mount of "), "{err}");
        }
    }

    #[test]
    fn ordinary_sources_and_relative_paths() {
        let host = host();
        for source in [
            "/home/ada/projects",
            "/srv/data",
            "/home/ada/.sshkeys-not",
            "/tmp",
        ] {
            host.check(Path::new(source)).unwrap();
        }
        assert!(
            host.check(Path::new("data"))
                .unwrap_err()
                .contains("absolute")
        );
    }

    #[test]
    fn symbolic_links_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::os::unix::fs::symlink(home.join(".ssh"), dir.path().join("keys")).unwrap();
        let host = HostPaths::new(Some(home), None, None, None);
        let err = host.check(&dir.path().join("keys")).unwrap_err();
        assert!(err.contains("credential folder"), "{err}");
    }
}
