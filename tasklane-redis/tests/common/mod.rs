//! Helpers of the tasklane-redis tests: a real `redis-server` on a free loopback port, and a
//! watchdog that fails a test instead of letting it hang.

#![allow(dead_code)] // reason: each test binary uses some of the helpers

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `f` on a thread of its own and fails if it takes longer than `limit`.
pub(crate) fn watchdog<R: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let body = std::thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("did not finish within {limit:?}: a hang")
        }
        _ => body
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
    }
}

/// A `redis-server` of the test's own on 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) port: u16,
    child: Option<Child>,
}

impl Server {
    /// Starts one on a free port, and waits until it answers.
    pub(crate) fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Server { port, child: None };
        server.restart();
        server
    }

    /// The URL to connect to.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Kills it (SIGKILL: as a crash) and waits until it is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`kill`](Server::kill)), and waits until it answers.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "the server still runs");
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl, which
        // is async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(|| {
                // Killed when the thread that started it ends (a test that panicked, or the
                // process exiting): no server outlives its test.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect(
            "redis-server on PATH (the tasklane-redis tests need a real one: \
                 `apt-get install redis-server`, or run .ci/run)",
        );
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer in 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server the tests share: `TASKLANE_REDIS_URL` (set by .ci/run), else one of this test
/// binary's own, started on first use.
pub(crate) fn shared_url() -> String {
    use std::sync::OnceLock;
    static OWN: OnceLock<String> = OnceLock::new();
    if let Ok(url) = std::env::var("TASKLANE_REDIS_URL") {
        return url;
    }
    OWN.get_or_init(|| {
        // Started from a thread that lives as long as the process (the server dies with it).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let server = Server::start();
            tx.send(server.url()).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the shared redis-server started")
    })
    .clone()
}

/// A key no other test (or run) uses.
pub(crate) fn fresh_key(name: &str) -> String {
    format!("test:{name}:{:016x}", fastrand_u64())
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}
