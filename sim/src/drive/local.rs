//! Local: build the Worker if needed and run it on `workerd` on a free loopback port, with
//! a scenario's limits; read the CPU time workerd used from the operating system.
//!
//! [`LocalWorkerd`] owns the workerd process. It is stopped by [`LocalWorkerd::stop`] and,
//! whatever happens (an error, an early return, a panic that unwinds), by `Drop`: SIGTERM,
//! then SIGKILL after 3 s, always by its own pid. If dosim itself dies without a chance to
//! clean up (SIGKILL, an abort), a [`Watchdog`] kills it: workerd, and every `npm` that
//! [`ensure_built`] runs, start in a process group of their own, watched by a small `sh`
//! that waits on a pipe only dosim writes to; when dosim dies, however it dies, the kernel
//! closes the pipe and the watchdog kills the group. (`PR_SET_PDEATHSIG` would need
//! `unsafe` code between fork and exec, which this crate forbids, and it fires when the
//! spawning *thread* exits.) In its own group, workerd no longer gets the terminal's Ctrl-C
//! either: dosim gets it, and stops workerd after its last stats read.
//!
//! The scenario's settings are checked against the Worker's own ranges before anything
//! starts ([`LocalSettings::for_scenario`]): both sides read them from one file,
//! `workers/src/limits.json`, embedded here at build time ([`worker_limit`]).
//!
//! workerd is started as `workerd serve workers/workerd.capnp --socket-addr
//! http=127.0.0.1:0 --control-fd=1`: the OS picks the port and workerd reports it as a JSON
//! line on its stdout (`{"event":"listen","socket":"http","port":P}`), so there is no race
//! between choosing a port and binding it.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

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

/// The range of one of the Worker's numeric settings (`workers/src/limits.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct WorkerRange {
    /// Smallest value accepted.
    pub min: u64,
    /// Largest value accepted.
    pub max: u64,
    /// The value when unset (None: unlimited).
    pub default: Option<u64>,
    /// Whether `none`/`unlimited` are accepted (no limit).
    pub unlimited: bool,
}

#[derive(Deserialize)]
struct LimitsFile {
    settings: BTreeMap<String, WorkerRange>,
}

/// `workers/src/limits.json`, which the Worker's `src/config.ts` reads too.
pub const WORKER_LIMITS_JSON: &str = include_str!("../../../workers/src/limits.json");

/// The Worker's numeric settings and their ranges, by binding name (`MAX_MESSAGE_BYTES`).
pub fn worker_limits() -> &'static BTreeMap<String, WorkerRange> {
    static LIMITS: OnceLock<BTreeMap<String, WorkerRange>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        serde_json::from_str::<LimitsFile>(WORKER_LIMITS_JSON)
            .expect("workers/src/limits.json is valid (checked by a unit test)")
            .settings
    })
}

/// The range of one of the Worker's numeric settings (`MAX_MESSAGE_BYTES`, ...).
pub fn worker_limit(binding: &str) -> WorkerRange {
    *worker_limits()
        .get(binding)
        .unwrap_or_else(|| panic!("{binding} is not in workers/src/limits.json"))
}

/// The frame limit that fits a scenario's messages: the body and the frame's JSON around it.
const FRAME_OVERHEAD: u32 = 256;

impl LocalSettings {
    /// The settings that reproduce a scenario: its limits, its hibernation choice, a frame
    /// limit that fits its messages, and a fresh random token. A value outside what the
    /// Worker accepts (`workers/src/limits.json`) is refused here, naming the scenario key,
    /// rather than answered 500 by every upgrade (`DriveError::Usage`, exit code 2).
    pub fn for_scenario(s: &Scenario) -> Result<LocalSettings, DriveError> {
        let needed = s.sessions.message_bytes.saturating_add(FRAME_OVERHEAD);
        let settings = LocalSettings {
            max_connections_per_room: s.limits.max_connections_per_room,
            max_active_rooms: s.limits.max_active_rooms,
            max_total_connections: s.limits.max_total_connections,
            queue_limit: s.limits.queue_limit,
            hibernation: s.platform.hibernation,
            max_message_bytes: (needed > 4096).then_some(needed),
            lobby_mode: None,
            stats_token: random_token(),
        };
        let check = |key: &str, binding: &str, value: Option<u32>, shown: u64| {
            let Some(v) = value else { return Ok(()) };
            let r = worker_limit(binding);
            if (r.min..=r.max).contains(&u64::from(v)) {
                return Ok(());
            }
            let why = if binding == "MAX_MESSAGE_BYTES" {
                format!(
                    " needs frames of up to {v} bytes (the message and {FRAME_OVERHEAD} bytes of JSON around it)"
                )
            } else {
                String::new()
            };
            Err(DriveError::Usage(format!(
                "scenario {:?}: {key} = {shown}{why}, but the Worker's {binding} must be in {}..={} (workers/src/limits.json): `drive --local` cannot run it as it is",
                s.name, r.min, r.max
            )))
        };
        let l = &s.limits;
        check(
            "[limits] max_connections_per_room",
            "MAX_CONNECTIONS_PER_ROOM",
            Some(l.max_connections_per_room),
            l.max_connections_per_room.into(),
        )?;
        check(
            "[limits] max_active_rooms",
            "MAX_ACTIVE_ROOMS",
            l.max_active_rooms,
            l.max_active_rooms.unwrap_or(0).into(),
        )?;
        check(
            "[limits] max_total_connections",
            "MAX_TOTAL_CONNECTIONS",
            l.max_total_connections,
            l.max_total_connections.unwrap_or(0).into(),
        )?;
        check(
            "[limits] queue_limit",
            "QUEUE_LIMIT",
            Some(l.queue_limit),
            l.queue_limit.into(),
        )?;
        check(
            "[sessions] message_bytes",
            "MAX_MESSAGE_BYTES",
            settings.max_message_bytes,
            s.sessions.message_bytes.into(),
        )?;
        Ok(settings)
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
            Err(DriveError::Usage(format!(
                "--workers {}: not the Worker folder (no workerd.capnp and package.json)",
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
    // npm's own output goes to our stderr, so that stdout stays the report. npm and what it
    // runs (node, tsc, esbuild) form a process group of their own, killed by the watchdog if
    // dosim dies meanwhile.
    let mut child = Command::new("npm")
        .args(args)
        .current_dir(workers)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::io::stderr()
                .as_fd_owned()
                .map_err(|e| DriveError::Local(format!("stderr: {e}")))?,
        ))
        .process_group(0)
        .spawn()
        .map_err(|e| DriveError::Local(format!("cannot run npm ({e}); is Node.js installed?")))?;
    let watchdog = Watchdog::watch(child.id());
    let status = child.wait();
    drop(watchdog);
    let status = status.map_err(|e| DriveError::Local(format!("waiting for npm: {e}")))?;
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

/// Kills a process group if dosim dies before it could stop the group itself.
///
/// A `sh` in a process group of its own blocks reading a pipe whose write end only this
/// process holds (close-on-exec, so no other child inherits it). When dosim exits, however
/// it exits, SIGKILL included, the kernel closes that end, `read` returns, and the watchdog
/// sends SIGKILL to the group. Dropping the watchdog (dosim stopping the group itself, then
/// the watchdog) kills the `sh` by its pid first, so it never acts.
#[derive(Debug)]
pub struct Watchdog {
    child: Option<Child>,
}

impl Watchdog {
    /// Watch process group `pgid` (a child started with `process_group(0)`: its pid). If
    /// `sh` cannot be started, there is no watchdog (a warning on stderr): dosim still stops
    /// the group itself in every other case.
    pub fn watch(pgid: u32) -> Watchdog {
        let child = Command::new("/bin/sh")
            .args([
                "-c",
                r#"read _ignored; kill -s KILL -- -"$1" 2>/dev/null"#,
                "dosim-watchdog",
                &pgid.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        match child {
            Ok(c) => Watchdog { child: Some(c) },
            Err(e) => {
                eprintln!("dosim: no watchdog for process group {pgid} (/bin/sh: {e}): if dosim is killed, stop it yourself");
                Watchdog { child: None }
            }
        }
    }

    /// The watchdog's own pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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
    /// Kills workerd if dosim dies first (dropped after workerd is stopped).
    watchdog: Option<Watchdog>,
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
            .stderr(Stdio::piped())
            .process_group(0);
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
        let watchdog = Watchdog::watch(pid);
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
            watchdog: Some(watchdog),
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

    /// The exit status if workerd has exited (then its watchdog goes too: the pid is free).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.watchdog.take();
        }
        status
    }

    /// CPU time (user + system) used so far by workerd and its descendants.
    pub fn cpu_time(&self) -> Option<Duration> {
        process_tree_cpu(self.pid)
    }

    /// The pid of the watchdog that kills workerd if dosim dies (see [`Watchdog`]).
    pub fn watchdog_pid(&self) -> Option<u32> {
        self.watchdog.as_ref().and_then(Watchdog::pid)
    }

    /// Stop workerd: SIGTERM, then SIGKILL if it has not exited after 3 s; then its
    /// watchdog. Idempotent.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let status = self.stop_workerd();
        self.watchdog.take();
        status
    }

    fn stop_workerd(&mut self) -> Option<ExitStatus> {
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
    let (utime, stime, reaped, ppid, state) = proc_stat_split(pid)?;
    Some((utime + stime, reaped, ppid, state))
}

/// `(utime, stime, cutime + cstime, ppid, state)` of a process from `/proc/<pid>/stat`, in
/// clock ticks.
fn proc_stat_split(pid: u32) -> Option<(u64, u64, u64, u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime is field 14.
    let state = f.first()?.chars().next()?;
    let ppid = f.get(1)?.parse().ok()?;
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    Some((num(11)?, num(12)?, num(13)? + num(14)?, ppid, state))
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

/// CPU time of this process (all threads) in the kernel: system calls, and on loopback the
/// TCP path of what it sends, the receiver's side included.
pub fn self_cpu_kernel() -> Option<Duration> {
    let (_, stime, _, _, _) = proc_stat_split(std::process::id())?;
    Some(ticks_to_duration(stime))
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
    fn a_workers_folder_that_is_not_one_is_bad_input_naming_the_option() {
        let err = find_workers_dir(Some(Path::new("/no/such/folder"))).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(
            err.to_string().contains("--workers /no/such/folder"),
            "{err}"
        );
    }

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
        if schedstat_cpu(std::process::id()).is_none() {
            // A kernel without schedstat: the drive falls back to /proc/<pid>/stat.
            assert!(!Path::new("/proc/self/schedstat").exists());
            return;
        }
        // A busy child of one thread: its sum cannot fall, as this process's can when one
        // of the test harness's threads exits between two readings.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh runs");
        let pid = child.id();
        let before = schedstat_cpu(pid).unwrap();
        let start = Instant::now();
        let mut after = before;
        while after <= before && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
            after = schedstat_cpu(pid).unwrap_or(after);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(after > before, "{before:?} then {after:?}");
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

    fn scenario() -> Scenario {
        Scenario::parse(
            "name = \"t\"\n[arrivals]\nrate_per_second = 1.0\n",
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn the_workers_limits_are_read_from_its_own_file() {
        let names: Vec<&str> = worker_limits().keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "MAX_ACTIVE_ROOMS",
                "MAX_CONNECTIONS_PER_ROOM",
                "MAX_MESSAGE_BYTES",
                "MAX_TOTAL_CONNECTIONS",
                "QUEUE_LIMIT"
            ]
        );
        let m = worker_limit("MAX_MESSAGE_BYTES");
        assert_eq!((m.min, m.max, m.default), (1, 1 << 20, Some(4096)));
        // Every setting dosim passes as a number is one of them.
        let s = LocalSettings::for_scenario(&scenario()).unwrap();
        for (k, v) in s.env() {
            if v.parse::<u64>().is_ok() && k != "DOSIM_STATS_TOKEN" {
                assert!(worker_limits().contains_key(&k["DOSIM_".len()..]), "{k}");
            }
        }
    }

    #[test]
    fn a_scenario_the_worker_would_refuse_is_refused_naming_its_key() {
        let base = scenario();
        let at_max = |bytes: u32| {
            let mut s = base.clone();
            s.sessions.message_bytes = bytes;
            LocalSettings::for_scenario(&s)
        };
        let max = worker_limit("MAX_MESSAGE_BYTES").max as u32;
        assert_eq!(
            at_max(max - FRAME_OVERHEAD).unwrap().max_message_bytes,
            Some(max)
        );
        let e = at_max(max - FRAME_OVERHEAD + 1).unwrap_err();
        assert!(e.is_bad_input());
        let e = e.to_string();
        assert!(
            e.contains("[sessions] message_bytes = 1048321")
                && e.contains("MAX_MESSAGE_BYTES must be in 1..=1048576"),
            "{e}"
        );
        let mut s = base.clone();
        s.limits.max_connections_per_room = 2_000_000_000;
        let e = LocalSettings::for_scenario(&s).unwrap_err().to_string();
        assert!(
            e.contains("[limits] max_connections_per_room = 2000000000")
                && e.contains("MAX_CONNECTIONS_PER_ROOM must be in 1..=1000000000"),
            "{e}"
        );
        for (key, set) in [
            (
                "max_active_rooms",
                (|s: &mut Scenario| s.limits.max_active_rooms = Some(u32::MAX))
                    as fn(&mut Scenario),
            ),
            ("max_total_connections", |s| {
                s.limits.max_total_connections = Some(u32::MAX)
            }),
            ("queue_limit", |s| s.limits.queue_limit = u32::MAX),
        ] {
            let mut s = base.clone();
            set(&mut s);
            let e = LocalSettings::for_scenario(&s).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
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
