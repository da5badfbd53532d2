//! Pushpin from the Debian package, run with the bench's own config.
//!
//! The packaged internal config points the proxy at a system zurl service
//! (`ipc:///var/run/zurl/…`) that is not running, so every request would get 502.
//! The bench therefore runs `condure,zurl,pushpin-proxy,pushpin-handler` itself with
//! zurl's sockets under its own rundir, on free ports, and otherwise keeps the
//! packaged `/etc/pushpin/pushpin.conf` values. "Tuned" raises only the handler's
//! `message_rate` and `message_hwm`.

use super::Env;
use crate::clients::{Conn, Target, Transport};
use crate::procs::{self, Proc};
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const PACKAGED_CONF: &str = "/etc/pushpin/pushpin.conf";
const INTERNAL_CONF: &str = "/usr/lib/pushpin/internal.conf";
/// Values used for "tuned": high enough never to cap or drop in these runs.
pub const TUNED_MESSAGE_RATE: u64 = 10_000_000;
pub const TUNED_MESSAGE_HWM: u64 = 10_000_000;

/// Starts Pushpin in front of `origin`; returns the process, the client address
/// and the address of its HTTP publish endpoint (`/publish/`).
pub async fn start(
    env: &Env,
    tag: &str,
    origin: SocketAddr,
    tuned: bool,
) -> anyhow::Result<(Proc, SocketAddr, SocketAddr)> {
    let dir = env.workdir.join(format!("{tag}-pushpin"));
    let rundir = dir.join("run");
    std::fs::create_dir_all(&rundir)?;
    std::fs::create_dir_all(dir.join("log"))?;

    let internal = std::fs::read_to_string(INTERNAL_CONF)
        .with_context(|| format!("read {INTERNAL_CONF} (is the pushpin package installed?)"))?
        .replace("ipc:///var/run/zurl/zurl-", "ipc://{rundir}/{ipc_prefix}zurl-");
    let internal_path = dir.join("internal.conf");
    std::fs::write(&internal_path, internal)?;
    std::fs::write(dir.join("routes"), format!("* {origin},over_http\n"))?;

    let http_port = procs::free_port()?;
    let publish_port = procs::free_port()?;
    let mut set: HashMap<(&str, &str), String> = HashMap::new();
    set.insert(("global", "include"), internal_path.display().to_string());
    set.insert(("global", "rundir"), rundir.display().to_string());
    set.insert(
        ("runner", "services"),
        "condure,zurl,pushpin-proxy,pushpin-handler".into(),
    );
    set.insert(("runner", "http_port"), http_port.to_string());
    set.insert(("runner", "logdir"), dir.join("log").display().to_string());
    set.insert(("proxy", "routesfile"), dir.join("routes").display().to_string());
    set.insert(("handler", "push_in_http_port"), publish_port.to_string());
    for key in ["push_in_spec", "push_in_sub_specs", "command_spec"] {
        set.insert(("handler", key), format!("tcp://127.0.0.1:{}", procs::free_port()?));
    }
    if tuned {
        set.insert(("handler", "message_rate"), TUNED_MESSAGE_RATE.to_string());
        set.insert(("handler", "message_hwm"), TUNED_MESSAGE_HWM.to_string());
    }
    let packaged = std::fs::read_to_string(PACKAGED_CONF)
        .with_context(|| format!("read {PACKAGED_CONF} (is the pushpin package installed?)"))?;
    let conf_path = dir.join("pushpin.conf");
    std::fs::write(&conf_path, rewrite_ini(&packaged, &set))?;

    let mut cmd = Command::new(&env.pushpin_bin);
    cmd.arg("--config").arg(&conf_path).arg("--merge-output");
    if let Ok(level) = std::env::var("STREAMGATE_BENCH_PUSHPIN_LOGLEVEL") {
        cmd.arg(format!("--loglevel={level}"));
    }
    cmd.current_dir(&dir);
    let mut proc = Proc::spawn("pushpin", cmd, &dir.join("pushpin.log"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let publish: SocketAddr = ([127, 0, 0, 1], publish_port).into();
    tokio::task::block_in_place(|| {
        proc.wait_port(addr, Duration::from_secs(20))?;
        proc.wait_port(publish, Duration::from_secs(20))
    })?;
    probe(&mut proc, env, addr).await?;
    Ok((proc, addr, publish))
}

/// Opens one SSE stream through Pushpin and the origin (the components connect to
/// each other a moment after they listen).
async fn probe(proc: &mut Proc, env: &Env, addr: SocketAddr) -> anyhow::Result<()> {
    let token = crate::tokens::mint(&env.secret, "probe", 0);
    let target = Target {
        addr,
        transport: Transport::Sse,
        path: format!("/events?token={token}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(3), Conn::open(&target, 0)).await;
        match attempt {
            Ok(Ok(conn)) => {
                conn.close().await;
                return Ok(());
            }
            Ok(Err(e)) if Instant::now() > deadline => {
                bail!("no SSE stream through Pushpin: {e:#}; log tail:\n{}", proc.log_tail())
            }
            Err(_) if Instant::now() > deadline => {
                bail!("SSE probe through Pushpin timed out; log tail:\n{}", proc.log_tail())
            }
            _ => {}
        }
        proc.check_alive()?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Replaces `key=value` lines of an INI text per `(section, key)`; keys not present
/// are appended to their section.
fn rewrite_ini(text: &str, set: &HashMap<(&str, &str), String>) -> String {
    let mut out = String::new();
    let mut section = String::new();
    let mut seen = std::collections::HashSet::new();
    let flush_missing = |section: &str, out: &mut String, seen: &std::collections::HashSet<(String, String)>| {
        let mut missing: Vec<_> = set
            .iter()
            .filter(|((s, k), _)| *s == section && !seen.contains(&(s.to_string(), k.to_string())))
            .collect();
        missing.sort();
        for ((_, k), v) in missing {
            out.push_str(&format!("{k}={v}\n"));
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            flush_missing(&section, &mut out, &seen);
            section = trimmed[1..trimmed.len() - 1].to_string();
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if !trimmed.starts_with('#') {
            if let Some((k, _)) = trimmed.split_once('=') {
                let k = k.trim();
                if let Some(v) = set.get(&(section.as_str(), k)) {
                    seen.insert((section.clone(), k.to_string()));
                    out.push_str(&format!("{k}={v}\n"));
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    flush_missing(&section, &mut out, &seen);
    out
}

/// `message_rate` and `message_hwm` as packaged (for the report).
pub fn packaged_limits() -> String {
    let text = std::fs::read_to_string(PACKAGED_CONF).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('='))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "message_rate={}, message_hwm={}",
        get("message_rate"),
        get("message_hwm")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_rewrite_replaces_and_appends_per_section() {
        let text = "[a]\nx=1\n# x=9\n[b]\nx=2\n";
        let mut set = HashMap::new();
        set.insert(("a", "x"), "10".to_string());
        set.insert(("b", "y"), "20".to_string());
        assert_eq!(rewrite_ini(text, &set), "[a]\nx=10\n# x=9\n[b]\nx=2\ny=20\n");
    }
}
