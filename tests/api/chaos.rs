//! Fault injection against real processes: a `redis-server` of the test's own, on a free port, that
//! the test can freeze (SIGSTOP: connections hang, as in a partition), thaw, kill and start again on
//! the same port. The shared Redis is never touched. PostgreSQL faults go through
//! [`crate::proxy::CuttableProxy`].

use std::process::{Child, Command, Stdio};
use std::time::Duration;

const REDIS_SERVER_HINT: &str = "the fault-injection tests start their own redis-server: install \
    it (apt-get install redis-server) or put it on PATH";

/// A Redis server owned by one test; stopped (and thawed first) when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    frozen: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
            frozen: false,
        };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{REDIS_SERVER_HINT}: {e}"));
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// SIGSTOP: the process stays, its connections hang.
    pub fn freeze(&mut self) {
        signal(self.pid(), "STOP");
        self.frozen = true;
    }

    /// SIGCONT.
    pub fn thaw(&mut self) {
        signal(self.pid(), "CONT");
        self.frozen = false;
    }

    /// SIGKILL: connections are refused until [`RedisServer::restart`]. Its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.frozen = false;
    }

    /// Starts a fresh server on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// A direct connection (not through the service), for inspecting keys and statistics.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// How many times `command` ran on this server (`INFO commandstats`).
    pub async fn calls_of(&self, command: &str) -> u64 {
        let mut conn = self.connection().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        let prefix = format!("cmdstat_{}:calls=", command.to_lowercase());
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.frozen {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(child.id().to_string())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The 95th percentile of `samples` (nearest rank).
pub fn p95(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() * 95).div_ceil(100).max(1);
    sorted[rank - 1]
}
