//! Results of one invocation, rendered as BENCHMARKS.md.

use crate::clients::Transport;
use crate::scenarios::connect::ConnectResult;
use crate::scenarios::fanout::{FanoutResult, LatencyResult};
use crate::scenarios::idle::IdleResult;
use crate::scenarios::session::SessionResult;
use crate::systems::SystemKind;
use std::fmt::Write;

/// Remarks gathered during the run (e.g. handshakes a peer refused and that were
/// retried during set-up), printed in the report.
static NOTES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records a remark for the report (and prints it).
pub fn note(text: String) {
    eprintln!("  note: {text}");
    NOTES.lock().unwrap_or_else(|p| p.into_inner()).push(text);
}

/// One measurement, or why it could not be made.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    pub system: SystemKind,
    pub transport: Transport,
    pub outcome: Result<T, String>,
}

/// A fan-out case: N clients over M identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub n: usize,
    pub m: usize,
}

/// Everything measured, plus what describes the run.
#[derive(Debug, Default)]
pub struct Report {
    pub header: Vec<(String, String)>,
    pub params: Vec<(String, String)>,
    pub idle: Vec<Entry<IdleResult>>,
    pub fanout: Vec<(Case, Entry<FanoutResult>)>,
    pub latency: Vec<Entry<LatencyResult>>,
    pub connect: Vec<Entry<ConnectResult>>,
    /// streamgate (memory broker) verifying RS256 with a public key.
    pub connect_rs256: Option<Result<ConnectResult, String>>,
    pub session: Option<Result<SessionResult, String>>,
    /// Systems that could not be started, with the reason.
    pub unavailable: Vec<(SystemKind, String)>,
}

fn find<T>(entries: &[Entry<T>], system: SystemKind, transport: Transport) -> Option<&T> {
    entries
        .iter()
        .find(|e| e.system == system && e.transport == transport)
        .and_then(|e| e.outcome.as_ref().ok())
}

/// The reference row for `system`'s row on `transport`: Redis direct is RESP.
fn peer_transport(peer: SystemKind, transport: Transport) -> Transport {
    if peer == SystemKind::RedisDirect {
        Transport::Resp
    } else {
        transport
    }
}

const PEERS: [SystemKind; 3] = [
    SystemKind::RedisDirect,
    SystemKind::PushpinPackaged,
    SystemKind::PushpinTuned,
];

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a / b < 0.1 => format!("{:.4}×", a / b),
        Some(b) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

fn int(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn drops(d: Option<u64>) -> String {
    d.map_or("n/a".into(), |d| int(d as f64))
}

/// A failed cell row: system, transport, then the reason across the rest.
fn failed_row(out: &mut String, system: SystemKind, transport: Transport, why: &str, cols: usize) {
    let why = why.replace('\n', " ").replace('|', "\\|");
    let why: String = why.chars().take(300).collect();
    let _ = write!(
        out,
        "| {} | {} | **not measured:** {why} |",
        system.label(),
        transport.label()
    );
    for _ in 1..cols {
        out.push_str(" |");
    }
    out.push('\n');
}

/// A target line: (target, run, measured, ratio, met).
struct Target {
    what: String,
    run: String,
    measured: String,
    met: Option<bool>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("# Benchmarks\n\n");
        out.push_str(
            "Written by `scripts/bench` (the `streamgate-bench` load generator in `bench/`); \
             rerun it rather than editing this file. Every system below was started by the bench \
             itself on free loopback ports, measured with the same clients and the same message \
             size in the same invocation, and stopped again.\n\n",
        );
        out.push_str("## Machine, versions, parameters\n\n");
        for (k, v) in self.header.iter().chain(&self.params) {
            let _ = writeln!(out, "- **{k}:** {v}");
        }
        out.push('\n');
        if !self.unavailable.is_empty() {
            out.push_str("## Systems that could not be started\n\n");
            for (system, why) in &self.unavailable {
                let _ = writeln!(out, "- **{}:** {}", system.label(), why.replace('\n', " "));
            }
            out.push('\n');
        }
        let targets = self.targets();
        out.push_str("## Targets (issue 7)\n\n| target | streamgate run | measured | met |\n|---|---|---|---|\n");
        for t in &targets {
            let met = match t.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(out, "| {} | {} | {} | {met} |", t.what, t.run, t.measured);
        }
        out.push('\n');
        self.idle_table(&mut out);
        self.fanout_tables(&mut out);
        self.latency_table(&mut out);
        self.connect_table(&mut out);
        self.rs256_table(&mut out);
        self.session_tables(&mut out);
        let notes = NOTES.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !notes.is_empty() {
            out.push_str("## Remarks from the run\n\n");
            for n in notes {
                let _ = writeln!(out, "- {}", n.replace('\n', " "));
            }
            out.push('\n');
        }
        out.push_str("## Interpretation\n\n");
        out.push_str(&self.interpretation(&targets));
        out.push_str("\n\n## How to read these numbers\n\n");
        out.push_str(METHOD_NOTES);
        out
    }

    fn idle_table(&self, out: &mut String) {
        out.push_str("## idle: server memory per idle connection\n\n");
        out.push_str("RSS of every process of the system (`/proc/PID/status` VmRSS) after 100 warm-up connections and after N more, each on its own identity; a fresh instance per transport. Lower is better; ratios are this row ÷ the reference.\n\n");
        out.push_str("| system | transport | N | RSS before | RSS after | KiB per connection | vs Redis direct | vs Pushpin packaged | vs Pushpin tuned | open time |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for e in &self.idle {
            match &e.outcome {
                Err(why) => failed_row(out, e.system, e.transport, why, 8),
                Ok(r) => {
                    let v = r.per_conn_kib();
                    let ratios: Vec<String> = PEERS
                        .iter()
                        .map(|p| {
                            if *p == e.system {
                                "—".into()
                            } else {
                                ratio(
                                    v,
                                    find(&self.idle, *p, peer_transport(*p, e.transport)).map(IdleResult::per_conn_kib),
                                )
                            }
                        })
                        .collect();
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} MiB | {} MiB | **{:.1}** | {} | {} | {} | {:.1} s |",
                        e.system.label(),
                        e.transport.label(),
                        int(r.n as f64),
                        r.before_kib / 1024,
                        r.after_kib / 1024,
                        v,
                        ratios[0],
                        ratios[1],
                        ratios[2],
                        r.open_secs
                    );
                }
            }
        }
        out.push('\n');
    }

    fn fanout_entries(&self, case: Case) -> Vec<Entry<FanoutResult>> {
        self.fanout
            .iter()
            .filter(|(c, _)| *c == case)
            .map(|(_, e)| e.clone())
            .collect()
    }

    fn cases(&self) -> Vec<Case> {
        let mut cases: Vec<Case> = Vec::new();
        for (c, _) in &self.fanout {
            if !cases.contains(c) {
                cases.push(*c);
            }
        }
        cases
    }

    fn fanout_tables(&self, out: &mut String) {
        out.push_str("## fanout: delivered messages per second\n\n");
        out.push_str("Publishers send round-robin over the identities as fast as delivery keeps up (a bounded window of outstanding deliveries: at most 32 per connection, 65 536 in all), for a fixed time. *delivered/s* = messages received by the clients ÷ the time from the first publish to the last delivery (so a system that accepts fast and delivers late is measured by its deliveries); *lost* = published × recipients − received once deliveries stop (no delivery for 2 s, or 15 s after publishing ended: what a system still holds then counts as lost); *drops* is streamgate's `streamgate_relay_dropped_messages_total` delta. CPU is in cores (1.00 = one core busy) for the system's processes and for the load generator. Higher delivered/s is better; ratios are this row ÷ the reference.\n\n");
        for case in self.cases() {
            let entries = self.fanout_entries(case);
            let _ = writeln!(
                out,
                "### N = {} connections over M = {} identities ({} recipients per message)\n",
                int(case.n as f64),
                int(case.m as f64),
                int((case.n / case.m.max(1)) as f64)
            );
            out.push_str("| system | transport | publish path | delivered/s | vs Redis direct | vs Pushpin packaged | vs Pushpin tuned | published | lost | drops | server CPU | generator CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
            for e in &entries {
                match &e.outcome {
                    Err(why) => failed_row(out, e.system, e.transport, why, 10),
                    Ok(r) => {
                        let v = r.deliveries_per_s();
                        let ratios: Vec<String> = PEERS
                            .iter()
                            .map(|p| {
                                if *p == e.system {
                                    "—".into()
                                } else {
                                    ratio(
                                        v,
                                        find(&entries, *p, peer_transport(*p, e.transport))
                                            .map(FanoutResult::deliveries_per_s),
                                    )
                                }
                            })
                            .collect();
                        let mut lost = int(r.lost() as f64);
                        if r.ended_early > 0 {
                            let _ = write!(lost, " ({} connections closed by the server)", r.ended_early);
                        }
                        if r.publish_errors > 0 {
                            let _ = write!(lost, " ({} publish errors)", r.publish_errors);
                        }
                        let _ = writeln!(
                            out,
                            "| {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
                            e.system.label(),
                            e.transport.label(),
                            e.system.publish_path(),
                            int(v),
                            ratios[0],
                            ratios[1],
                            ratios[2],
                            int(r.published as f64),
                            lost,
                            drops(r.drops),
                            r.server_cores,
                            r.client_cores
                        );
                    }
                }
            }
            out.push('\n');
        }
    }

    fn latency_table(&self, out: &mut String) {
        out.push_str("## latency: delivery latency at half of the maximum\n\n");
        out.push_str("N connections on N identities; publishers at a fixed rate of half the rate the same system and transport reached in the first fan-out case, sending the messages due within about 1 ms in one publish call (at most the fan-out batch size; each message is stamped when its call is sent); latency = receive time − send time stamped in the payload (publish call included). Lower is better; ratios compare p99. Where latency reaches seconds the system did not keep up with the fixed rate and a backlog grew through the run.\n\n");
        out.push_str("| system | transport | rate (deliveries/s) | p50 | p99 | p99.9 | max | p99 vs Redis direct | p99 vs Pushpin tuned | lost | drops | server CPU | generator CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for e in &self.latency {
            match &e.outcome {
                Err(why) => failed_row(out, e.system, e.transport, why, 11),
                Ok(r) => {
                    let peer = |p: SystemKind| {
                        if p == e.system {
                            "—".into()
                        } else {
                            ratio(
                                r.p99_us as f64,
                                find(&self.latency, p, peer_transport(p, e.transport)).map(|x| x.p99_us as f64),
                            )
                        }
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} (achieved {}) | {} | **{}** | **{}** | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
                        e.system.label(),
                        e.transport.label(),
                        int(r.target_per_s),
                        int(r.achieved_per_s),
                        ms(r.p50_us),
                        ms(r.p99_us),
                        ms(r.p999_us),
                        ms(r.max_us),
                        peer(SystemKind::RedisDirect),
                        peer(SystemKind::PushpinTuned),
                        int(r.lost() as f64),
                        drops(r.drops),
                        r.server_cores,
                        r.client_cores
                    );
                }
            }
        }
        out.push('\n');
    }

    fn rs256_table(&self, out: &mut String) {
        let Some(rs) = &self.connect_rs256 else { return };
        let hs = find(&self.connect, SystemKind::StreamgateMemory, Transport::Ws);
        out.push_str("## connect: HS256 and RS256 tokens (issue 5)\n\n");
        out.push_str("streamgate (memory broker), WebSocket, the same connect run twice on fresh instances: once with `auth.jwt_secret` and HS256 tokens, once with `auth.jwt_public_key` (2048-bit RSA) and RS256 tokens (signed by the bench before the clock starts). Verification is local; the RS256 row pays the RSA public-key operation per handshake.\n\n");
        out.push_str("| algorithm | opened | connections/s | p50 | p99 | max | failed | server CPU |\n|---|---|---|---|---|---|---|---|\n");
        for (alg, r) in [
            ("HS256", hs.ok_or("not measured")),
            ("RS256", rs.as_ref().map_err(|e| e.as_str())),
        ] {
            match r {
                Ok(r) => {
                    let _ = writeln!(
                        out,
                        "| {alg} | {} | **{}** | {} | **{}** | {} | {} | {:.2} |",
                        int(r.opened as f64),
                        int(r.per_s()),
                        ms(r.p50_us),
                        ms(r.p99_us),
                        ms(r.max_us),
                        r.failed,
                        r.server_cores
                    );
                }
                Err(why) => {
                    let why: String = why.replace(['\n', '|'], " ").chars().take(300).collect();
                    let _ = writeln!(out, "| {alg} | **not measured:** {why} | | | | | | |");
                }
            }
        }
        if let (Some(h), Ok(r)) = (hs, rs) {
            let _ = writeln!(
                out,
                "\nRS256 ÷ HS256 connections/s: {}.",
                ratio(r.per_s(), Some(h.per_s()))
            );
        }
        out.push('\n');
    }

    fn session_tables(&self, out: &mut String) {
        let Some(session) = &self.session else { return };
        out.push_str("## session: session proxy on the Redis broker (issue 6)\n\n");
        let r = match session {
            Err(why) => {
                let _ = writeln!(out, "**Not measured:** {}\n", why.replace('\n', " "));
                return;
            }
            Ok(r) => r,
        };
        let _ = writeln!(
            out,
            "streamgate with `session: {{enabled: true, auth: redis_token}}`; the bench SETs `session:{{id}}:auth` in the private redis-server and opens one WebSocket client per session on `/{{agent}}/ws/{{session}}` with `Authorization: Bearer`. S = {} sessions opened in {:.1} s. Down: `PUBLISH session:{{id}}:down` → client; up: client text frame → `session:{{id}}:up` → a bench `PSUBSCRIBE session:*:up`. Latency = receive − send stamp in the payload; lost = sent − received once deliveries stop. Each run sends at a fixed total rate, round-robin over its sessions: one direction alone, except the last two rows (1 msg/s per session each way at the same time, the issue's load).\n",
            r.sessions, r.open_secs
        );
        out.push_str("| direction | sessions | target msgs/s | achieved msgs/s | sent | received | lost | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        for d in &r.runs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {} |",
                match (d.up, d.both) {
                    (false, false) => "down (Redis → client)",
                    (true, false) => "up (client → Redis)",
                    (false, true) => "down, while up runs too",
                    (true, true) => "up, while down runs too",
                },
                int(d.sessions as f64),
                int(d.target_per_s),
                int(d.achieved_per_s),
                int(d.sent as f64),
                int(d.received as f64),
                int(d.lost() as f64),
                ms(d.p50_us),
                ms(d.p99_us),
                ms(d.p999_us),
                ms(d.max_us)
            );
        }
        let _ = writeln!(
            out,
            "\nMemory: streamgate VmRSS {} MiB before and {} MiB after the S sessions → **{:.2} KiB per idle session**. Client connections closed by the server or broken during the runs: {}.\n",
            r.rss_before_kib / 1024,
            r.rss_after_kib / 1024,
            r.per_session_kib(),
            r.ended_early
        );
        let lost: u64 = r.runs.iter().map(|d| d.lost() + d.send_errors).sum();
        let sent: u64 = r.runs.iter().map(|d| d.sent).sum();
        let hot_down = r.runs.first();
        let met = |b: bool| if b { "met" } else { "**missed**" };
        out.push_str("| target (issue 6) | measured | met |\n|---|---|---|\n");
        let _ = writeln!(
            out,
            "| zero loss at every rate, both directions | {} lost of {} sent over {} runs | {} |",
            int(lost as f64),
            int(sent as f64),
            r.runs.len(),
            met(lost == 0)
        );
        if let Some(d) = hot_down {
            let full = d.sessions >= 1000 && d.target_per_s >= 10_000.0;
            let _ = writeln!(
                out,
                "| p99 ≤ 5 ms Redis→client at 10 000 msgs/s over 1 000 sessions | p99 {} at {} msgs/s over {} sessions{} | {} |",
                ms(d.p99_us),
                int(d.achieved_per_s),
                int(d.sessions as f64),
                if full { "" } else { " (a smaller load than the target's)" },
                if full { met(d.p99_us <= 5000) } else { "not measured at the target's load" }
            );
        }
        let _ = writeln!(
            out,
            "| ≤ 4 KiB RSS per idle session | {:.2} KiB (S = {}) | {} |",
            r.per_session_kib(),
            r.sessions,
            met(r.per_session_kib() <= 4.0)
        );
        out.push_str("\nReference, **measured by the issue author, not in this run** (wsproxy with a Python client, on this kind of machine): p99 3.5 ms at 10 000 msgs/s with 3.6 % loss; 14–15 KiB per connection.\n\n");
    }

    fn connect_table(&self, out: &mut String) {
        out.push_str("## connect: new authenticated connections per second\n\n");
        out.push_str("Concurrent connectors open connections one after another, each with its own HS256 token (minted before the clock starts), and keep them open; the handshake time runs from the TCP connect to the `connected` event. Pushpin's tokens are verified by the bench's GRIP origin (in the generator's process); Redis direct has no authentication (TCP connect + `SUBSCRIBE`). Higher connections/s is better.\n\n");
        out.push_str("| system | transport | opened | connections/s | vs Redis direct | vs Pushpin tuned | p50 | p99 | max | failed | server CPU | generator CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for e in &self.connect {
            match &e.outcome {
                Err(why) => failed_row(out, e.system, e.transport, why, 10),
                Ok(r) => {
                    let peer = |p: SystemKind| {
                        if p == e.system {
                            "—".into()
                        } else {
                            ratio(
                                r.per_s(),
                                find(&self.connect, p, peer_transport(p, e.transport)).map(ConnectResult::per_s),
                            )
                        }
                    };
                    let mut failed = int(r.failed as f64);
                    if let Some(err) = &r.first_error {
                        let _ = write!(failed, " (first: {})", err.replace('|', "\\|"));
                    }
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
                        e.system.label(),
                        e.transport.label(),
                        int(r.opened as f64),
                        int(r.per_s()),
                        peer(SystemKind::RedisDirect),
                        peer(SystemKind::PushpinTuned),
                        ms(r.p50_us),
                        ms(r.p99_us),
                        ms(r.max_us),
                        failed,
                        r.server_cores,
                        r.client_cores
                    );
                }
            }
        }
        out.push('\n');
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let sg = [SystemKind::StreamgateMemory, SystemKind::StreamgateRedis];
        let run = |s: SystemKind, t: Transport| format!("{}, {}", s.label(), t.label());
        let cases = self.cases();
        for case in cases.iter().take(2) {
            let entries = self.fanout_entries(*case);
            for (peer, factor) in [(SystemKind::RedisDirect, 1.0), (SystemKind::PushpinTuned, 3.0)] {
                for s in sg {
                    for t in [Transport::Ws, Transport::Sse] {
                        let mine = find(&entries, s, t).map(FanoutResult::deliveries_per_s);
                        let theirs = find(&entries, peer, peer_transport(peer, t)).map(FanoutResult::deliveries_per_s);
                        let (measured, met) = match (mine, theirs) {
                            (Some(a), Some(b)) if b > 0.0 => (
                                format!("{}/s vs {}/s = {:.2}×", int(a), int(b), a / b),
                                Some(a >= factor * b),
                            ),
                            (Some(a), _) => (format!("{}/s; reference not measured", int(a)), None),
                            _ => ("not measured".into(), None),
                        };
                        targets.push(Target {
                            what: format!("fanout N={}/M={} ≥ {factor:.1}× {}", case.n, case.m, peer.label()),
                            run: run(s, t),
                            measured,
                            met,
                        });
                    }
                }
            }
        }
        for s in sg {
            for t in [Transport::Ws, Transport::Sse] {
                let mine = find(&self.idle, s, t).map(IdleResult::per_conn_kib);
                targets.push(Target {
                    what: "idle ≤ 4 KiB RSS per connection".into(),
                    run: run(s, t),
                    measured: mine.map_or("not measured".into(), |v| format!("{v:.1} KiB")),
                    met: mine.map(|v| v <= 4.0),
                });
                let theirs = find(&self.idle, SystemKind::PushpinPackaged, t).map(IdleResult::per_conn_kib);
                let (measured, met) = match (mine, theirs) {
                    (Some(a), Some(b)) if b > 0.0 => {
                        (format!("{a:.1} vs {b:.1} KiB = {:.2}×", a / b), Some(a <= 0.5 * b))
                    }
                    _ => ("not measured".into(), None),
                };
                targets.push(Target {
                    what: "idle ≤ 0.5× Pushpin per connection".into(),
                    run: run(s, t),
                    measured,
                    met,
                });
            }
        }
        for s in sg {
            for t in [Transport::Ws, Transport::Sse] {
                let mine = find(&self.latency, s, t);
                targets.push(Target {
                    what: "latency p99 ≤ 5 ms and p99.9 ≤ 20 ms at half of max".into(),
                    run: run(s, t),
                    measured: mine.map_or("not measured".into(), |r| {
                        format!(
                            "p99 {}, p99.9 {} at {}/s",
                            ms(r.p99_us),
                            ms(r.p999_us),
                            int(r.target_per_s)
                        )
                    }),
                    met: mine.map(|r| r.p99_us <= 5_000 && r.p999_us <= 20_000 && r.lost() == 0),
                });
            }
        }
        for s in sg {
            let mine = find(&self.connect, s, Transport::Ws);
            targets.push(Target {
                what: "connect ≥ 5 000 authenticated WS connections/s".into(),
                run: run(s, Transport::Ws),
                measured: mine.map_or("not measured".into(), |r| {
                    format!("{}/s (p99 handshake {})", int(r.per_s()), ms(r.p99_us))
                }),
                met: mine.map(|r| r.per_s() >= 5_000.0 && r.failed == 0),
            });
        }
        targets
    }

    fn fanout_rate(&self, case: Case, system: SystemKind, transport: Transport) -> Option<&FanoutResult> {
        self.fanout
            .iter()
            .find(|(c, e)| *c == case && e.system == system && e.transport == transport)
            .and_then(|(_, e)| e.outcome.as_ref().ok())
    }

    fn interpretation(&self, targets: &[Target]) -> String {
        use SystemKind::{PushpinPackaged, PushpinTuned, RedisDirect, StreamgateMemory, StreamgateRedis};
        let met = targets.iter().filter(|t| t.met == Some(true)).count();
        let missed: Vec<&Target> = targets.iter().filter(|t| t.met == Some(false)).collect();
        let unmeasured = targets.iter().filter(|t| t.met.is_none()).count();
        let mut s = format!(
            "streamgate met {met} of the {} target checks and missed {}",
            targets.len(),
            missed.len()
        );
        if unmeasured > 0 {
            let _ = write!(
                s,
                " ({unmeasured} could not be evaluated because a run or its reference was not measured)"
            );
        }
        let mut kinds: Vec<&str> = missed.iter().map(|t| t.what.split(' ').next().unwrap_or("")).collect();
        kinds.dedup();
        if !kinds.is_empty() {
            let _ = write!(s, "; the misses are in {}", kinds.join(", "));
        }
        s.push_str(". ");
        let kib = |sys, t| find(&self.idle, sys, t).map(IdleResult::per_conn_kib);
        if let (Some(ws), Some(sse)) = (
            kib(StreamgateMemory, Transport::Ws),
            kib(StreamgateMemory, Transport::Sse),
        ) {
            let _ = write!(
                s,
                "Memory: an idle connection costs streamgate {ws:.1} KiB over WebSocket and {sse:.1} KiB over SSE"
            );
            if let Some(r) = kib(RedisDirect, Transport::Resp) {
                let _ = write!(s, ", against {r:.1} KiB for a Redis subscriber connection");
            }
            if let (Some(pw), Some(ps)) = (
                kib(PushpinPackaged, Transport::Ws),
                kib(PushpinPackaged, Transport::Sse),
            ) {
                let _ = write!(s, " and {pw:.1} / {ps:.1} KiB (WS / SSE) through Pushpin");
            }
            let over: Vec<&str> = [("WebSocket", ws), ("SSE", sse)]
                .iter()
                .filter(|(_, v)| *v > 4.0)
                .map(|(t, _)| *t)
                .collect();
            if over.is_empty() {
                s.push_str("; both are within the 4 KiB target. ");
            } else {
                let verb = if over.len() > 1 { "are" } else { "is" };
                let _ = write!(s, "; {} {verb} above the 4 KiB target. ", over.join(" and "));
            }
        }
        let cases = self.cases();
        if let Some(&first) = cases.first() {
            let rate = |sys, t| self.fanout_rate(first, sys, t).map(FanoutResult::deliveries_per_s);
            if let (Some(mem), Some(red), Some(direct)) = (
                rate(StreamgateMemory, Transport::Ws),
                rate(StreamgateRedis, Transport::Ws),
                rate(RedisDirect, Transport::Resp),
            ) {
                let _ = write!(
                    s,
                    "Fan-out with one recipient per message (N={}/M={}) makes every delivery a publish, so it measures the publish path more than the hub: streamgate delivered {}/s (WS) fed by `POST /api/publish` and {}/s fed by Redis `PUBLISH` (which then crosses Redis, the node's pattern subscription and the hub), against {}/s for Redis direct, whose only hop is Redis itself. ",
                    first.n,
                    first.m,
                    int(mem),
                    int(red),
                    int(direct)
                );
            }
        }
        let mut parts = Vec::new();
        let mut ws_dearer = true;
        for case in cases.iter().skip(1) {
            let rate = |sys, t| self.fanout_rate(*case, sys, t).map(FanoutResult::deliveries_per_s);
            if let (Some(ws), Some(sse), Some(direct)) = (
                rate(StreamgateRedis, Transport::Ws),
                rate(StreamgateRedis, Transport::Sse),
                rate(RedisDirect, Transport::Resp),
            ) {
                ws_dearer &= ws < sse;
                parts.push(format!(
                    "at {} recipients per message {}/s over SSE and {}/s over WebSocket ({:.2}× and {:.2}× Redis direct)",
                    case.n / case.m.max(1),
                    int(sse),
                    int(ws),
                    sse / direct.max(1e-9),
                    ws / direct.max(1e-9)
                ));
            }
        }
        if !parts.is_empty() {
            let _ = write!(
                s,
                "Where one message goes to many connections the hub encodes it once and each connection's writer batches what is queued: streamgate (Redis broker) delivered {}",
                parts.join("; ")
            );
            if ws_dearer {
                s.push_str("; in these cases WebSocket costs more per delivery than SSE");
            }
            let dropped: u64 = self
                .fanout
                .iter()
                .filter(|(_, e)| e.system.is_streamgate())
                .filter_map(|(_, e)| e.outcome.as_ref().ok()?.drops)
                .sum();
            if dropped > 0 {
                let _ = write!(
                    s,
                    ". Over all fan-out runs streamgate's slow-consumer policy dropped {} messages (the server's counter, equal to what the clients missed) when some of the generator's readers fell behind their 64-message queues",
                    int(dropped as f64)
                );
            }
            s.push_str(". ");
        }
        if let (Some(p), Some(t)) = (
            cases
                .first()
                .and_then(|c| self.fanout_rate(*c, PushpinPackaged, Transport::Sse)),
            cases
                .first()
                .and_then(|c| self.fanout_rate(*c, PushpinTuned, Transport::Sse)),
        ) {
            let _ = write!(
                s,
                "Pushpin as packaged delivered {}/s at one recipient per message (its handler caps deliveries with `message_rate`), {}/s with the limits raised",
                int(p.deliveries_per_s()),
                int(t.deliveries_per_s())
            );
            let slow = self
                .latency
                .iter()
                .filter(|e| matches!(e.system, PushpinPackaged | PushpinTuned))
                .filter_map(|e| e.outcome.as_ref().ok())
                .any(|r| r.p50_us > 1_000_000);
            if slow {
                s.push_str("; in the latency runs it did not hold even half of that pace steadily (latency grew through the run into seconds)");
            }
            s.push_str(". ");
        }
        let peak_client = self
            .fanout
            .iter()
            .filter_map(|(_, e)| e.outcome.as_ref().ok().map(|r| r.client_cores))
            .fold(0.0_f64, f64::max);
        let _ = write!(
            s,
            "The generator used at most {peak_client:.2} cores; it shares the machine's cores with the system under test, so where server and generator CPU add up to the core count a figure is a shared-CPU figure that ranks systems by CPU cost per delivered message rather than showing what a dedicated server would reach."
        );
        s
    }
}

const METHOD_NOTES: &str = "\
- Clients: WebSocket through tokio-tungstenite (4 KiB read buffer), SSE over raw TCP with a \
  small chunked-encoding decoder, Redis through raw RESP `SUBSCRIBE streams:{identity}` (one \
  connection per client). All are tasks of one multi-threaded tokio process, each bound to a \
  source address in 127.0.0.2–251.
- Payload: a JSON object of the configured size whose first field is the send time in \
  nanoseconds on the generator's monotonic clock (the generator both publishes and receives).
- Publishing: streamgate (memory broker) through `POST /api/publish` with its API key and \
  Pushpin through its HTTP publish endpoint (items with `ws-message` and `http-stream` \
  formats), both with hyper's HTTP/1.1 client on one keep-alive connection per publisher \
  task; streamgate (Redis broker) and Redis direct through `PUBLISH` on one multiplexed \
  connection (which pipelines the concurrent tasks' commands). Publisher tasks run \
  concurrently. In fan-out, each publish call carries up to the parameters' *messages per \
  publish call* in each system's own batch form: a pipeline of `PUBLISH` for Redis, \
  `{\"messages\":[…]}` for streamgate, `{\"items\":[…]}` for Pushpin (capped so all \
  publishers' batches fit in a quarter of the delivery window: fewer per call when a message has \
  many recipients). Latency runs publish at a fixed rate, the messages due within about 1 ms in one call (at most the same batch size), each stamped when its call is sent.
- Pushpin runs with the bench's own pushpin.conf (the packaged one with its services set to \
  `condure,zurl,pushpin-proxy,pushpin-handler` and zurl's sockets under the bench's rundir, \
  because the packaged internal config points at a system zurl that is not running). Its \
  backend is the bench's GRIP origin: SSE gets `Grip-Hold: stream` + `Grip-Channel`, WebSocket \
  goes through WebSocket-over-HTTP with a `subscribe` control message. *Packaged* keeps the \
  handler's `message_rate`/`message_hwm`; *tuned* raises both (the fair engine comparison).
- Lost messages must be zero whenever no drop was counted; a non-zero *lost* with zero drops \
  would be a bug in the system (or a client that fell behind and was disconnected, shown \
  beside it).
- CPU: user+system time from `/proc/PID/stat` of every process of the system (Redis broker \
  included for streamgate with Redis) and of the generator, divided by the wall time of the \
  measured period.
";
