//! `streamgate-bench`: streamgate side by side with Redis direct and Pushpin.
//!
//! Subcommands `idle`, `fanout`, `latency`, `connect` and `all`; each starts every
//! selected system itself (see `systems/`), runs its scenario(s) (`scenarios/`) with
//! the clients of `clients.rs`, stops the system and writes the report (`report.rs`).

mod clients;
mod payload;
mod procs;
mod report;
mod scenarios;
mod systems;
mod tokens;

use anyhow::Context;
use clap::{Parser, Subcommand};
use clients::Transport;
use report::{Case, Entry, Report};
use scenarios::fanout::Load;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use systems::{Env, Running, SystemKind};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Benchmarks streamgate against Redis direct and Pushpin on loopback"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Server memory per idle connection.
    Idle,
    /// Delivered messages per second.
    Fanout,
    /// Delivery latency at half of the maximum rate.
    Latency,
    /// New authenticated connections per second.
    Connect,
    /// The session proxy (streamgate, Redis broker): latency and loss each way, memory per session.
    Session,
    /// Every scenario.
    All,
}

#[derive(clap::Args, Debug)]
struct Opts {
    /// Tiny N and short runs: every scenario in well under a minute (a smoke check).
    #[arg(long, global = true)]
    quick: bool,
    /// The streamgate binary [default: `streamgate` beside this binary].
    #[arg(long, global = true)]
    streamgate_bin: Option<PathBuf>,
    #[arg(long, global = true, default_value = "redis-server")]
    redis_bin: String,
    #[arg(long, global = true, default_value = "pushpin")]
    pushpin_bin: String,
    /// Systems to run [default: all].
    #[arg(long, global = true, value_delimiter = ',')]
    systems: Vec<SystemKind>,
    /// Idle connections per transport [default: 10000; quick: 100].
    #[arg(long, global = true)]
    idle_n: Option<usize>,
    /// Fan-out cases as NxM (N connections over M identities)
    /// [default: 1000x1000,10000x100,1000x1; quick: 60x60,300x10,60x1].
    #[arg(long, global = true, value_delimiter = ',')]
    fanout: Vec<String>,
    /// Seconds of publishing per fan-out run [default: 5; quick: 0.5].
    #[arg(long, global = true)]
    fanout_seconds: Option<f64>,
    /// Connections in the latency scenario [default: 1000; quick: 60].
    #[arg(long, global = true)]
    latency_n: Option<usize>,
    /// Seconds measured per latency run [default: 8; quick: 0.5].
    #[arg(long, global = true)]
    latency_seconds: Option<f64>,
    /// Connections opened in the connect scenario [default: 5000; quick: 100].
    #[arg(long, global = true)]
    connect_n: Option<usize>,
    /// Concurrent connectors in the connect scenario.
    #[arg(long, global = true, default_value_t = 64)]
    connect_concurrency: usize,
    /// Sessions in the session scenario [default: 5000; quick: 100].
    #[arg(long, global = true)]
    session_n: Option<usize>,
    /// Sessions of the session scenario's high-rate run [default: 1000; quick: 50].
    #[arg(long, global = true)]
    session_hot: Option<usize>,
    /// Total messages/s of the high-rate run, each way [default: 10000; quick: 2000].
    #[arg(long, global = true)]
    session_rate: Option<f64>,
    /// Seconds per session run [default: 10; quick: 0.25].
    #[arg(long, global = true)]
    session_seconds: Option<f64>,
    /// Message size in bytes.
    #[arg(long, global = true, default_value_t = 256)]
    payload_bytes: usize,
    /// Concurrent publisher tasks.
    #[arg(long, global = true, default_value_t = 32)]
    publishers: usize,
    /// Fan-out: messages per publish call, for every system in its own batch form
    /// (Redis: a pipeline of PUBLISH; streamgate: `POST /api/publish` `{"messages":[…]}`;
    /// Pushpin: `/publish/` `{"items":[…]}`), capped so all publishers' batches fit
    /// in a quarter of the delivery window. 1 = one message per call.
    #[arg(long, global = true, default_value_t = 32)]
    publish_batch: usize,
    /// streamgate `relay.client_buffer_size` (its default is 64).
    #[arg(long, global = true, default_value_t = 64)]
    client_buffer: usize,
    /// Write the report here (BENCHMARKS.md) instead of stdout.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Keep the work directory (configs and logs of every started process).
    #[arg(long, global = true)]
    keep_workdir: bool,
    /// A line added to the report's header (e.g. that the machine was shared).
    #[arg(long, global = true)]
    note: Option<String>,
}

/// The resolved parameters.
struct Plan {
    scenario: Scenario,
    systems: Vec<SystemKind>,
    idle_n: usize,
    cases: Vec<Case>,
    fanout_time: Duration,
    latency_n: usize,
    latency_time: Duration,
    connect_n: usize,
    connect_concurrency: usize,
    session: scenarios::session::SessionPlan,
    load: Load,
}

impl Plan {
    fn runs(&self, s: Scenario) -> bool {
        self.scenario == s || self.scenario == Scenario::All
    }
}

fn parse_case(text: &str) -> anyhow::Result<Case> {
    let (n, m) = text
        .split_once(['x', 'X'])
        .with_context(|| format!("fan-out case {text:?} must be NxM"))?;
    let case = Case {
        n: n.trim().parse()?,
        m: m.trim().parse()?,
    };
    anyhow::ensure!(
        case.n > 0 && case.m > 0 && case.m <= case.n,
        "fan-out case {text:?}: need 0 < M <= N"
    );
    Ok(case)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    payload::init_clock();
    if cli.opts.quick {
        scenarios::QUICK.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let outcome = tokio::select! {
        r = run(cli) => r,
        _ = interrupted() => Err(anyhow::anyhow!("interrupted; every started process was stopped")),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamgate-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let o = &cli.opts;
    let q = o.quick;
    let cases = if o.fanout.is_empty() {
        let d = if q {
            "60x60,300x10,60x1"
        } else {
            "1000x1000,10000x100,1000x1"
        };
        d.split(',').map(parse_case).collect::<anyhow::Result<_>>()?
    } else {
        o.fanout.iter().map(|c| parse_case(c)).collect::<anyhow::Result<_>>()?
    };
    let plan = Plan {
        scenario: cli.scenario,
        systems: if o.systems.is_empty() {
            SystemKind::ALL.to_vec()
        } else {
            o.systems.clone()
        },
        idle_n: o.idle_n.unwrap_or(if q { 100 } else { 10_000 }),
        cases,
        fanout_time: Duration::from_secs_f64(o.fanout_seconds.unwrap_or(if q { 0.5 } else { 5.0 })),
        latency_n: o.latency_n.unwrap_or(if q { 60 } else { 1000 }),
        latency_time: Duration::from_secs_f64(o.latency_seconds.unwrap_or(if q { 0.5 } else { 8.0 })),
        connect_n: o.connect_n.unwrap_or(if q { 100 } else { 5000 }),
        connect_concurrency: o.connect_concurrency.max(1),
        session: scenarios::session::SessionPlan {
            sessions: o.session_n.unwrap_or(if q { 100 } else { 5000 }).max(1),
            warm: if q { 20 } else { 100 },
            hot: o.session_hot.unwrap_or(if q { 50 } else { 1000 }).max(1),
            hot_rate: o.session_rate.unwrap_or(if q { 2000.0 } else { 10_000.0 }).max(1.0),
            duration: Duration::from_secs_f64(o.session_seconds.unwrap_or(if q { 0.25 } else { 10.0 })),
            payload_bytes: o.payload_bytes.max(payload::MIN_SIZE),
            publishers: o.publishers.max(1),
        },
        load: Load {
            secret: "streamgate-bench-hs256-secret-0123456789abcdef".into(),
            payload_bytes: o.payload_bytes.max(payload::MIN_SIZE),
            publishers: o.publishers.max(1),
            batch: o.publish_batch.max(1),
        },
    };
    let streamgate_bin = match &o.streamgate_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("streamgate"),
    };
    anyhow::ensure!(
        streamgate_bin.exists(),
        "{} not found: build it (cargo build --release) or pass --streamgate-bin",
        streamgate_bin.display()
    );
    let workdir = std::env::temp_dir().join(format!("streamgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;
    let rsa_public = workdir.join("rsa_public.pem");
    std::fs::write(&rsa_public, tokens::RSA_PUBLIC_PEM)?;
    let env = Env {
        workdir: workdir.clone(),
        streamgate_bin,
        redis_bin: o.redis_bin.clone(),
        pushpin_bin: o.pushpin_bin.clone(),
        secret: plan.load.secret.clone(),
        api_key: "streamgate-bench-api-key-0123456789".into(),
        client_buffer: o.client_buffer,
        jwt_public_key: None,
        session: false,
    };
    let mut report = Report {
        header: header(&env, o.note.as_deref()),
        params: params(&plan, o),
        ..Report::default()
    };
    for kind in plan.systems.clone() {
        run_system(kind, &plan, &env, &mut report).await;
        if kind == SystemKind::StreamgateMemory && plan.runs(Scenario::Connect) {
            say(kind, &format!("connect RS256 WS N={}", plan.connect_n));
            let rs_env = Env {
                jwt_public_key: Some(rsa_public.clone()),
                ..env.clone()
            };
            let outcome = match Running::start(kind, &rs_env, "StreamgateMemory-rs256").await {
                Ok(sys) => scenarios::connect::run_rs256(&sys, plan.connect_n, plan.connect_concurrency)
                    .await
                    .map_err(|e| format!("{e:#}")),
                Err(e) => Err(format!("could not start with auth.jwt_public_key: {e:#}")),
            };
            log_outcome(kind, &outcome);
            report.connect_rs256 = Some(outcome);
        }
        if kind == SystemKind::StreamgateRedis && plan.runs(Scenario::Session) {
            say(kind, &format!("session S={}", plan.session.sessions));
            let s_env = Env {
                session: true,
                ..env.clone()
            };
            let outcome = match Running::start(kind, &s_env, "StreamgateRedis-session").await {
                Ok(mut sys) => {
                    let r = scenarios::session::run(&sys, &plan.session).await;
                    match (r, sys.check_alive()) {
                        (Ok(r), Ok(())) => Ok(r),
                        (Err(e), Ok(())) => Err(format!("{e:#}")),
                        (_, Err(e)) => Err(format!("system died: {e:#}")),
                    }
                }
                Err(e) => Err(format!("could not start with the session proxy: {e:#}")),
            };
            log_outcome(kind, &outcome);
            report.session = Some(outcome);
        }
    }
    let text = report.markdown();
    match &o.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => println!("{text}"),
    }
    if o.keep_workdir {
        eprintln!("configs and logs kept in {}", workdir.display());
    } else {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    Ok(())
}

pub(crate) fn say(kind: SystemKind, what: &str) {
    eprintln!("[{:>8.1}s] {}: {what}", payload::now_ns() as f64 / 1e9, kind.label());
}

/// Runs every selected scenario on one system (a fresh instance per idle run).
async fn run_system(kind: SystemKind, plan: &Plan, env: &Env, report: &mut Report) {
    let secret = &plan.load.secret;
    let mut start_error: Option<String> = None;
    if plan.runs(Scenario::Idle) {
        for &t in kind.transports() {
            say(kind, &format!("idle {} N={}", t.label(), plan.idle_n));
            let outcome = match Running::start(kind, env, &format!("{kind:?}-idle-{t:?}")).await {
                Ok(sys) => scenarios::idle::run(&sys, secret, t, plan.idle_n)
                    .await
                    .map_err(|e| format!("{e:#}")),
                Err(e) => {
                    let why = format!("could not start: {e:#}");
                    start_error.get_or_insert(why.clone());
                    Err(why)
                }
            };
            log_outcome(kind, &outcome);
            report.idle.push(Entry {
                system: kind,
                transport: t,
                outcome,
            });
        }
    }
    let others = [Scenario::Fanout, Scenario::Latency, Scenario::Connect];
    if !others.iter().any(|s| plan.runs(*s)) {
        if let Some(why) = start_error {
            report.unavailable.push((kind, why));
        }
        return;
    }
    say(kind, "starting");
    let mut sys = match Running::start(kind, env, &format!("{kind:?}")).await {
        Ok(sys) => Some(sys),
        Err(e) => {
            let why = format!("could not start: {e:#}");
            start_error.get_or_insert(why);
            None
        }
    };
    let mut fanout_max: HashMap<Transport, f64> = HashMap::new();
    let fail = |sys: &mut Option<Running>| -> Option<String> {
        match sys.as_mut() {
            None => Some(start_error.clone().unwrap_or_default()),
            Some(s) => s.check_alive().err().map(|e| format!("system died: {e:#}")),
        }
    };
    if plan.runs(Scenario::Fanout) {
        for (ci, case) in plan.cases.iter().enumerate() {
            for &t in kind.transports() {
                say(kind, &format!("fanout {} N={} M={}", t.label(), case.n, case.m));
                let outcome = match (fail(&mut sys), &sys) {
                    (None, Some(s)) => scenarios::fanout::run(s, &plan.load, t, case.n, case.m, plan.fanout_time)
                        .await
                        .map_err(|e| format!("{e:#}")),
                    (why, _) => Err(why.unwrap_or_default()),
                };
                if let (0, Ok(r)) = (ci, &outcome) {
                    fanout_max.insert(t, r.deliveries_per_s());
                }
                log_outcome(kind, &outcome);
                report.fanout.push((
                    *case,
                    Entry {
                        system: kind,
                        transport: t,
                        outcome,
                    },
                ));
            }
        }
    }
    if plan.runs(Scenario::Latency) {
        for &t in kind.transports() {
            let n = plan.latency_n;
            let outcome = match (fail(&mut sys), &sys) {
                (None, Some(s)) => {
                    let max = match fanout_max.get(&t) {
                        Some(m) => Ok(*m),
                        None => {
                            say(kind, &format!("latency {}: measuring the maximum first", t.label()));
                            scenarios::fanout::run(s, &plan.load, t, n, n, plan.fanout_time.min(Duration::from_secs(3)))
                                .await
                                .map(|r| r.deliveries_per_s())
                        }
                    };
                    match max {
                        Ok(max) => {
                            say(kind, &format!("latency {} N={n} at {:.0}/s", t.label(), max / 2.0));
                            scenarios::fanout::latency(s, &plan.load, t, n, max / 2.0, plan.latency_time).await
                        }
                        Err(e) => Err(e),
                    }
                    .map_err(|e| format!("{e:#}"))
                }
                (why, _) => Err(why.unwrap_or_default()),
            };
            log_outcome(kind, &outcome);
            report.latency.push(Entry {
                system: kind,
                transport: t,
                outcome,
            });
        }
    }
    if plan.runs(Scenario::Connect) {
        let t = if kind == SystemKind::RedisDirect {
            Transport::Resp
        } else {
            Transport::Ws
        };
        say(kind, &format!("connect {} N={}", t.label(), plan.connect_n));
        let outcome = match (fail(&mut sys), &sys) {
            (None, Some(s)) => scenarios::connect::run(s, secret, t, plan.connect_n, plan.connect_concurrency)
                .await
                .map_err(|e| format!("{e:#}")),
            (why, _) => Err(why.unwrap_or_default()),
        };
        log_outcome(kind, &outcome);
        report.connect.push(Entry {
            system: kind,
            transport: t,
            outcome,
        });
    }
    if sys.is_none() {
        if let Some(why) = start_error {
            report.unavailable.push((kind, why));
        }
    }
    say(kind, "stopping");
    drop(sys);
}

fn log_outcome<T: std::fmt::Debug>(kind: SystemKind, outcome: &Result<T, String>) {
    match outcome {
        Ok(r) => say(kind, &format!("{r:?}")),
        Err(e) => say(kind, &format!("NOT MEASURED: {e}")),
    }
}

fn header(env: &Env, note: Option<&str>) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        .unwrap_or_default();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let sg = env.streamgate_bin.display().to_string();
    let mut h = vec![
        ("Date".into(), procs::version_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        (
            "Machine".into(),
            format!(
                "{cores} cores ({model}), {:.1} GiB RAM, {os}, Linux {}",
                mem_kib as f64 / 1048576.0,
                kernel.trim()
            ),
        ),
        (
            "Open-file limit".into(),
            format!(
                "{} (each system and the generator are separate processes)",
                limit.rlim_cur
            ),
        ),
        ("streamgate".into(), procs::version_of(&sg, &["version"])),
        ("redis-server".into(), procs::version_of(&env.redis_bin, &["--version"])),
        ("Pushpin".into(), procs::version_of(&env.pushpin_bin, &["--version"])),
        (
            "condure / zurl".into(),
            format!(
                "{} / {}",
                procs::version_of("condure", &["--version"]),
                procs::version_of("zurl", &["--version"])
            ),
        ),
        (
            "Generator".into(),
            format!(
                "streamgate-bench {} (tokio multi-thread, same machine)",
                env!("CARGO_PKG_VERSION")
            ),
        ),
    ];
    if let Some(note) = note {
        h.push(("Note".into(), note.to_string()));
    }
    h
}

fn params(plan: &Plan, o: &Opts) -> Vec<(String, String)> {
    let cases: Vec<String> = plan.cases.iter().map(|c| format!("N={}/M={}", c.n, c.m)).collect();
    vec![
        ("Mode".into(), if o.quick { "--quick (smoke check: tiny N, not a measurement)".into() } else { "full".into() }),
        ("Message size".into(), format!("{} bytes", plan.load.payload_bytes)),
        ("idle".into(), format!("N={} per transport after 100 warm-up connections", plan.idle_n)),
        ("fanout".into(), format!("{}; {:.0} s of publishing each, {} publisher tasks, up to {} messages per publish call", cases.join(", "), plan.fanout_time.as_secs_f64(), plan.load.publishers, plan.load.batch)),
        ("latency".into(), format!("N={} on N identities, {:.0} s measured after a warm-up, rate = ½ × the first fan-out case's maximum of the same system and transport", plan.latency_n, plan.latency_time.as_secs_f64())),
        ("connect".into(), format!("{} WebSocket connections, {} concurrent connectors, one HS256 token each; streamgate (memory broker) again on a fresh instance with `auth.jwt_public_key` (the committed 2048-bit RSA fixture) and one RS256 token each", plan.connect_n, plan.connect_concurrency)),
        ("session".into(), format!("streamgate (Redis broker) with `session: {{enabled: true, auth: redis_token}}`; S={} sessions (one WS client each) after {} warm-up sessions; {:.2} s per run; high-rate run {:.0} msgs/s over {} sessions; then 1 msg/s per session over all S; each direction alone, then both at once at 1 msg/s per session each way", plan.session.sessions, plan.session.warm, plan.session.duration.as_secs_f64(), plan.session.hot_rate, plan.session.hot.min(plan.session.sessions))),
        ("streamgate config".into(), format!("relay.client_buffer_size={}, slow_consumer_policy=drop_newest_message, logging warn, other keys default", o.client_buffer)),
        ("Pushpin".into(), format!("packaged: {}; tuned: message_rate={}, message_hwm={}", systems::pushpin_packaged_limits(), systems::TUNED_MESSAGE_RATE, systems::TUNED_MESSAGE_HWM)),
    ]
}
