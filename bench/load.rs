//! Benchmark: accepted and delivered messages per second through ct-relay,
//! next to the same load sent straight to the sink (the reference, measured
//! in the same run). Run it with bench/run.sh.
//!
//! The relay runs as its own process (release build) on SQLite with fsync on
//! (`synchronous=FULL`), delivering to an in-process SMTP sink.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

struct Args {
    relay: PathBuf,
    messages: usize,
    sessions: usize,
    size: usize,
    storage_url: Option<String>,
    /// Offered load in msg/s over all sessions; None: as fast as accepted.
    rate: Option<f64>,
}

fn parse_args() -> Args {
    let mut a = Args {
        relay: PathBuf::from("target/release/ct-relay"),
        messages: 2000,
        sessions: 16,
        size: 10 * 1024,
        storage_url: None,
        rate: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--relay" => a.relay = PathBuf::from(value()),
            "--messages" => a.messages = value().parse().expect("--messages N"),
            "--sessions" => a.sessions = value().parse().expect("--sessions S"),
            "--size" => a.size = value().parse().expect("--size BYTES"),
            "--storage-url" => a.storage_url = Some(value()),
            "--rate" => a.rate = Some(value().parse().expect("--rate MSGS_PER_S")),
            other => panic!("unknown flag {other}; see bench/run.sh"),
        }
    }
    a
}

/// Counts messages; answers 250 to everything.
async fn sink(count: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut line = Vec::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let reply: &[u8] = if in_data {
                        if line != b".\r\n" {
                            continue;
                        }
                        in_data = false;
                        count.fetch_add(1, Ordering::SeqCst);
                        b"250 2.0.0 Ok\r\n"
                    } else if line.starts_with(b"EHLO") {
                        b"250-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SIZE 100000000\r\n"
                    } else if line.starts_with(b"DATA") {
                        in_data = true;
                        b"354 go\r\n"
                    } else if line.starts_with(b"QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 Ok\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn read_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, line: &mut String) -> u16 {
    loop {
        line.clear();
        r.read_line(line).await.unwrap();
        assert!(line.len() >= 4, "connection closed");
        if &line[3..4] != "-" {
            return line[..3].parse().unwrap();
        }
    }
}

/// When each message of a session is due: `None` sends back to back.
#[derive(Clone, Copy)]
struct Pace {
    start: tokio::time::Instant,
    /// Seconds between two messages of one session.
    every: f64,
}

/// One SMTP session sending `count` messages (MAIL, RCPT, DATA pipelined).
/// Returns each message's accept latency: end of DATA sent to 250 read.
async fn session(
    addr: SocketAddr,
    rcpts: Arc<Vec<String>>,
    first: usize,
    count: usize,
    body: Arc<Vec<u8>>,
    pace: Option<Pace>,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    assert_eq!(read_reply(&mut r, &mut line).await, 220);
    w.write_all(b"EHLO bench.test\r\n").await.unwrap();
    assert_eq!(read_reply(&mut r, &mut line).await, 250);
    for (k, i) in (first..first + count).enumerate() {
        if let Some(p) = pace {
            tokio::time::sleep_until(p.start + Duration::from_secs_f64(p.every * k as f64)).await;
        }
        let rcpt = &rcpts[i % rcpts.len()];
        let cmds = format!(
            "MAIL FROM:<shop@bench.example> SIZE={}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n",
            body.len()
        );
        w.write_all(cmds.as_bytes()).await.unwrap();
        for expect in [250, 250, 354] {
            let code = read_reply(&mut r, &mut line).await;
            assert_eq!(code, expect, "{line}");
        }
        w.write_all(&body).await.unwrap();
        w.write_all(b".\r\n").await.unwrap();
        let sent = Instant::now();
        let code = read_reply(&mut r, &mut line).await;
        latencies.push(sent.elapsed());
        assert_eq!(code, 250, "{line}");
    }
    w.write_all(b"QUIT\r\n").await.unwrap();
    latencies
}

/// Send all messages over `sessions` sessions, paced at `rate` if given;
/// returns the elapsed time and the sorted accept latencies.
async fn load(
    addr: SocketAddr,
    rcpts: Arc<Vec<String>>,
    a: &Args,
    body: Arc<Vec<u8>>,
    rate: Option<f64>,
) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let origin = tokio::time::Instant::now();
    let per = a.messages / a.sessions;
    let mut tasks = Vec::new();
    for s in 0..a.sessions {
        let extra = if s == a.sessions - 1 {
            a.messages % a.sessions
        } else {
            0
        };
        tasks.push(tokio::spawn(session(
            addr,
            rcpts.clone(),
            s * per,
            per + extra,
            body.clone(),
            rate.map(|r| Pace {
                // Sessions start staggered so the offered load is even.
                start: origin + Duration::from_secs_f64(s as f64 / r),
                every: a.sessions as f64 / r,
            }),
        )));
    }
    let mut latencies = Vec::with_capacity(a.messages);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort();
    (start.elapsed(), latencies)
}

/// The `q` quantile of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn message(size: usize) -> Vec<u8> {
    let mut m =
        b"From: Shop <shop@bench.example>\r\nSubject: Your order\r\nMIME-Version: 1.0\r\n\r\n"
            .to_vec();
    let line =
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
    while m.len() + line.len() <= size {
        m.extend_from_slice(line);
    }
    m
}

fn relay_cmd(a: &Args, config: &std::path::Path) -> Command {
    let mut c = Command::new(&a.relay);
    c.arg("--config").arg(config);
    c
}

#[tokio::main]
async fn main() {
    let a = parse_args();
    let body = Arc::new(message(a.size));
    let delivered = Arc::new(AtomicUsize::new(0));
    let sink_addr = sink(delivered.clone()).await;

    // Reference: the same load straight to the sink.
    let (direct, _) = load(
        sink_addr,
        Arc::new(vec!["x@sink.example".into()]),
        &a,
        body.clone(),
        None,
    )
    .await;
    delivered.store(0, Ordering::SeqCst);

    let dir = tempfile::tempdir().unwrap();
    let smtp = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = a
        .storage_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nlisten = \"{smtp}\"\nhostname = \"bench.relay\"\nmax_recipients = 100\n\
             [alias]\ndomain = \"ct.test\"\nhmac_key = \"bench-key-bench-key-bench-key-bench-key\"\n\
             [storage]\nurl = \"{url}\"\n\
             [auth]\ncheck = false\n\
             [policy]\nper_sender_and_alias_per_hour = 0\nper_alias_per_hour = 0\n\
             privileged_per_sender_and_alias_per_hour = 0\nprivileged_per_alias_per_hour = 0\n\
             [delivery]\ntransport = \"smarthost\"\nsmarthost = \"{sink_addr}\"\nworkers = 32\npoll_interval = \"1s\"\n\
             [log]\nlevel = \"warn\"\n"
        ),
    )
    .unwrap();
    let mut rcpts = Vec::new();
    for i in 0..50 {
        let out = relay_cmd(&a, &config)
            .args([
                "alias",
                "create",
                "--store",
                "bench",
                "--order",
                &format!("order-{i}"),
            ])
            .args(["--email", &format!("buyer{i}@mailbox.example")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        rcpts.push(v["alias"].as_str().unwrap().to_string());
    }
    let mut relay = relay_cmd(&a, &config)
        .arg("serve")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let up = Instant::now();
    while std::net::TcpStream::connect(smtp).is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "relay did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let start = Instant::now();
    let (accepted, latencies) = load(smtp, Arc::new(rcpts), &a, body.clone(), a.rate).await;
    while delivered.load(Ordering::SeqCst) < a.messages {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_delivered = start.elapsed();
    relay.kill().unwrap();
    relay.wait().unwrap();

    let rate = |d: Duration| a.messages as f64 / d.as_secs_f64();
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "{{\"messages\":{},\"sessions\":{},\"size\":{},\"storage\":\"{backend}\",\
         \"direct_to_sink_msgs_per_s\":{:.0},\"relay_accepted_msgs_per_s\":{:.0},\
         \"relay_delivered_msgs_per_s\":{:.0},\"accepted_vs_direct\":{:.3},\"delivered_vs_direct\":{:.3},\
         \"offered_msgs_per_s\":{},\"accept_p50_ms\":{:.2},\"accept_p99_ms\":{:.2},\"accept_max_ms\":{:.2}}}",
        a.messages,
        a.sessions,
        body.len(),
        rate(direct),
        rate(accepted),
        rate(all_delivered),
        rate(accepted) / rate(direct),
        rate(all_delivered) / rate(direct),
        a.rate.map_or("null".to_string(), |r| format!("{r:.0}")),
        quantile_ms(&latencies, 0.5),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 1.0),
    );
}
