//! `burnguard serve` as a child process for tests: started on port 0, its bound address read
//! from its log, polled over HTTP, killed when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::prometheus::http_get;

/// A running `burnguard serve`; killed on drop. Log lines arrive on `logs`.
pub struct Serve {
    pub child: Child,
    pub addr: String,
    logs: mpsc::Receiver<String>,
}

impl Serve {
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_under(&[], args, envs)
    }

    /// [`Serve::start`] under a wrapper such as `valgrind --tool=massif` (empty: none).
    pub fn start_under(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Self {
        let binary = env!("CARGO_BIN_EXE_burnguard");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let mut child = command
            .arg("serve")
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("burnguard serve starts");
        let (tx, logs) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut serve = Self {
            child,
            addr: String::new(),
            logs,
        };
        let line = serve.wait_log("listening", Duration::from_secs(300));
        serve.addr = line
            .split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the bound address is logged")
            .to_string();
        serve
    }

    /// Waits for a log line containing `needle`, returning it.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no log line containing {needle:?} within {timeout:?}");
    }

    /// Waits for `needle` in `times` more log lines (each within `timeout`).
    pub fn wait_logs(&self, needle: &str, times: usize, timeout: Duration) {
        for _ in 0..times {
            self.wait_log(needle, timeout);
        }
    }

    /// Forgets the log lines received so far.
    pub fn skip_logs(&self) {
        while self.logs.try_recv().is_ok() {}
    }

    /// Waits until the process has exited (by itself or by a signal); panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "burnguard serve did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path).unwrap_or_else(|| panic!("GET {path} failed"))
    }

    /// Polls `/metrics` until `predicate` holds.
    pub fn metrics_until(&self, what: &str, predicate: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get("/metrics");
            assert_eq!(status, 200);
            if predicate(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "metrics never showed {what}:\n{body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn signal(&self, name: &str) {
        let (ok, out) = super::run(
            Command::new("kill")
                .arg(format!("-{name}"))
                .arg(self.child.id().to_string()),
        );
        assert!(ok, "{out}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first sample line that starts with `series`.
pub fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
