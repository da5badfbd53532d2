//! Child processes the bench starts (each in its own process group, killed as a
//! group on drop, on Ctrl-C and when the bench dies) and what `/proc` says about them.

use anyhow::{bail, Context};
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started child process group; SIGTERM then SIGKILL to the whole group on drop.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` in a new process group with its output in `log`. The child gets
    /// SIGTERM if the bench dies, so nothing outlives a killed bench.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {name} ({:?})", cmd.get_program()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process group id (= the child's pid).
    pub fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Every live process started for it: the child, its group and all their
    /// descendants (a runner such as pushpin starts several, in groups of their own).
    pub fn pids(&self) -> Vec<i32> {
        process_tree(self.pgid())
    }

    /// Fails with the log tail if the process has already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); log tail:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// The last lines the process printed.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until `addr` accepts TCP connections, or fails with the log tail.
    pub fn wait_port(&mut self, addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.check_alive()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {addr} within {within:?}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.pgid();
        let pids = process_tree(pgid);
        // SAFETY: plain syscalls on processes this bench started.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
            for pid in &pids {
                libc::kill(*pid, libc::SIGTERM);
            }
        }
        let alive = |pids: &[i32]| pids.iter().any(|p| !is_gone(*p));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let _ = self.child.try_wait();
            if !alive(&pids) {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
            for pid in process_tree(pgid).iter().chain(&pids) {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// The process has exited (or is a zombie waiting for its parent).
fn is_gone(pid: i32) -> bool {
    stat_fields(pid).is_none_or(|f| f.first().map(String::as_str) == Some("Z"))
}

/// A port that was free a moment ago, below the ephemeral range (the bench's many
/// client sockets take ports from that range, and other programs may too).
pub fn free_port() -> anyhow::Result<u16> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..2000 {
        let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(i.wrapping_mul(104_729)) % 12_000) as u16;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port found in 20000-31999")
}

/// `root` and every live descendant of it, plus members of its process group.
pub fn process_tree(root: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let procs: Vec<(i32, i32, i32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let f = stat_fields(pid)?;
            if f.first().map(String::as_str) == Some("Z") {
                return None;
            }
            Some((pid, f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
        })
        .collect();
    let mut tree: Vec<i32> = procs
        .iter()
        .filter(|(pid, _, pgid)| *pid == root || *pgid == root)
        .map(|p| p.0)
        .collect();
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for (pid, ppid, _) in &procs {
            if *ppid == parent && !tree.contains(pid) {
                tree.push(*pid);
            }
        }
        i += 1;
    }
    tree
}

/// Fields of `/proc/PID/stat` after the command name (field 3 onwards, 0-based here).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// User + system CPU time of `pid`, in seconds.
pub fn cpu_seconds(pid: i32) -> f64 {
    let ticks = stat_fields(pid)
        .map(|f| {
            // utime and stime are fields 14 and 15 of stat: 11 and 12 after the name.
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .unwrap_or(0);
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds of a set of processes, sampled at one instant.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    server: f64,
    client: f64,
}

impl CpuSample {
    /// Samples the server processes `pids` and this bench process.
    pub fn take(pids: &[i32]) -> Self {
        Self {
            at: Instant::now(),
            server: pids.iter().map(|p| cpu_seconds(*p)).sum(),
            client: cpu_seconds(std::process::id() as i32),
        }
    }

    /// Cores used since `self` (server, client), e.g. 1.5 = one and a half cores.
    pub fn cores_since(&self, pids: &[i32]) -> (f64, f64) {
        let now = Self::take(pids);
        let wall = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        (
            (now.server - self.server).max(0.0) / wall,
            (now.client - self.client).max(0.0) / wall,
        )
    }
}

/// Output of a command's `--version`-style invocation, first line.
pub fn version_of(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(e) => format!("not available ({e})"),
    }
}
