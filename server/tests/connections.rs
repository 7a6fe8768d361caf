//! Connections that cannot pin the server: silent, slow-header, idle and slow-body connections
//! are closed within their timeouts or shed at the connection cap, while the heartbeat answers
//! and event streams stay open.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::sse::SseReader;
use common::{Db, Server};
use serde_json::json;

/// A `horde serve` on SQLite whose open-files limit is set by the shell that starts it.
struct Limited {
    child: Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Limited {
    fn start(file_limit: u32, extra: &[&str]) -> Limited {
        let dir = std::env::temp_dir().join(format!("horde-conn-{}-{}", std::process::id(), file_limit));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {file_limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_horde"))
            .args(["serve", "--port", "0", "--no-rate-limits", "--data-dir"])
            .arg(&dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start horde");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("address");
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
        assert!(url.starts_with("http://"), "unexpected first line: {line:?}");
        Limited { child, url, dir }
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Reads until the peer closes (or `limit` passes); returns how long that took and what came.
fn wait_closed(mut s: TcpStream, limit: Duration) -> (Duration, Vec<u8>) {
    let t = Instant::now();
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (t.elapsed(), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if t.elapsed() >= limit {
            return (t.elapsed(), got);
        }
    }
}

/// The value of a `horde_http_connection_events_total` event on `/metrics`. Asked on a new
/// connection: a pooled one may be closing at its idle timeout just then.
async fn connection_events(url: &str, event: &str) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let needle = format!("horde_http_connection_events_total{{event=\"{event}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in /metrics"))
}

async fn heartbeat_within(client: &reqwest::Client, url: &str, limit: Duration) {
    let r = tokio::time::timeout(limit, client.get(format!("{url}/api/v2/status/heartbeat")).send())
        .await
        .expect("heartbeat answered in time")
        .expect("heartbeat");
    assert_eq!(r.status(), 200);
}

/// 1,100 connections that send nothing, against a file limit of 1,024 and a header timeout far
/// longer than the test: the quietest are shed at the cap, so the heartbeat still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_starve_the_heartbeat() {
    // This process holds the 1,100 client ends.
    let own = horde_server::api::connections::raise_file_limit();
    assert!(
        own.is_none_or(|n| n > 1200),
        "this test needs more than 1,200 open files, has {own:?}"
    );
    let s = Limited::start(1024, &["--header-timeout-secs", "600", "--idle-timeout-secs", "600"]);
    let client = reqwest::Client::new();
    let mut silent = Vec::new();
    for _ in 0..1100 {
        match TcpStream::connect(addr(&s.url)) {
            Ok(c) => silent.push(c),
            Err(e) => panic!("connect {}: {e}", silent.len()),
        }
    }
    for _ in 0..5 {
        heartbeat_within(&client, &s.url, Duration::from_secs(3)).await;
    }
    assert!(connection_events(&s.url, "shed").await >= 300.0);
    drop(silent);
}

/// A client sending its headers one byte a second is cut at the header timeout; a silent one
/// too; a connection idle after its answer at the idle timeout. The heartbeat answers meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_connections_are_closed_in_time() {
    let s = server!(Db::Sqlite, &["--header-timeout-secs", "2", "--idle-timeout-secs", "3"]);
    let a = addr(&s.url);
    let slow = {
        let a = a.clone();
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(a).expect("connect");
            let t = Instant::now();
            for b in b"GET /api/v2/status/heartbeat HTTP/1.1\r\nHost: horde\r\n\r\n" {
                if c.write_all(&[*b]).is_err() {
                    return t.elapsed();
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            panic!("the whole request went through one byte a second");
        })
    };
    let silent = {
        let a = a.clone();
        std::thread::spawn(move || wait_closed(TcpStream::connect(a).expect("connect"), Duration::from_secs(20)).0)
    };
    let idle = {
        let a = a.clone();
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(a).expect("connect");
            c.write_all(b"GET /api/v2/status/heartbeat HTTP/1.1\r\nHost: horde\r\n\r\n")
                .expect("send");
            let (took, got) = wait_closed(c, Duration::from_secs(20));
            assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "answered first");
            took
        })
    };
    heartbeat_within(&s.client, &s.url, Duration::from_secs(2)).await;
    let slow = slow.join().expect("slow client");
    assert!(
        slow >= Duration::from_millis(1500) && slow < Duration::from_secs(6),
        "slow headers cut after {slow:?}"
    );
    let silent = silent.join().expect("silent client");
    assert!(
        silent >= Duration::from_millis(1500) && silent < Duration::from_secs(4),
        "silent closed after {silent:?}"
    );
    let idle = idle.join().expect("idle client");
    assert!(
        idle >= Duration::from_millis(2500) && idle < Duration::from_secs(5),
        "idle closed after {idle:?}"
    );
    assert!(connection_events(&s.url, "timed_out").await >= 3.0);
}

/// A Content-Length over the body limit is refused with 413 before any body is read; a body
/// shorter than its Content-Length fails within the body timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_by_their_declared_length() {
    let s = server!(Db::Sqlite, &["--body-timeout-secs", "2"]);
    let a = addr(&s.url);
    let send = |length: u64| {
        let mut c = TcpStream::connect(&a).expect("connect");
        let head = format!(
            "POST /api/v2/generate/text/async HTTP/1.1\r\nHost: horde\r\napikey: 0000000000\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{}}"
        );
        c.write_all(head.as_bytes()).expect("send");
        let (took, got) = wait_closed(c, Duration::from_secs(30));
        (took, String::from_utf8_lossy(&got).to_string())
    };
    let (took, answer) = send(10_000_000_000);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("PayloadTooLarge"), "{answer}");
    assert!(took < Duration::from_secs(2), "refused after {took:?}");
    // 1,000 bytes declared, 2 sent: two seconds plus what 1,000 bytes take at 32 KiB/s.
    let (took, answer) = send(1000);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    heartbeat_within(&s.client, &s.url, Duration::from_secs(2)).await;
}

/// An event stream outlives the idle timeout: a request in flight is never idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_outlive_the_idle_timeout() {
    let s = server!(
        Db::Sqlite,
        &["--dev-test-users", "--idle-timeout-secs", "1", "--header-timeout-secs", "1"]
    );
    let (req_key, _) = s.user("sse_req", 100.0, false, false).await;
    let (worker_key, _) = s.user("sse_worker", 0.0, false, false).await;
    let (st, v) = s
        .post(
            "/generate/text/async",
            Some(&req_key),
            json!({"prompt": "Tell a story", "params": {"max_length": 16}}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let mut stream = SseReader::open(&s.client, &s.api(&format!("/generate/text/stream/{id}")), None, None).await;
    assert_eq!(stream.next().await.expect("status").0, "status");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (st, v) = s
        .post(
            "/generate/text/pop",
            Some(&worker_key),
            json!({"name": "sse-w", "models": ["m"], "max_length": 512}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let job = v["id"].as_str().expect("job").to_string();
    let (st, v) = s
        .post(
            "/generate/text/submit",
            Some(&worker_key),
            json!({"id": job, "generation": "Once upon a time"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let mut names = Vec::new();
    while let Some((name, _)) = stream.next().await {
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "generation"), "events after the idle timeout: {names:?}");
}

/// SIGTERM with a client dribbling its headers: the server does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_client_does_not_hold_up_shutdown() {
    let Some(mut s) = Server::start(Db::Sqlite, &[]).await else {
        return;
    };
    let mut c = TcpStream::connect(addr(&s.url)).expect("connect");
    c.write_all(b"GET /api/v2/status/heart").expect("send");
    let t = Instant::now();
    assert!(s.stop(), "clean exit on SIGTERM");
    assert!(t.elapsed() < Duration::from_secs(3), "exit took {:?}", t.elapsed());
}
