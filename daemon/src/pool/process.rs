//! `kind = "process"`: a local command the daemon runs itself, speaking MCP on its stdin and
//! stdout, for trusted servers and for development. It runs behind the same slots as a
//! container; this module starts it, tells who it is (for the list cache), and stops it.
//!
//! Such a process must never outlive the daemon nor linger as a zombie. It leads a process group
//! of its own, so that stopping it (SIGTERM, then SIGKILL after `GRACE`) reaches what it started
//! too; its exit is reaped by a task that owns the child (which is killed if that task is
//! dropped); and `PR_SET_PDEATHSIG` kills it when the daemon dies, SIGKILL included. The kernel
//! sends that signal when the *thread* that forked exits, not the process, so every spawn
//! happens on one thread of the pool's own that lives as long as the pool (`Spawner`): tokio's
//! blocking-pool threads exit when idle and would take their children with them. A daemon that
//! dies also closes the pipes, so a server reading its stdin sees end of input.
//!
//! The environment is not the daemon's (it may hold secrets, `MCP_GATEWAY_SECRET_*`): only the
//! variables in `BASE_ENV` are passed on, then the entry's `env` (with the profile's values) and
//! its secrets.

use std::future::Future;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::{oneshot, watch};

use crate::config::ServerDef;
use crate::logtail::{Drained, LogTail};

/// The daemon's variables a process server gets, when the daemon has them: where to find
/// programs, who and where the user is, the locale and time zone, temporary files.
const BASE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
];

/// `PATH` for a daemon that has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long a stopped server has between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce() + Send>;

/// The thread every process server is forked from (see the module comment), started on first
/// use and ended when the pool drops it.
#[derive(Default)]
pub struct Spawner {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Spawner {
    /// Runs `job` on the spawner thread, inside the runtime of the caller.
    fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, String> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || drop(tx.send(job())));
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.is_none() {
            let (sender, receiver) = mpsc::channel::<Job>();
            let runtime = tokio::runtime::Handle::current();
            std::thread::Builder::new()
                .name("process-spawner".into())
                .spawn(move || {
                    // tokio's process support needs its runtime to reap the children.
                    let _runtime = runtime.enter();
                    for job in receiver {
                        job();
                    }
                })
                .map_err(|err| format!("cannot start the process spawner thread: {err}"))?;
            *jobs = Some(sender);
        }
        jobs.as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| "the process spawner thread is gone".to_owned())?;
        Ok(rx)
    }
}

/// A process server just started.
pub struct Spawned {
    pub pid: u32,
    pub stdin: ChildStdin,
    pub stdout: Drained<ChildStdout>,
    pub process: Process,
}

/// The handle the pool keeps on a running process server.
pub struct Process {
    pid: u32,
    /// `None` while it runs, then its exit status (`None` inside when a signal ended it).
    exit: watch::Receiver<Option<Option<i64>>>,
}

impl Process {
    /// Resolves when the process has exited and been reaped, with its exit status.
    pub fn exited(&self) -> impl Future<Output = Option<i64>> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            match exit.wait_for(Option::is_some).await {
                Ok(status) => status.flatten(),
                Err(_) => None,
            }
        }
    }

    /// Stops the process and whatever it started: SIGTERM to its group, SIGKILL to the group
    /// after `GRACE`, and returns once the process is reaped. The group is only signalled
    /// while its leader has not been reaped, so its id cannot belong to anyone else yet.
    pub async fn stop(&self) {
        let group = Pid::from_raw(self.pid as i32);
        if self.exit.borrow().is_some() {
            return;
        }
        let _ = killpg(group, Signal::SIGTERM);
        if tokio::time::timeout(GRACE, self.exited()).await.is_err() {
            tracing::warn!(
                pid = self.pid,
                "the server did not exit on SIGTERM; killing it"
            );
            let _ = killpg(group, Signal::SIGKILL);
        }
        self.exited().await;
    }
}

/// The program `def` runs: its first argument, found in the `PATH` it will get when it has no
/// slash, else taken relative to its working directory; canonical, so that its identity is the
/// file's.
pub fn program(def: &ServerDef) -> Result<PathBuf, String> {
    let name = def
        .command
        .first()
        .ok_or_else(|| "a process server needs a command".to_owned())?;
    let found = if name.contains('/') {
        let base = match &def.cwd {
            Some(cwd) => cwd.clone(),
            None => {
                std::env::current_dir().map_err(|err| format!("no working directory: {err}"))?
            }
        };
        Some(base.join(name)).filter(|path| is_executable(path))
    } else {
        let path = def
            .env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| DEFAULT_PATH.to_owned());
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|path| is_executable(path))
    };
    let found = found.ok_or_else(|| format!("no executable program {name:?}"))?;
    found
        .canonicalize()
        .map_err(|err| format!("{}: {err}", found.display()))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// What stands for an image id in the list cache's key: the program's canonical path, inode,
/// size and modification time. A rebuilt or replaced program changes at least one of them, and
/// looking them up costs one `stat`, where hashing the file would read megabytes per listing.
pub fn identity(def: &ServerDef) -> Result<String, String> {
    let program = program(def)?;
    let meta = program
        .metadata()
        .map_err(|err| format!("{}: {err}", program.display()))?;
    Ok(format!(
        "process:{}:{}:{}:{}.{}",
        program.display(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// Starts `def`'s command with the base environment, `def.env` and `secrets`, its stderr going
/// to `stderr`.
pub async fn spawn(
    spawner: &Spawner,
    def: &ServerDef,
    secrets: Vec<(String, String)>,
    stderr: Arc<LogTail>,
) -> Result<Spawned, String> {
    let program = program(def)?;
    let mut command = Command::new(&program);
    command
        .args(&def.command[1..])
        .env_clear()
        .envs(
            BASE_ENV
                .iter()
                .filter_map(|key| Some((*key, std::env::var_os(key)?))),
        )
        .envs(&def.env)
        .envs(secrets)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if std::env::var_os("PATH").is_none() && !def.env.contains_key("PATH") {
        command.env("PATH", DEFAULT_PATH);
    }
    if let Some(cwd) = &def.cwd {
        command.current_dir(cwd);
    }
    let daemon = nix::unistd::getpid();
    let open_files = crate::limits::inherited_open_files();
    // SAFETY: the closure runs in the child between fork and exec and only makes system calls
    // and builds an error from a number, all async-signal-safe (no allocation, no lock).
    #[expect(
        unsafe_code,
        reason = "pre_exec is the only way to set PR_SET_PDEATHSIG"
    )]
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|errno| io::Error::from_raw_os_error(errno as i32))?;
            // A daemon that died before the line above would never send the signal.
            if nix::unistd::getppid() != daemon {
                return Err(io::Error::from_raw_os_error(
                    nix::errno::Errno::ESRCH as i32,
                ));
            }
            if let Some((soft, hard)) = open_files {
                setrlimit(Resource::RLIMIT_NOFILE, soft, hard)
                    .map_err(|errno| io::Error::from_raw_os_error(errno as i32))?;
            }
            Ok(())
        });
    }
    let spawned = spawner
        .run(move || command.spawn())?
        .await
        .map_err(|_| "the process spawner thread is gone".to_owned())?;
    let mut child = spawned.map_err(|err| format!("cannot run {}: {err}", program.display()))?;
    let pid = child.id().unwrap_or_default();
    let (Some(stdin), Some(stdout), Some(mut errors)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("the process's pipes are missing".into());
    };
    let (drained_tx, drained_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        while let Ok(n @ 1..) = errors.read(&mut buf).await {
            stderr.push(&buf[..n]);
        }
        let _ = drained_tx.send(());
    });
    let (exit_tx, exit) = watch::channel(None);
    tokio::spawn(async move {
        let status = child
            .wait()
            .await
            .ok()
            .and_then(|s| s.code())
            .map(i64::from);
        // What the server left running in its group goes with it; right after the reaping, the
        // group's id cannot have been given to another process yet.
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let _ = exit_tx.send(Some(status));
    });
    Ok(Spawned {
        pid,
        stdin,
        stdout: Drained::new(stdout, drained_rx),
        process: Process { pid, exit },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_follows_the_program_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let def = ServerDef {
            command: vec!["./server".into()],
            cwd: Some(dir.path().to_owned()),
            ..ServerDef::default()
        };
        // Not executable yet: not a program.
        assert!(
            identity(&def)
                .unwrap_err()
                .contains("no executable program")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        let first = identity(&def).unwrap();
        assert!(first.contains(&file.canonicalize().unwrap().display().to_string()));
        assert_eq!(identity(&def).unwrap(), first);
        std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
        assert_ne!(
            identity(&def).unwrap(),
            first,
            "a rebuilt program is another server"
        );
        // Found through the PATH it will get when the name has no slash.
        let by_path = ServerDef {
            command: vec!["server".into()],
            env: [("PATH".to_owned(), dir.path().display().to_string())].into(),
            ..ServerDef::default()
        };
        assert_eq!(program(&by_path).unwrap(), file.canonicalize().unwrap());
    }
}
