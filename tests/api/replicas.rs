//! Several replicas on one PostgreSQL and Redis: separate service processes, one refresh between them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use growth_engine::sandbox::{self, SimClient, Simulator};
use tokio::net::TcpListener;

use crate::helpers::{credentials, fresh_database, fresh_redis, test_redis_url, Browser, API_KEY};

struct Replica {
    child: Child,
    address: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_healthy(address: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(format!("{address}/health")).await {
            if response.status() == 200 {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica {address} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn fifty_requests_over_three_replicas_cause_exactly_one_refresh() {
    let db = fresh_database().await;
    let (_, prefix) = fresh_redis().await;
    let key = growth_engine::vault::Key::generate().to_base64();
    let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_address = format!(
        "http://127.0.0.1:{}",
        sim_listener.local_addr().unwrap().port()
    );
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let (client_id, client_secret) = credentials("twitter");
    let simulator = Simulator::new(vec![SimClient {
        platform: "twitter".into(),
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
        redirect_uris: ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/api/v1/oauth/callback/twitter"))
            .collect(),
    }]);
    // Access tokens live 20 s: due in their second half.
    simulator.set_access_token_ttl("twitter", 20);
    let router = sandbox::router(simulator.clone());
    tokio::spawn(async move {
        let _ = axum::serve(sim_listener, router).await;
    });
    let endpoints = sandbox::endpoints(&sim_address, "twitter").unwrap();
    let log_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("replicas");
    std::fs::create_dir_all(&log_dir).unwrap();

    let mut replicas = Vec::new();
    for (n, port) in ports.iter().enumerate() {
        let address = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(log_dir.join(format!("replica-{n}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_growth-engine"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("API_URL", &address)
            .env("DATABASE_URL", &db.url)
            .env("REDIS_URL", test_redis_url())
            .env("REDIS_KEY_PREFIX", &prefix)
            .env("TOKEN_ENCRYPTION_KEY", &key)
            .env("API_KEYS", API_KEY)
            .env("SANDBOX", "false")
            .env("REFRESHER_ENABLED", "false")
            .env("TWITTER_CLIENT_ID", &client_id)
            .env("TWITTER_CLIENT_SECRET", &client_secret)
            .env("TWITTER_AUTHORIZE_URL", &endpoints.authorize)
            .env("TWITTER_TOKEN_URL", &endpoints.token)
            .env("TWITTER_REVOKE_URL", &endpoints.revoke)
            .env("TWITTER_USERINFO_URL", &endpoints.userinfo)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start a replica");
        replicas.push(Replica { child, address });
    }
    for replica in &replicas {
        wait_healthy(&replica.address).await;
    }

    // Connect through the first replica.
    let api = reqwest::Client::new();
    let connect: serde_json::Value = api
        .get(format!(
            "{}/api/v1/oauth/connect/twitter?user_id=u&store_id=replicated",
            replicas[0].address
        ))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result = Browser::new()
        .complete_flow(connect["authorization_url"].as_str().unwrap(), true)
        .await;
    assert_eq!(result["connection"], "success", "{result:?}");
    let refreshes = || {
        simulator
            .token_requests("twitter")
            .into_iter()
            .filter(|r| r.grant_type == "refresh_token")
            .count()
    };
    assert_eq!(refreshes(), 0);

    // Into the token's second half: the next request for it must refresh.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let url = format!(
            "{}/api/v1/oauth/token/twitter?store_id=replicated",
            replicas[n % 3].address
        );
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let response = api.get(url).bearer_auth(API_KEY).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    assert_eq!(
        refreshes(),
        1,
        "exactly one refresh at the platform across three replicas"
    );
    let newest = simulator
        .issued_access_tokens("twitter")
        .last()
        .unwrap()
        .clone();
    assert!(
        tokens.iter().all(|t| *t == newest),
        "all 50 answers carry the same new token"
    );

    drop(replicas);
    db.drop_database().await;
}
