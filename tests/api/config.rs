//! Settings: each bad value stops start-up with one line naming the variable, never echoing a
//! secret; no setting at all starts the embedded default.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use growth_engine::config::{Environment, Settings};

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn error_of(pairs: &[(&str, &str)]) -> String {
    Settings::from_vars(&vars(pairs)).unwrap_err().to_string()
}

const PRODUCTION_OK: [(&str, &str); 7] = [
    ("ENVIRONMENT", "production"),
    ("API_URL", "https://growth.example.com"),
    ("DATABASE_URL", "postgres://app:pw@db/app"),
    ("REDIS_URL", "redis://redis:6379"),
    (
        "TOKEN_ENCRYPTION_KEY",
        "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
    ),
    ("API_KEYS", "a-production-api-key-0001"),
    (
        "DASHBOARD_JWT_SECRET",
        "a-production-dashboard-secret-of-at-least-32-bytes",
    ),
];

fn production_with(name: &str, value: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = PRODUCTION_OK
        .iter()
        .filter(|(k, _)| *k != name)
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    if let Some(value) = value {
        let key: &'static str = Box::leak(name.to_owned().into_boxed_str());
        out.push((key, value.to_owned()));
    }
    out
}

fn production_error(name: &str, value: Option<&str>) -> String {
    let pairs = production_with(name, value);
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Settings::from_vars(&map).unwrap_err().to_string()
}

#[test]
fn no_settings_at_all_is_the_embedded_development_default() {
    let settings = Settings::from_vars(&HashMap::new()).unwrap();
    assert_eq!(settings.environment, Environment::Development);
    assert_eq!(settings.port, 8003);
    assert!(settings.redis_url.is_none());
    assert!(settings.database.describe().starts_with("sqlite"));
    assert!(settings.sandbox);
    assert_eq!(
        settings.dashboard_url.as_str(),
        "http://localhost:8003/dashboard/marketing"
    );
}

#[test]
fn a_complete_production_configuration_is_accepted() {
    let map: HashMap<String, String> = PRODUCTION_OK
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let settings = Settings::from_vars(&map).unwrap();
    assert!(settings.is_production());
    assert!(!settings.sandbox);
}

#[test]
fn a_key_of_the_wrong_length_names_the_variable_and_not_the_key() {
    let error = error_of(&[("TOKEN_ENCRYPTION_KEY", "c2hvcnQta2V5")]);
    assert!(
        error.starts_with("invalid setting TOKEN_ENCRYPTION_KEY:"),
        "{error}"
    );
    assert!(error.contains("32 bytes"), "{error}");
    assert!(
        !error.contains("c2hvcnQta2V5"),
        "never echo the key: {error}"
    );
    assert_eq!(error.lines().count(), 1);
}

#[test]
fn a_malformed_url_names_the_variable() {
    assert!(error_of(&[("API_URL", "not a url")]).starts_with("invalid setting API_URL:"));
    assert!(error_of(&[("DASHBOARD_URL", "ftp://x")]).starts_with("invalid setting DASHBOARD_URL:"));
    assert!(error_of(&[("DATABASE_URL", "mysql://x")]).starts_with("invalid setting DATABASE_URL:"));
    assert!(error_of(&[("REDIS_URL", "http://x")]).starts_with("invalid setting REDIS_URL:"));
    assert!(error_of(&[("META_TOKEN_URL", "::")]).starts_with("invalid setting META_TOKEN_URL:"));
    assert!(error_of(&[("ALLOWED_ORIGINS", "https://ok.example,nope")])
        .starts_with("invalid setting ALLOWED_ORIGINS:"));
}

#[test]
fn a_database_password_is_never_echoed() {
    let error = error_of(&[("DATABASE_URL", "postgres://user:hunter2@:notaport/db")]);
    assert!(
        error.starts_with("invalid setting DATABASE_URL:"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn an_unknown_environment_is_refused() {
    assert_eq!(
        error_of(&[("ENVIRONMENT", "staging")]),
        "invalid setting ENVIRONMENT: must be development or production"
    );
}

#[test]
fn a_bad_port_or_number_is_refused() {
    assert!(error_of(&[("PORT", "80000")]).starts_with("invalid setting PORT:"));
    assert!(error_of(&[("TOKEN_REFRESH_WINDOW_SECONDS", "soon")])
        .starts_with("invalid setting TOKEN_REFRESH_WINDOW_SECONDS:"));
}

#[test]
fn production_requires_postgres_redis_a_key_api_keys_and_https() {
    assert!(production_error("DATABASE_URL", None).starts_with("invalid setting DATABASE_URL:"));
    assert!(production_error("DATABASE_URL", Some("sqlite://x.db"))
        .starts_with("invalid setting DATABASE_URL:"));
    assert!(production_error("REDIS_URL", None).starts_with("invalid setting REDIS_URL:"));
    assert!(production_error("TOKEN_ENCRYPTION_KEY", None)
        .starts_with("invalid setting TOKEN_ENCRYPTION_KEY:"));
    assert!(production_error("API_KEYS", None).starts_with("invalid setting API_KEYS:"));
    assert!(production_error("API_URL", Some("http://growth.example.com")).contains("https"));
    assert!(production_error("SANDBOX", Some("true")).starts_with("invalid setting SANDBOX:"));
}

#[test]
fn a_platform_without_credentials_is_simply_not_configured() {
    let settings =
        Settings::from_vars(&vars(&[("META_APP_ID", "123"), ("SANDBOX", "false")])).unwrap();
    let catalog = growth_engine::app::catalog(&settings);
    let meta = catalog.find("meta").unwrap();
    assert!(
        !meta.is_configured(),
        "an id without a secret is not a configuration"
    );
    assert!(catalog.find("tiktok").is_some_and(|p| !p.is_configured()));
}

#[test]
fn endpoint_and_scope_overrides_replace_the_defaults() {
    let settings = Settings::from_vars(&vars(&[
        ("TIKTOK_CLIENT_KEY", "k"),
        ("TIKTOK_CLIENT_SECRET", "s"),
        ("TIKTOK_TOKEN_URL", "http://127.0.0.1:9/token"),
        ("TIKTOK_SCOPES", "user.info.basic,video.publish"),
    ]))
    .unwrap();
    let catalog = growth_engine::app::catalog(&settings);
    let tiktok = catalog.find("tiktok").unwrap();
    assert_eq!(tiktok.token_url.as_str(), "http://127.0.0.1:9/token");
    assert_eq!(tiktok.scopes, vec!["user.info.basic", "video.publish"]);
    assert!(tiktok
        .authorize_url
        .as_str()
        .starts_with("https://www.tiktok.com/"));
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_growth-engine"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

#[test]
fn the_binary_stops_on_a_bad_setting_with_one_line_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, secret) in [
        (
            "TOKEN_ENCRYPTION_KEY",
            "dG9vLXNob3J0LXNlY3JldA",
            Some("dG9vLXNob3J0LXNlY3JldA"),
        ),
        ("API_URL", "localhost:8003", None),
        ("ENVIRONMENT", "qa", None),
        (
            "DATABASE_URL",
            "postgres://u:sup3rsecret@db:port/x",
            Some("sup3rsecret"),
        ),
    ] {
        let output = binary()
            .current_dir(dir.path())
            .env(name, value)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        if let Some(secret) = secret {
            assert!(!stderr.contains(secret), "{name} leaked: {stderr}");
        }
    }
}

#[test]
fn check_config_masks_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .current_dir(dir.path())
        .env("META_APP_ID", "1234")
        .env("META_APP_SECRET", "meta-secret-value")
        .env("API_KEYS", "api-key-value-1234567")
        .env("REDIS_URL", "redis://:redispass@127.0.0.1:6379")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("META_APP_ID"));
    assert!(stdout.contains("1234"));
    for secret in ["meta-secret-value", "api-key-value-1234567", "redispass"] {
        assert!(!stdout.contains(secret), "{secret} leaked:\n{stdout}");
    }
}

#[test]
fn keygen_prints_a_key_that_the_service_accepts() {
    let output = binary().arg("keygen").output().unwrap();
    let key = String::from_utf8(output.stdout).unwrap();
    assert!(growth_engine::vault::Key::parse(key.trim()).is_ok());
}

#[tokio::test]
async fn the_binary_with_no_settings_at_all_serves_health() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = binary()
        .current_dir(dir.path())
        .env("PORT", port.to_string())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = None;
    while Instant::now() < deadline {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/health")).await {
            status = Some(response.status().as_u16());
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["status"], "healthy");
            assert_eq!(body["checks"]["database"]["backend"], "sqlite");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, Some(200));
    assert!(
        dir.path().join("growth-engine.db").exists(),
        "the embedded SQLite file"
    );
    assert!(
        dir.path().join(".growth-engine-dev.key").exists(),
        "the development key file"
    );
}

#[test]
fn production_requires_a_dashboard_secret_of_at_least_32_bytes_and_never_echoes_it() {
    assert!(production_error("DASHBOARD_JWT_SECRET", None)
        .starts_with("invalid setting DASHBOARD_JWT_SECRET:"));
    let short = production_error("DASHBOARD_JWT_SECRET", Some("too-short-a-secret"));
    assert!(
        short.starts_with("invalid setting DASHBOARD_JWT_SECRET:"),
        "{short}"
    );
    assert!(short.contains("32 bytes"), "{short}");
    assert!(!short.contains("too-short-a-secret"), "{short}");
}

#[test]
fn the_dashboard_and_perimeter_settings_have_defaults_and_refuse_nonsense() {
    let settings = Settings::from_vars(&HashMap::new()).unwrap();
    assert!(
        settings.dashboard_jwt_secret.is_none(),
        "derived in development"
    );
    assert_eq!(settings.dashboard_session, Duration::from_secs(480 * 60));
    assert_eq!(settings.rate_limit_per_minute, 60);
    assert!(!settings.trust_proxy);

    let settings = Settings::from_vars(&vars(&[
        ("DASHBOARD_SESSION_MINUTES", "30"),
        ("RATE_LIMIT_PER_MINUTE", "5"),
        ("TRUST_PROXY", "true"),
    ]))
    .unwrap();
    assert_eq!(settings.dashboard_session, Duration::from_secs(30 * 60));
    assert_eq!(settings.rate_limit_per_minute, 5);
    assert!(settings.trust_proxy);

    for (name, value) in [
        ("DASHBOARD_SESSION_MINUTES", "0"),
        ("DASHBOARD_SESSION_MINUTES", "forever"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("RATE_LIMIT_PER_MINUTE", "-1"),
        ("TRUST_PROXY", "maybe"),
    ] {
        let error = error_of(&[(name, value)]);
        assert!(
            error.starts_with(&format!("invalid setting {name}:")),
            "{name}={value}: {error}"
        );
    }
}

#[test]
fn dashboard_link_prints_only_a_link_that_the_page_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .current_dir(dir.path())
        .env("API_URL", "https://growth.example.com")
        .env(
            "DASHBOARD_JWT_SECRET",
            "a-dashboard-secret-of-at-least-32-bytes-long",
        )
        .args([
            "dashboard-link",
            "--store-id",
            "store-7",
            "--user-id",
            "user-7",
            "--minutes",
            "5",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let link = url::Url::parse(stdout.trim()).unwrap();
    assert_eq!(
        link.as_str().split('?').next(),
        Some("https://growth.example.com/dashboard/marketing")
    );
    let token = link
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let settings = Settings::from_vars(&vars(&[
        ("API_URL", "https://growth.example.com"),
        (
            "DASHBOARD_JWT_SECRET",
            "a-dashboard-secret-of-at-least-32-bytes-long",
        ),
    ]))
    .unwrap();
    let keyring = growth_engine::vault::Keyring::new(growth_engine::vault::Key::generate(), vec![]);
    let auth = growth_engine::links::DashboardLinks::from_settings(
        &settings,
        &keyring,
        std::sync::Arc::new(growth_engine::clock::SystemClock),
    );
    let (store, user) = auth.verify_link(&token).unwrap();
    assert_eq!(store.as_str(), "store-7");
    assert_eq!(user.as_str(), "user-7");

    let refused = binary()
        .current_dir(dir.path())
        .args([
            "dashboard-link",
            "--store-id",
            "has space",
            "--user-id",
            "u",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn durations_outside_their_safe_range_are_refused() {
    assert!(
        error_of(&[("TOKEN_REFRESH_WINDOW_SECONDS", "10000000000000")])
            .starts_with("invalid setting TOKEN_REFRESH_WINDOW_SECONDS:")
    );
    assert!(error_of(&[("HTTP_TIMEOUT_SECONDS", "0")])
        .starts_with("invalid setting HTTP_TIMEOUT_SECONDS:"));
    assert!(error_of(&[("HTTP_TIMEOUT_SECONDS", "45")])
        .starts_with("invalid setting HTTP_TIMEOUT_SECONDS:"));
}
