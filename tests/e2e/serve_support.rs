//! A real `flowhost serve` process on a loopback port, and a minimal HTTP/1.1 client for it.
//! The server is stopped (SIGKILL) when the handle drops, so a failing test leaves nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{PgDatabase, Project};

pub struct Server {
    child: Option<Child>,
    pub address: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

impl Server {
    /// Starts `flowhost serve --listen 127.0.0.1:0 <extra>` in `project` and waits (at most
    /// 60 s) for the line that names its address.
    pub fn start(project: &Project, extra: &[&str], envs: &[(&str, &Path)]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = project
            .command(&args, envs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start flowhost serve");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.split("http://").nth(1) {
                    let _ = tx.send(address.trim().to_owned());
                }
            }
        });
        let address = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "flowhost serve did not print its address; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        Server {
            child: Some(child),
            address,
            stderr,
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        request(&self.address, "GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        request(&self.address, "POST", path, Some(&body.to_string()))
    }

    /// GETs `path` until `done` holds for the answer (at most 60 s), and returns that answer.
    pub fn get_until(&self, path: &str, done: impl Fn(&Answer) -> bool) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self.get(path);
            if done(&answer) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never reached the expected answer; last: {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a run started by `POST /runs` to leave `running`, and returns it.
    pub fn finished_run(&self, run_id: &str) -> Value {
        self.get_until(&format!("/runs/{run_id}"), |a| {
            a.status == 200 && a.json()["state"] != "running"
        })
        .json()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` (`TERM`, `INT`) and waits (at most 60 s) for the process to end.
    pub fn stop(&mut self, signal: &str) -> (ExitStatus, String) {
        send_signal(self.pid(), signal);
        let mut child = self.child.take().unwrap();
        let status = wait_with_deadline(&mut child, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(100));
        (status, self.stderr.lock().unwrap().clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `flowhost <args>` in `project` with its output captured.
pub fn spawn_flowhost(project: &Project, args: &[&str]) -> Child {
    project
        .command(args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start flowhost")
}

/// Sends `signal` to `child` and waits (at most 60 s) for it to end: its exit code and output.
pub fn signal_and_wait(mut child: Child, signal: &str) -> (Option<i32>, std::process::Output) {
    send_signal(child.id(), signal);
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    (status.code(), child.wait_with_output().unwrap())
}

/// `kill -<signal> <pid>`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Waits for `child`, killing it (and failing) past `limit`.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub fn request(address: &str, method: &str, path: &str, body: Option<&str>) -> Answer {
    let mut stream = TcpStream::connect(address).expect("connect to flowhost serve");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {headers}"));
    let body = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers: headers.to_owned(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Sessions on `db` other than the checker's own.
pub fn sessions(db: &PgDatabase) -> i64 {
    db.column(&format!(
        "SELECT count(*)::text FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ))[0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits (at most 60 s) until `db` runs a statement like `like`.
pub fn wait_for_statement(db: &PgDatabase, like: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let active = db.column(&format!(
            "SELECT count(*)::text FROM pg_stat_activity WHERE datname = '{}' \
             AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%{like}%'",
            db.name
        ))[0]
            .clone()
            .unwrap();
        if active != "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no statement like {like} started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the sample `name{labels}` in OpenMetrics text, if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}
