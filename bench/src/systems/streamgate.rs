//! streamgate as a child process with a generated config.

use super::Env;
use crate::procs::{self, Proc};
use anyhow::bail;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Starts `streamgate serve` (memory broker, or Redis at `redis_url`) and waits for
/// `/ready`.
pub async fn start(
    env: &Env,
    tag: &str,
    redis_url: Option<&str>,
    http: &reqwest::Client,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let port = procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let broker = match redis_url {
        Some(url) => format!("  kind: redis\n  redis:\n    url: \"{url}\"\n"),
        None => "  kind: memory\n".to_string(),
    };
    let auth = match &env.jwt_public_key {
        Some(pem) => format!("  jwt_public_key: \"{}\"\n", pem.display()),
        None => format!("  jwt_secret: \"{}\"\n", env.secret),
    };
    let session = if env.session {
        "session:\n  enabled: true\n  auth: redis_token\n"
    } else {
        ""
    };
    let config = format!(
        "server:\n  host: 127.0.0.1\n  port: {port}\n  shutdown_timeout_seconds: 2\n  api_keys: [\"{key}\"]\n\
         auth:\n{auth}\
         broker:\n{broker}{session}\
         relay:\n  client_buffer_size: {buffer}\n  slow_consumer_policy: drop_newest_message\n\
         logging:\n  level: warn\n",
        key = env.api_key,
        buffer = env.client_buffer,
    );
    let path = env.workdir.join(format!("{tag}-streamgate.yaml"));
    std::fs::write(&path, config)?;
    let mut cmd = Command::new(&env.streamgate_bin);
    cmd.arg("serve").arg("--config").arg(&path);
    let mut proc = Proc::spawn("streamgate", cmd, &env.workdir.join(format!("{tag}-streamgate.log")))?;
    tokio::task::block_in_place(|| proc.wait_port(addr, Duration::from_secs(15)))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = http.get(format!("http://{addr}/ready")).send().await;
        if matches!(&ready, Ok(r) if r.status().is_success()) {
            return Ok((proc, addr));
        }
        proc.check_alive()?;
        if Instant::now() > deadline {
            bail!("streamgate not ready within 15 s; log tail:\n{}", proc.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
