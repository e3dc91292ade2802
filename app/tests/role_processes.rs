//! The `tcom` binary's roles as processes, the way a supervisor runs them: a processors role
//! whose runtime hits a fatal error exits non-zero with the reason (it does not linger with
//! no tasks while looking alive), its `/readyz` reports every runtime, the ingress is not
//! ready while no processor instance runs, and SIGTERM stops a role cleanly.
//!
//! Needs the local stack (`scripts/test`), like the end-to-end tests. These processes join
//! the platform's real consumer groups; cargo runs test binaries one after another, so no
//! other test's processors share them meanwhile.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run `scripts/test` (or `source .stack/env`) first")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tcom-roles-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `tcom run` child with its log in a file.
struct Role {
    child: Child,
    log: PathBuf,
}

impl Role {
    fn start(roles: &str, env: &[(&str, String)], log: PathBuf) -> Self {
        for var in [
            "KAFKA_BOOTSTRAP_SERVERS",
            "DATABASE_URL",
            "REDIS_URL",
            "SCHEMA_REGISTRY_URL",
        ] {
            required(var);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tcom"));
        command
            .current_dir(&root)
            .args(["run", "--roles", roles])
            .env("TCOM__MODE", "local")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        Self {
            child: command.spawn().expect("tcom starts"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to end by itself; its exit status.
    fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn signal(&self, signal: &str) {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn processors(port: u16, state_dir: &Path, name: &str) -> Role {
    Role::start(
        "processors",
        &[
            (
                "TCOM__PROCESSORS__INSTANCE_ID",
                format!("roles-test-{name}-{}", std::process::id()),
            ),
            (
                "TCOM__PROCESSORS__STATE_DIR",
                state_dir.display().to_string(),
            ),
            (
                "TCOM__PROCESSORS__METRICS_LISTEN",
                format!("127.0.0.1:{port}"),
            ),
        ],
        scratch(name).join("processors.log"),
    )
}

/// GETs `url` until `accept` is true of the answer or `timeout` passes; the last answer.
fn poll(
    url: &str,
    timeout: Duration,
    accept: impl Fn(u16, &serde_json::Value) -> bool,
) -> (u16, serde_json::Value) {
    let get = http_getter();
    let deadline = Instant::now() + timeout;
    let mut last = (0, serde_json::Value::Null);
    while Instant::now() < deadline {
        if let Some(answer) = get(url) {
            if accept(answer.0, &answer.1) {
                return answer;
            }
            last = answer;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    last
}

/// A blocking GET (status and JSON body) on a current-thread runtime of its own, asked on
/// `localhost`.
fn http_getter() -> impl Fn(&str) -> Option<(u16, serde_json::Value)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    move |url: &str| {
        runtime.block_on(async {
            let response = http
                .get(url)
                .header("host", "localhost")
                .send()
                .await
                .ok()?;
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or(serde_json::Value::Null);
            Some((status, body))
        })
    }
}

#[test]
fn a_processor_that_cannot_open_its_state_takes_its_role_down() {
    // The state folder is under a regular file: no RocksDB can be opened there.
    let blocker = scratch("fatal").join("not-a-folder");
    std::fs::write(&blocker, b"").unwrap();
    let mut role = processors(free_port(), &blocker.join("state"), "fatal");
    let status = role
        .wait_for_exit(Duration::from_secs(90))
        .unwrap_or_else(|| panic!("the role kept running without its tasks:\n{}", role.log()));
    assert!(!status.success(), "exited {status:?}");
    let log = role.log();
    assert!(
        log.contains("not-a-folder"),
        "the log does not say why:\n{log}"
    );
}

#[test]
fn readiness_follows_the_processors_and_sigterm_stops_them_cleanly() {
    let ingress_port = free_port();
    let _ingress = Role::start(
        "ingress",
        &[("TCOM__HTTP__LISTEN", format!("127.0.0.1:{ingress_port}"))],
        scratch("ingress").join("ingress.log"),
    );
    let ingress_ready = format!("http://127.0.0.1:{ingress_port}/readyz");

    let port = free_port();
    let state = scratch("live").join("state");
    let mut live = processors(port, &state, "live");
    let (status, body) = poll(
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(90),
        |s, _| s == 200,
    );
    assert_eq!(
        status,
        200,
        "processors never ready: {body}\n{}",
        live.log()
    );
    for application in [
        "tcom-tenants",
        "tcom-catalog",
        "tcom-baskets",
        "tcom-msisdn",
    ] {
        assert_eq!(body["checks"][application], "ok", "{body}");
    }
    let (status, body) = poll(&ingress_ready, Duration::from_secs(60), |s, _| s == 200);
    assert_eq!(
        status, 200,
        "ingress never ready with processors running: {body}"
    );

    // A processors process killed outright: the ingress stops claiming it can take commands.
    live.signal("-KILL");
    live.wait_for_exit(Duration::from_secs(10)).expect("killed");
    let (status, body) = poll(&ingress_ready, Duration::from_secs(60), |s, b| {
        s == 503 && b["checks"]["processors"] != "ok"
    });
    assert_eq!(status, 503, "{body}");
    let reason = body["checks"]["processors"].as_str().unwrap_or_default();
    assert!(reason.contains("no running instance"), "{body}");

    // A fresh one, stopped with SIGTERM: exits 0 well within the grace period and drain.
    let mut again = processors(port, &state, "again");
    let (status, body) = poll(
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(90),
        |s, _| s == 200,
    );
    assert_eq!(status, 200, "{body}\n{}", again.log());
    let asked = Instant::now();
    again.signal("-TERM");
    let exit = again
        .wait_for_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("SIGTERM did not stop the role:\n{}", again.log()));
    assert!(exit.success(), "{exit:?}\n{}", again.log());
    assert!(
        asked.elapsed() < Duration::from_secs(25),
        "took {:?}",
        asked.elapsed()
    );
}
