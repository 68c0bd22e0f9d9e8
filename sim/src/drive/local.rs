//! Local: build the Worker if needed and run it on `workerd` on a free loopback port, with
//! a scenario's limits; read the CPU time workerd used from the operating system.
//!
//! [`LocalWorkerd`] owns the workerd process. It is stopped by [`LocalWorkerd::stop`] and,
//! whatever happens (an error, an early return, a panic that unwinds), by `Drop`: SIGTERM,
//! then SIGKILL after 3 s, always by its own pid. Only a SIGKILL of the driver itself can
//! leave workerd behind (that would need `PR_SET_PDEATHSIG`, which needs `unsafe` code in
//! `pre_exec`, and this crate forbids `unsafe`).
//!
//! workerd is started as `workerd serve workers/workerd.capnp --socket-addr
//! http=127.0.0.1:0 --control-fd=1`: the OS picks the port and workerd reports it as a JSON
//! line on its stdout (`{"event":"listen","socket":"http","port":P}`), so there is no race
//! between choosing a port and binding it.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::client::Target;
use super::DriveError;
use crate::scenario::Scenario;

/// The Worker settings of one workerd (README.md, "Configuration"); each becomes a
/// `DOSIM_*` environment variable of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSettings {
    /// Seats per room.
    pub max_connections_per_room: u32,
    /// Active rooms (None = unlimited).
    pub max_active_rooms: Option<u32>,
    /// Seated users (None = unlimited).
    pub max_total_connections: Option<u32>,
    /// Queue places per room.
    pub queue_limit: u32,
    /// Hibernation API (true) or `accept()` (false).
    pub hibernation: bool,
    /// Largest client frame (None = the Worker's default, 4096).
    pub max_message_bytes: Option<u32>,
    /// `auto` or `always` (None = the Worker's default, `auto`).
    pub lobby_mode: Option<String>,
    /// The bearer token of the stats endpoint.
    pub stats_token: String,
}

impl LocalSettings {
    /// The settings that reproduce a scenario: its limits, its hibernation choice, a frame
    /// limit that fits its messages, and a fresh random token.
    pub fn for_scenario(s: &Scenario) -> LocalSettings {
        let needed = s.sessions.message_bytes.saturating_add(256);
        LocalSettings {
            max_connections_per_room: s.limits.max_connections_per_room,
            max_active_rooms: s.limits.max_active_rooms,
            max_total_connections: s.limits.max_total_connections,
            queue_limit: s.limits.queue_limit,
            hibernation: s.platform.hibernation,
            max_message_bytes: (needed > 4096).then_some(needed),
            lobby_mode: None,
            stats_token: random_token(),
        }
    }

    /// The `DOSIM_*` variables.
    pub fn env(&self) -> Vec<(String, String)> {
        let opt = |v: Option<u32>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
        let mut env = vec![
            (
                "DOSIM_MAX_CONNECTIONS_PER_ROOM".to_string(),
                self.max_connections_per_room.to_string(),
            ),
            ("DOSIM_MAX_ACTIVE_ROOMS".into(), opt(self.max_active_rooms)),
            (
                "DOSIM_MAX_TOTAL_CONNECTIONS".into(),
                opt(self.max_total_connections),
            ),
            ("DOSIM_QUEUE_LIMIT".into(), self.queue_limit.to_string()),
            ("DOSIM_HIBERNATION".into(), self.hibernation.to_string()),
            ("DOSIM_STATS_TOKEN".into(), self.stats_token.clone()),
        ];
        if let Some(b) = self.max_message_bytes {
            env.push(("DOSIM_MAX_MESSAGE_BYTES".into(), b.to_string()));
        }
        if let Some(m) = &self.lobby_mode {
            env.push(("DOSIM_LOBBY_MODE".into(), m.clone()));
        }
        env
    }
}

/// 128 random bits as hex, from the OS (`/dev/urandom`, or the standard library's hasher
/// keys where that is missing).
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !ok {
        use std::hash::{BuildHasher as _, Hasher as _};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `workers/` folder: `dir` if given, else the first `workers/workerd.capnp` found from
/// the current directory upwards, else the one beside this crate's sources.
pub fn find_workers_dir(dir: Option<&Path>) -> Result<PathBuf, DriveError> {
    let ok = |p: &Path| p.join("workerd.capnp").is_file() && p.join("package.json").is_file();
    if let Some(d) = dir {
        return if ok(d) {
            Ok(d.to_path_buf())
        } else {
            Err(DriveError::Local(format!(
                "{}: not the Worker folder (no workerd.capnp and package.json)",
                d.display()
            )))
        };
    }
    if let Ok(cwd) = std::env::current_dir() {
        for a in cwd.ancestors() {
            let w = a.join("workers");
            if ok(&w) {
                return Ok(w);
            }
        }
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workers");
    if ok(&built_in) {
        return Ok(built_in);
    }
    Err(DriveError::Local(
        "cannot find the Worker folder (workers/workerd.capnp); run from the repository or pass --workers DIR"
            .into(),
    ))
}

/// What [`ensure_built`] had to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildActions {
    /// `npm ci` ran (node_modules was missing).
    pub installed: bool,
    /// `npm run build` ran (dist/worker.js was missing or older than a source).
    pub built: bool,
}

/// Make sure `workers/` is installed and built: `npm ci` when `node_modules` is missing,
/// `npm run build` when `dist/worker.js` is missing or older than any file in `src/` (or
/// the build inputs `package.json`, `tsconfig.json`, `scripts/build.mjs`). Concurrent
/// callers (tests, several drivers) are serialised with a file lock.
pub fn ensure_built(workers: &Path) -> Result<BuildActions, DriveError> {
    let lock_path = std::env::temp_dir().join("dosim-workers-build.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| DriveError::Local(format!("{}: {e}", lock_path.display())))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| DriveError::Local(format!("locking {}: {e}", lock_path.display())))?;
    let mut actions = BuildActions::default();
    if !workers.join("node_modules").is_dir() {
        npm(workers, &["ci"])?;
        actions.installed = true;
    }
    if needs_build(workers) {
        npm(workers, &["run", "build"])?;
        actions.built = true;
    }
    drop(lock);
    Ok(actions)
}

fn needs_build(workers: &Path) -> bool {
    let Some(built) = mtime(&workers.join("dist/worker.js")) else {
        return true;
    };
    let mut inputs = vec![
        workers.join("package.json"),
        workers.join("tsconfig.json"),
        workers.join("scripts/build.mjs"),
    ];
    if let Ok(rd) = std::fs::read_dir(workers.join("src")) {
        inputs.extend(rd.flatten().map(|e| e.path()));
    }
    inputs.iter().filter_map(|p| mtime(p)).any(|t| t > built)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn npm(workers: &Path, args: &[&str]) -> Result<(), DriveError> {
    eprintln!(
        "dosim: running `npm {}` in {}",
        args.join(" "),
        workers.display()
    );
    // npm's own output goes to our stderr, so that stdout stays the report.
    let status = Command::new("npm")
        .args(args)
        .current_dir(workers)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::io::stderr()
                .as_fd_owned()
                .map_err(|e| DriveError::Local(format!("stderr: {e}")))?,
        ))
        .status()
        .map_err(|e| DriveError::Local(format!("cannot run npm ({e}); is Node.js installed?")))?;
    if status.success() {
        Ok(())
    } else {
        Err(DriveError::Local(format!(
            "`npm {}` in {} failed ({status})",
            args.join(" "),
            workers.display()
        )))
    }
}

trait AsFdOwned {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd>;
}

impl AsFdOwned for std::io::Stderr {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd as _;
        self.as_fd().try_clone_to_owned()
    }
}

/// The workerd binary of a `workers/` folder: `$DOSIM_WORKERD` if set, else
/// `node_modules/.bin/workerd` (the platform binary once npm's install script ran).
pub fn workerd_binary(workers: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("DOSIM_WORKERD") {
        return PathBuf::from(p);
    }
    let bin = workers.join("node_modules/.bin/workerd");
    std::fs::canonicalize(&bin).unwrap_or(bin)
}

/// A running workerd serving the Worker on 127.0.0.1.
#[derive(Debug)]
pub struct LocalWorkerd {
    child: Option<Child>,
    pid: u32,
    port: u16,
    token: String,
    settings: LocalSettings,
    log: Arc<Mutex<String>>,
}

const LOG_TAIL: usize = 16 * 1024;

fn append_tail(log: &Mutex<String>, line: &str) {
    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
    l.push_str(line);
    l.push('\n');
    if l.len() > LOG_TAIL {
        let cut = l.len() - LOG_TAIL;
        let cut = (cut..l.len()).find(|&i| l.is_char_boundary(i)).unwrap_or(0);
        l.drain(..cut);
    }
}

impl LocalWorkerd {
    /// Build if needed, then start workerd with `settings` and wait (up to 20 s) until it
    /// listens.
    pub fn start(workers: &Path, settings: &LocalSettings) -> Result<LocalWorkerd, DriveError> {
        ensure_built(workers)?;
        Self::spawn(workers, settings)
    }

    /// Start workerd without checking the build.
    pub fn spawn(workers: &Path, settings: &LocalSettings) -> Result<LocalWorkerd, DriveError> {
        let bin = workerd_binary(workers);
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg(workers.join("workerd.capnp"))
            .args(["--socket-addr", "http=127.0.0.1:0", "--control-fd=1"])
            .current_dir(workers)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("DOSIM_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(settings.env());
        let mut child = cmd.spawn().map_err(|e| {
            DriveError::Local(format!(
                "cannot start workerd ({}): {e}; run `npm ci` in {}",
                bin.display(),
                workers.display()
            ))
        })?;
        let pid = child.id();
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel::<u16>();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        {
            let log = log.clone();
            std::thread::Builder::new()
                .name(format!("workerd-{pid}-stdout"))
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if let Some(port) = listen_port(&line) {
                            let _ = port_tx.send(port);
                        } else {
                            append_tail(&log, &line);
                        }
                    }
                })
                .map_err(|e| DriveError::Local(format!("thread: {e}")))?;
        }
        {
            let log = log.clone();
            std::thread::Builder::new()
                .name(format!("workerd-{pid}-stderr"))
                .spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        append_tail(&log, &line);
                    }
                })
                .map_err(|e| DriveError::Local(format!("thread: {e}")))?;
        }
        let mut w = LocalWorkerd {
            child: Some(child),
            pid,
            port: 0,
            token: settings.stats_token.clone(),
            settings: settings.clone(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match port_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(port) => {
                    w.port = port;
                    return Ok(w);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            if let Some(status) = w.try_wait() {
                return Err(DriveError::Local(format!(
                    "workerd exited before listening ({status}):\n{}",
                    w.log_tail()
                )));
            }
            if Instant::now() > deadline {
                let tail = w.log_tail();
                w.stop();
                return Err(DriveError::Local(format!(
                    "workerd did not listen within 20 s:\n{tail}"
                )));
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn target(&self) -> Target {
        Target::loopback(self.port)
    }

    /// The stats token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &LocalSettings {
        &self.settings
    }

    /// The last lines workerd wrote (stdout and stderr).
    pub fn log_tail(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The exit status if workerd has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// CPU time (user + system) used so far by workerd and its descendants.
    pub fn cpu_time(&self) -> Option<Duration> {
        process_tree_cpu(self.pid)
    }

    /// Stop workerd: SIGTERM, then SIGKILL if it has not exited after 3 s. Idempotent.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for LocalWorkerd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn listen_port(line: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    (v["event"] == "listen" && v["socket"] == "http")
        .then(|| v["port"].as_u64())
        .flatten()
        .and_then(|p| u16::try_from(p).ok())
}

// ---------------------------------------------------------------------------------------------
// The operating system's accounting

/// `(utime + stime, cutime + cstime, ppid, state)` of a process from `/proc/<pid>/stat`, in
/// clock ticks.
fn proc_stat(pid: u32) -> Option<(u64, u64, u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime is field 14.
    let state = f.first()?.chars().next()?;
    let ppid = f.get(1)?.parse().ok()?;
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    Some((num(11)? + num(12)?, num(13)? + num(14)?, ppid, state))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz)
}

/// CPU time of a process, its reaped children, and its live descendants.
pub fn process_tree_cpu(pid: u32) -> Option<Duration> {
    let (own, reaped, _, _) = proc_stat(pid)?;
    let mut ticks = own + reaped;
    let mut frontier = vec![pid];
    let mut all: Vec<(u32, u32, u64)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((t, _, ppid, _)) = proc_stat(p) {
                all.push((p, ppid, t));
            }
        }
    }
    while let Some(parent) = frontier.pop() {
        for &(p, ppid, t) in &all {
            if ppid == parent && p != pid {
                ticks += t;
                frontier.push(p);
            }
        }
    }
    Some(ticks_to_duration(ticks))
}

/// CPU time of a process at nanosecond resolution: the sum over its threads of the time on
/// a CPU in `/proc/<pid>/task/<tid>/schedstat` (its first field, the scheduler's own
/// accounting), where `/proc/<pid>/stat` counts clock ticks (10 ms at the usual 100 Hz).
/// Threads that exited are not counted (workerd's live as long as it does); descendants are
/// not either (workerd has none). `None` without schedstat (a kernel built without
/// `CONFIG_SCHED_INFO`) or when the process is gone.
pub fn schedstat_cpu(pid: u32) -> Option<Duration> {
    let mut ns: u64 = 0;
    let mut any = false;
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(e.path().join("schedstat")) else {
            continue; // the thread just exited
        };
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
        any = true;
    }
    any.then(|| Duration::from_nanos(ns))
}

/// CPU time of this process (all threads).
pub fn self_cpu() -> Option<Duration> {
    let (own, _, _, _) = proc_stat(std::process::id())?;
    Some(ticks_to_duration(own))
}

/// Whether a process is gone or a zombie.
pub fn process_gone(pid: u32) -> bool {
    proc_stat(pid).is_none_or(|(_, _, _, state)| state == 'Z' || state == 'X')
}

/// Resident set size of this process, in bytes (`VmRSS`).
pub fn self_rss() -> Option<u64> {
    status_kb("VmRSS:").map(|kb| kb * 1024)
}

/// Peak resident set size of this process, in bytes (`VmHWM`).
pub fn self_peak_rss() -> Option<u64> {
    status_kb("VmHWM:").map(|kb| kb * 1024)
}

fn status_kb(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Raise this process's soft limit of open files to the hard limit; returns the new soft
/// limit.
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    if cur.current != cur.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: cur.maximum,
                maximum: cur.maximum,
            },
        );
    }
    let now = getrlimit(Resource::Nofile);
    Some(now.current.unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_accounting() {
        assert!(self_cpu().is_some());
        assert!(self_rss().unwrap() > 0);
        assert!(!process_gone(std::process::id()));
        assert!(process_tree_cpu(std::process::id()).is_some());
        assert!(raise_nofile_limit().unwrap() > 0);
    }

    #[test]
    fn schedstat_counts_the_cpu_a_process_spends() {
        let Some(before) = schedstat_cpu(std::process::id()) else {
            // A kernel without schedstat: the drive falls back to /proc/<pid>/stat.
            assert!(!Path::new("/proc/self/schedstat").exists());
            return;
        };
        // Spin until the scheduler has accounted for some CPU (bounded: at most 2 s).
        let start = Instant::now();
        let mut x = 0u64;
        while schedstat_cpu(std::process::id()).unwrap() <= before
            && start.elapsed() < Duration::from_secs(2)
        {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        std::hint::black_box(x);
        assert!(schedstat_cpu(std::process::id()).unwrap() > before);
        assert_eq!(schedstat_cpu(u32::MAX), None);
    }

    #[test]
    fn settings_become_environment_variables() {
        let s = LocalSettings {
            max_connections_per_room: 8,
            max_active_rooms: None,
            max_total_connections: Some(800),
            queue_limit: 2,
            hibernation: false,
            max_message_bytes: None,
            lobby_mode: Some("always".into()),
            stats_token: "t".into(),
        };
        let env = s.env();
        let get = |k: &str| env.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("DOSIM_MAX_ACTIVE_ROOMS"), Some("none"));
        assert_eq!(get("DOSIM_MAX_TOTAL_CONNECTIONS"), Some("800"));
        assert_eq!(get("DOSIM_HIBERNATION"), Some("false"));
        assert_eq!(get("DOSIM_LOBBY_MODE"), Some("always"));
        assert_eq!(random_token().len(), 32);
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn reads_the_listen_event() {
        assert_eq!(
            listen_port(r#"{"event":"listen","socket":"http","port":45861}"#),
            Some(45861)
        );
        assert_eq!(listen_port("workerd: info"), None);
    }
}
