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

fn settings_of(pairs: &[(&str, &str)]) -> Settings {
    Settings::from_vars(&vars(pairs)).unwrap()
}

fn production_ok_with(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = PRODUCTION_OK
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (k, v) in extra {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    map
}

/// Every numeric setting: its name, the lowest and highest accepted values, and one just outside
/// each end (`None` where the type itself has no value below).
const RANGES: [(&str, &str, &str, Option<&str>, &str); 17] = [
    ("PORT", "0", "65535", Some("-1"), "65536"),
    ("REFRESHER_INTERVAL_SECONDS", "1", "3600", Some("0"), "3601"),
    ("REFRESHER_CONCURRENCY", "1", "256", Some("0"), "257"),
    (
        "TOKEN_REFRESH_WINDOW_SECONDS",
        "0",
        "86400",
        Some("-1"),
        "86401",
    ),
    ("HTTP_TIMEOUT_SECONDS", "1", "20", Some("0"), "21"),
    (
        "DASHBOARD_SESSION_MINUTES",
        "1",
        "10080",
        Some("0"),
        "10081",
    ),
    ("RATE_LIMIT_PER_MINUTE", "1", "100000", Some("0"), "100001"),
    ("HTTP_REQUEST_TIMEOUT_SECONDS", "1", "300", Some("0"), "301"),
    (
        "HTTP_HEADER_READ_TIMEOUT_SECONDS",
        "1",
        "120",
        Some("0"),
        "121",
    ),
    (
        "PLATFORM_MAX_RESPONSE_BYTES",
        "1024",
        "67108864",
        Some("1023"),
        "67108865",
    ),
    (
        "DATABASE_STATEMENT_TIMEOUT_SECONDS",
        "1",
        "300",
        Some("0"),
        "301",
    ),
    ("SHUTDOWN_GRACE_SECONDS", "15", "300", Some("14"), "301"),
    ("WEBHOOK_MAX_ATTEMPTS", "1", "100", Some("0"), "101"),
    ("WEBHOOK_RETENTION_DAYS", "1", "365", Some("0"), "366"),
    (
        "REDIS_TIMEOUT_MILLISECONDS",
        "50",
        "10000",
        Some("49"),
        "10001",
    ),
    (
        "LIVENESS_CHECK_INTERVAL_SECONDS",
        "60",
        "2592000",
        Some("59"),
        "2592001",
    ),
    (
        "REFRESH_FAILING_ALERT_SECONDS",
        "60",
        "604800",
        Some("59"),
        "604801",
    ),
];

#[test]
fn expiry_warning_days_are_distinct_days_largest_first_with_a_documented_default() {
    let defaults = settings_of(&[]);
    assert_eq!(defaults.health.warning_days, vec![7, 1]);
    assert_eq!(
        defaults.health.check_interval,
        std::time::Duration::from_secs(86_400)
    );
    assert_eq!(
        defaults.health.failing_alert,
        std::time::Duration::from_secs(3600)
    );
    let set = settings_of(&[("EXPIRY_WARNING_DAYS", "1, 14,3")]);
    assert_eq!(set.health.warning_days, vec![14, 3, 1]);
    for bad in ["0", "366", "7,7", "seven", "1,2,3,4,5,6,7,8,9,10,11", "-1"] {
        let error = error_of(&[("EXPIRY_WARNING_DAYS", bad)]);
        assert!(
            error.starts_with("invalid setting EXPIRY_WARNING_DAYS: must be"),
            "{bad}: {error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }
}

#[test]
fn every_number_is_accepted_at_its_bounds_and_refused_past_them_with_one_line() {
    for (name, lowest, highest, below, above) in RANGES {
        for ok in [lowest, highest] {
            assert!(
                Settings::from_vars(&vars(&[(name, ok)])).is_ok(),
                "{name}={ok} should be accepted"
            );
        }
        for bad in below.into_iter().chain([above, "0x10", "ten"]) {
            if bad == "0" && lowest == "0" {
                continue;
            }
            let error = error_of(&[(name, bad)]);
            assert!(
                error.starts_with(&format!("invalid setting {name}: must be")),
                "{name}={bad}: {error}"
            );
            assert!(
                error.contains(highest),
                "{name}: the range is named: {error}"
            );
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }
}

#[test]
fn the_new_limits_have_their_documented_defaults() {
    let settings = Settings::from_vars(&HashMap::new()).unwrap();
    assert_eq!(settings.request_timeout, Duration::from_secs(30));
    assert_eq!(settings.header_read_timeout, Duration::from_secs(10));
    assert_eq!(settings.platform_max_response_bytes, 1_048_576);
    assert_eq!(settings.statement_timeout, Duration::from_secs(10));
    assert_eq!(settings.shutdown_grace, Duration::from_secs(30));
    assert_eq!(settings.webhook_max_attempts, 12);
    assert_eq!(
        settings.webhook_retention,
        Duration::from_secs(7 * 24 * 3600)
    );
    assert_eq!(settings.redis_timeout, Duration::from_millis(500));
    assert_eq!(settings.refresher_interval, Duration::from_secs(30));
    assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);

    let settings = settings_of(&[
        ("REDIS_TIMEOUT_MILLISECONDS", "1500"),
        ("WEBHOOK_RETENTION_DAYS", "30"),
        ("DASHBOARD_SESSION_MINUTES", "2"),
    ]);
    assert_eq!(settings.redis_timeout, Duration::from_millis(1500));
    assert_eq!(
        settings.webhook_retention,
        Duration::from_secs(30 * 24 * 3600)
    );
    assert_eq!(settings.dashboard_session, Duration::from_secs(120));
}

#[test]
fn the_shutdown_grace_outlasts_a_platform_call_by_five_seconds() {
    let error = error_of(&[
        ("HTTP_TIMEOUT_SECONDS", "20"),
        ("SHUTDOWN_GRACE_SECONDS", "24"),
    ]);
    assert!(
        error.starts_with("invalid setting SHUTDOWN_GRACE_SECONDS:"),
        "{error}"
    );
    assert!(error.contains("25 seconds"), "{error}");
    let settings = settings_of(&[
        ("HTTP_TIMEOUT_SECONDS", "20"),
        ("SHUTDOWN_GRACE_SECONDS", "25"),
    ]);
    assert_eq!(settings.shutdown_grace, Duration::from_secs(25));
}

#[test]
fn the_binary_refuses_a_zero_refresher_interval_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .current_dir(dir.path())
        .env("REFRESHER_INTERVAL_SECONDS", "0")
        .env("META_APP_ID", "1234")
        .env("META_APP_SECRET", "meta-secret-never-printed")
        .env("PORT", "0")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(
        stderr.trim(),
        "growth-engine: invalid setting REFRESHER_INTERVAL_SECONDS: must be a whole number of seconds from 1 to 3600"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for text in [&stderr, &stdout] {
        assert!(!text.contains("meta-secret-never-printed"), "{text}");
    }
    assert!(
        !dir.path().join("growth-engine.db").exists(),
        "nothing was started"
    );
}

fn write(dir: &tempfile::TempDir, name: &str, contents: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn secrets_can_come_from_files_without_their_trailing_newline() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let key = growth_engine::vault::Key::generate().to_base64();
    let key_file = write(&dir, "key", &format!("{key}\n"));
    let api_keys = write(
        &dir,
        "api-keys",
        "first-production-key-01\nsecond-production-key-02\n",
    );
    let jwt = write(
        &dir,
        "jwt",
        "a-production-dashboard-secret-of-at-least-32-bytes\n",
    );
    let meta = write(&dir, "meta", "meta-secret-from-a-file\r\n");
    let database = write(&dir, "database", "postgres://app:from-a-file@db/app\n");
    let mut map = production_ok_with(&[
        ("META_APP_ID", "1234"),
        ("META_APP_SECRET_FILE", &meta),
        ("TOKEN_ENCRYPTION_KEY_FILE", &key_file),
        ("API_KEYS_FILE", &api_keys),
        ("DASHBOARD_JWT_SECRET_FILE", &jwt),
        ("DATABASE_URL_FILE", &database),
    ]);
    for name in [
        "TOKEN_ENCRYPTION_KEY",
        "API_KEYS",
        "DASHBOARD_JWT_SECRET",
        "DATABASE_URL",
    ] {
        map.remove(name);
    }
    let settings = Settings::from_vars(&map).unwrap();
    let meta = settings.platforms["meta"].credentials.as_ref().unwrap();
    assert_eq!(
        meta.client_secret.expose_secret(),
        "meta-secret-from-a-file"
    );
    let keys: Vec<&str> = settings
        .api_keys
        .iter()
        .map(|k| k.expose_secret())
        .collect();
    assert_eq!(
        keys,
        ["first-production-key-01", "second-production-key-02"]
    );
    assert_eq!(
        settings
            .dashboard_jwt_secret
            .as_ref()
            .unwrap()
            .expose_secret(),
        "a-production-dashboard-secret-of-at-least-32-bytes"
    );
    assert!(settings.database.describe().contains("db/app"));
    let growth_engine::config::KeySettings::Configured { current, .. } = &settings.keys else {
        panic!("the key file was not read");
    };
    assert_eq!(current.to_base64(), key);
    assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
}

#[test]
fn a_secret_set_twice_or_from_an_unreadable_file_is_refused_by_its_file_variable() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(&dir, "secret", "webhook-secret-in-a-file\n");
    let error = error_of(&[
        ("WEBHOOK_SECRET", "webhook-secret-in-the-env"),
        ("WEBHOOK_SECRET_FILE", &secret),
    ]);
    assert_eq!(
        error,
        "invalid setting WEBHOOK_SECRET_FILE: cannot be set together with WEBHOOK_SECRET: set only one"
    );

    let missing = dir.path().join("missing").display().to_string();
    let error = error_of(&[("TIKTOK_CLIENT_SECRET_FILE", &missing)]);
    assert!(
        error.starts_with("invalid setting TIKTOK_CLIENT_SECRET_FILE:"),
        "{error}"
    );
    assert!(
        error.contains("does not exist") && error.contains(&missing),
        "{error}"
    );

    let directory = dir.path().display().to_string();
    let error = error_of(&[("API_KEYS_FILE", &directory)]);
    assert!(
        error.starts_with("invalid setting API_KEYS_FILE:"),
        "{error}"
    );

    // A readable file with a bad value: the value's variable is named, the contents never shown.
    let bad_key = write(&dir, "bad-key", "dG9vLXNob3J0LXNlY3JldA\n");
    let error = error_of(&[("TOKEN_ENCRYPTION_KEY_FILE", &bad_key)]);
    assert!(
        error.starts_with("invalid setting TOKEN_ENCRYPTION_KEY:"),
        "{error}"
    );
    assert!(!error.contains("dG9vLXNob3J0LXNlY3JldA"), "{error}");
    assert_eq!(error.lines().count(), 1);
}

#[test]
fn a_misspelt_variable_is_a_warning_that_suggests_the_right_name() {
    let settings = settings_of(&[
        ("META_APP_SECERT", "x"),
        ("GROWTH_PORT", "9000"),
        ("REFRESHER_INTERVAL_SECOND", "60"),
        ("OAUTH_PROVIDERS", "acme"),
        ("ACME_CLIENT_ID", "id"),
        ("ACME_CLIENT_SECRET", "secret"),
        ("ACME_AUTHORIZE_URL", "https://acme.example/authorize"),
        ("ACME_TOKEN_URL", "https://acme.example/token"),
        ("ACME_USERINFO_ULR", "https://acme.example/me"),
        ("WEBHOOK_SIGNING_KEY_THAT_IS_NOTHING_LIKE_ANY", "x"),
    ]);
    let warnings = settings.warnings.join("\n");
    for (unknown, suggestion) in [
        ("META_APP_SECERT", "META_APP_SECRET"),
        ("GROWTH_PORT", "PORT"),
        ("REFRESHER_INTERVAL_SECOND", "REFRESHER_INTERVAL_SECONDS"),
        ("ACME_USERINFO_ULR", "ACME_USERINFO_URL"),
    ] {
        assert!(
            settings
                .warnings
                .iter()
                .any(|w| w.starts_with(unknown)
                    && w.ends_with(&format!("did you mean {suggestion}?"))),
            "{unknown} -> {suggestion}:\n{warnings}"
        );
    }
    assert!(
        settings.warnings.iter().any(|w| w
            .starts_with("WEBHOOK_SIGNING_KEY_THAT_IS_NOTHING_LIKE_ANY")
            && !w.contains("did you mean")),
        "{warnings}"
    );
    assert_eq!(settings.warnings.len(), 5, "{warnings}");
    assert_eq!(settings.port, 8003, "an unknown variable changes nothing");
}

#[test]
fn known_settings_and_foreign_variables_give_no_warning() {
    let settings = settings_of(&[
        ("HOME", "/root"),
        ("PATH", "/usr/bin"),
        ("GROWTH_ENGINE_SERVICE_HOST", "10.0.0.7"),
        ("GROWTH_ENGINE_PORT", "tcp://10.0.0.7:8003"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/var/run/gcp.json"),
        ("META_APP_ID", "1"),
        ("META_SCOPES", "ads_management"),
        ("TWITTER_REVOKE_URL", "https://x.example/revoke"),
        ("WEBHOOK_MAX_ATTEMPTS", "3"),
        ("REFRESHER_ENABLED", "false"),
        ("DASHBOARD_SESSION_MINUTES", "60"),
    ]);
    assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
}

#[test]
fn check_config_logs_the_warning_for_a_misspelt_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .current_dir(dir.path())
        .env("TIKTOK_CLIENT_SECRT", "tiktok-secret-value")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("WARN"), "{stdout}");
    assert!(
        stdout.contains("TIKTOK_CLIENT_SECRT is not a growth-engine setting and is ignored: did you mean TIKTOK_CLIENT_SECRET?"),
        "{stdout}"
    );
    assert!(!stdout.contains("tiktok-secret-value"), "{stdout}");
}

#[test]
fn production_requires_https_for_every_url_the_service_calls_or_redirects_to() {
    let generic = [
        ("OAUTH_PROVIDERS", "acme"),
        ("ACME_CLIENT_ID", "id"),
        ("ACME_CLIENT_SECRET", "secret"),
        ("ACME_AUTHORIZE_URL", "https://acme.example/authorize"),
        ("ACME_TOKEN_URL", "https://acme.example/token"),
    ];
    let webhook_secret = ("WEBHOOK_SECRET", "a-webhook-secret-of-16+");
    let names = [
        "API_URL",
        "DASHBOARD_URL",
        "WEBHOOK_URL",
        "META_AUTHORIZE_URL",
        "TIKTOK_TOKEN_URL",
        "GOOGLE_REVOKE_URL",
        "PINTEREST_USERINFO_URL",
        "TWITTER_TOKEN_URL",
        "ACME_AUTHORIZE_URL",
        "ACME_TOKEN_URL",
        "ACME_USERINFO_URL",
        "ACME_REVOKE_URL",
    ];
    for name in names {
        for url in ["http://platform.example/x", "http://127.0.0.1:9/x"] {
            let mut extra = generic.to_vec();
            extra.push(webhook_secret);
            extra.push((name, url));
            let error = Settings::from_vars(&production_ok_with(&extra))
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("invalid setting {name}: must be https in production"),
                "{name}={url}"
            );
        }
        let mut extra = generic.to_vec();
        extra.push(webhook_secret);
        extra.push((name, "https://platform.example/x"));
        assert!(
            Settings::from_vars(&production_ok_with(&extra)).is_ok(),
            "{name}"
        );

        // Development keeps plain http, for the simulators on loopback.
        let mut extra = generic.to_vec();
        extra.push(webhook_secret);
        extra.push((name, "http://127.0.0.1:9/x"));
        assert!(
            Settings::from_vars(&vars(&extra)).is_ok(),
            "{name} in development"
        );
    }
}

#[test]
fn the_public_development_key_only_listens_on_loopback() {
    assert_eq!(
        Settings::from_vars(&HashMap::new()).unwrap().host,
        "127.0.0.1"
    );
    assert_eq!(settings_of(&[("API_KEYS", "own-key")]).host, "0.0.0.0");
    let production = Settings::from_vars(&production_ok_with(&[])).unwrap();
    assert_eq!(production.host, "0.0.0.0");

    for host in ["0.0.0.0", "::", "10.1.2.3", "growth.internal"] {
        assert_eq!(
            error_of(&[("HOST", host)]),
            "invalid setting HOST: a non-loopback address needs API_KEYS: the development key dev-api-key is public",
            "{host}"
        );
        assert_eq!(
            settings_of(&[("HOST", host), ("API_KEYS", "own-key")]).host,
            host
        );
    }
    for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
        assert!(
            Settings::from_vars(&vars(&[("HOST", host)])).is_ok(),
            "{host}"
        );
    }
    assert!(error_of(&[("HOST", "not a host!")]).starts_with("invalid setting HOST:"));
}

#[test]
fn rediss_and_verified_postgres_tls_are_accepted_and_clear_text_to_a_remote_database_warned() {
    let settings = Settings::from_vars(&production_ok_with(&[
        ("REDIS_URL", "rediss://:redis-password@redis.example:6380/0"),
        (
            "DATABASE_URL",
            "postgres://app:db-password@db.example/app?sslmode=verify-full",
        ),
    ]))
    .unwrap();
    assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
    assert!(settings.database.describe().contains("sslmode=verify-full"));

    let settings = Settings::from_vars(&production_ok_with(&[(
        "DATABASE_URL",
        "postgres://app:db-password@db.example/app?sslmode=disable",
    )]))
    .unwrap();
    assert_eq!(settings.warnings.len(), 1, "{:?}", settings.warnings);
    assert!(settings.warnings[0].starts_with("DATABASE_URL: sslmode=disable"));
    assert!(!settings.warnings[0].contains("db-password"));

    for local in ["127.0.0.1", "localhost"] {
        let settings = Settings::from_vars(&production_ok_with(&[(
            "DATABASE_URL",
            &format!("postgres://app:pw@{local}/app?sslmode=disable"),
        )]))
        .unwrap();
        assert!(
            settings.warnings.is_empty(),
            "{local}: {:?}",
            settings.warnings
        );
    }
    let error = error_of(&[(
        "DATABASE_URL",
        "postgres://app:db-password@db/app?sslmode=always",
    )]);
    assert!(
        error.starts_with("invalid setting DATABASE_URL:"),
        "{error}"
    );
    assert!(!error.contains("db-password"), "{error}");
}

#[tokio::test]
async fn the_sslmode_of_database_url_is_what_the_connection_uses() {
    use secrecy::ExposeSecret;
    let base = crate::helpers::test_database_url();
    let separator = if base.contains('?') { '&' } else { '?' };
    let ssl_of = |mode: &'static str| {
        let url = format!("{base}{separator}sslmode={mode}");
        async move {
            let settings = Settings::from_vars(&vars(&[("DATABASE_URL", &url)])).unwrap();
            let growth_engine::config::DatabaseSettings::Postgres(url) = &settings.database else {
                panic!("not postgres");
            };
            let store = growth_engine::store::PgStore::connect(url.expose_secret())
                .await
                .unwrap();
            let row: Result<(bool,), _> =
                sqlx::query_as("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
                    .fetch_one(store.pool())
                    .await;
            row.map(|(ssl,)| ssl)
        }
    };
    let plain = ssl_of("disable").await.unwrap_or_else(|e| {
        panic!("PostgreSQL must run for the tests (scripts/test starts it): {e}")
    });
    assert!(!plain, "sslmode=disable connects in clear text");
    let server_has_tls: (String,) = {
        let url = format!("{base}{separator}sslmode=disable");
        let store = growth_engine::store::PgStore::connect(&url).await.unwrap();
        sqlx::query_as("show ssl")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    match ssl_of("require").await {
        Ok(ssl) => {
            assert_eq!(server_has_tls.0, "on");
            assert!(ssl, "sslmode=require connects with TLS");
        }
        Err(error) => assert_eq!(
            server_has_tls.0, "off",
            "sslmode=require fails only against a server without TLS: {error}"
        ),
    }
}

#[tokio::test]
async fn a_rediss_url_speaks_tls() {
    // The test build links two rustls providers (the browser tests bring aws-lc-rs); the service's
    // own build has only ring, which rustls then picks by itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plain = crate::helpers::test_redis_url();
    let plain_handle =
        growth_engine::redis_conn::RedisHandle::new(&plain.clone().into(), "tls-test:").unwrap();
    plain_handle
        .ping()
        .await
        .unwrap_or_else(|e| panic!("Redis must run for the tests (scripts/test starts it): {e:?}"));
    let tls = plain.replacen("redis://", "rediss://", 1);
    let settings = settings_of(&[("REDIS_URL", &tls)]);
    let handle = growth_engine::redis_conn::RedisHandle::new(
        settings.redis_url.as_ref().unwrap(),
        "tls-test:",
    )
    .expect("the TLS feature is compiled in");
    assert!(
        handle.ping().await.is_err(),
        "a TLS handshake with a plain-text Redis fails"
    );
}

#[test]
fn a_bad_log_format_or_filter_stops_start_up_instead_of_falling_back() {
    assert_eq!(
        error_of(&[("LOG_FORMAT", "yaml")]),
        "invalid setting LOG_FORMAT: must be json, text or pretty"
    );
    assert!(
        error_of(&[("RUST_LOG", "growth_engine=loud")]).starts_with("invalid setting RUST_LOG:")
    );
    for (name, value) in [
        ("LOG_FORMAT", "JSON"),
        ("LOG_FORMAT", "pretty"),
        ("RUST_LOG", "warn,growth_engine=debug,tower_http=info"),
    ] {
        assert!(
            Settings::from_vars(&vars(&[(name, value)])).is_ok(),
            "{name}={value}"
        );
    }
}

#[test]
fn the_example_env_file_is_valid_and_names_only_real_settings() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    let map: HashMap<String, String> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    assert!(map.len() > 40, "read {} settings", map.len());
    let settings = Settings::from_vars(&map).unwrap();
    assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
    assert_eq!(
        settings.host, "127.0.0.1",
        "a copied example listens on loopback"
    );
}

/// A production configuration that finds Redis through Sentinel instead of `REDIS_URL`.
fn production_with_sentinels(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map = production_ok_with(&[
        (
            "REDIS_SENTINELS",
            "10.0.0.1:26379, 10.0.0.2:26379,sentinel-3.internal:26380",
        ),
        ("REDIS_SENTINEL_MASTER", "growth"),
        ("REDIS_SENTINEL_TLS", "true"),
    ]);
    map.remove("REDIS_URL");
    for (k, v) in extra {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    map
}

#[test]
fn redis_sentinels_replace_redis_url_with_their_passwords_from_files() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let sentinel_password = write(&dir, "sentinel", "sentinel-secret-from-a-file\n");
    let settings = Settings::from_vars(&production_with_sentinels(&[
        ("REDIS_SENTINEL_PASSWORD_FILE", &sentinel_password),
        ("REDIS_SENTINEL_MASTER_PASSWORD", "primary-secret-value"),
        ("REDIS_SENTINEL_MASTER_USERNAME", "growth-engine"),
    ]))
    .unwrap();
    assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
    assert!(settings.redis_url.is_none());
    let sentinel = settings.redis_sentinel.as_ref().expect("sentinel settings");
    assert_eq!(
        sentinel.sentinels,
        vec![
            ("10.0.0.1".to_owned(), 26379),
            ("10.0.0.2".to_owned(), 26379),
            ("sentinel-3.internal".to_owned(), 26380),
        ]
    );
    assert_eq!(sentinel.master, "growth");
    assert!(sentinel.tls);
    assert_eq!(
        sentinel.sentinel_password.as_ref().unwrap().expose_secret(),
        "sentinel-secret-from-a-file"
    );
    assert_eq!(
        sentinel.master_password.as_ref().unwrap().expose_secret(),
        "primary-secret-value"
    );
    assert_eq!(sentinel.master_username.as_deref(), Some("growth-engine"));
    assert!(sentinel.sentinel_username.is_none());
    let printed = format!("{settings:?}");
    for secret in ["sentinel-secret-from-a-file", "primary-secret-value"] {
        assert!(!printed.contains(secret), "{secret} in Debug");
    }

    let v6 = settings_of(&[
        ("REDIS_SENTINELS", "[::1]:26379 127.0.0.1:26380"),
        ("REDIS_SENTINEL_MASTER", "mymaster"),
    ]);
    let v6 = v6.redis_sentinel.unwrap();
    assert_eq!(
        v6.sentinels,
        vec![("::1".to_owned(), 26379), ("127.0.0.1".to_owned(), 26380)]
    );
    assert_eq!(v6.addresses(), "[::1]:26379,127.0.0.1:26380");
    assert!(!v6.tls);
}

#[test]
fn sentinel_settings_that_cannot_work_stop_start_up_with_one_line_naming_the_variable() {
    let sentinels = ("REDIS_SENTINELS", "127.0.0.1:26379");
    let master = ("REDIS_SENTINEL_MASTER", "mymaster");
    for (pairs, variable) in [
        (vec![sentinels], "REDIS_SENTINEL_MASTER"),
        (vec![master], "REDIS_SENTINEL_MASTER"),
        (
            vec![("REDIS_SENTINEL_PASSWORD", "lonely-password")],
            "REDIS_SENTINEL_PASSWORD",
        ),
        (
            vec![("REDIS_SENTINEL_MASTER_PASSWORD", "lonely-password")],
            "REDIS_SENTINEL_MASTER_PASSWORD",
        ),
        (vec![("REDIS_SENTINEL_TLS", "true")], "REDIS_SENTINEL_TLS"),
        (
            vec![sentinels, master, ("REDIS_URL", "redis://127.0.0.1:6379")],
            "REDIS_SENTINELS",
        ),
        (vec![("REDIS_SENTINELS", " , "), master], "REDIS_SENTINELS"),
        (
            vec![("REDIS_SENTINELS", "sentinel"), master],
            "REDIS_SENTINELS",
        ),
        (
            vec![("REDIS_SENTINELS", "sentinel:0"), master],
            "REDIS_SENTINELS",
        ),
        (
            vec![("REDIS_SENTINELS", "sentinel:65536"), master],
            "REDIS_SENTINELS",
        ),
        (
            vec![("REDIS_SENTINELS", "[::1:26379"), master],
            "REDIS_SENTINELS",
        ),
        (
            vec![("REDIS_SENTINELS", "bad host!:26379"), master],
            "REDIS_SENTINELS",
        ),
        (
            vec![("REDIS_SENTINELS", "::1:26379"), master],
            "REDIS_SENTINELS",
        ),
        (
            vec![
                ("REDIS_SENTINELS", "redis://:lonely-password@h:26379"),
                master,
            ],
            "REDIS_SENTINELS",
        ),
        (
            vec![sentinels, ("REDIS_SENTINEL_MASTER", "my master")],
            "REDIS_SENTINEL_MASTER",
        ),
        (
            vec![sentinels, master, ("REDIS_SENTINEL_TLS", "sometimes")],
            "REDIS_SENTINEL_TLS",
        ),
        (
            vec![sentinels, master, ("REDIS_SENTINEL_USERNAME", "two words")],
            "REDIS_SENTINEL_USERNAME",
        ),
    ] {
        let error = error_of(&pairs);
        assert!(
            error.starts_with(&format!("invalid setting {variable}:")),
            "{pairs:?}: {error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(!error.contains("lonely-password"), "{error}");
    }
    // Production needs one or the other, and says so.
    let mut map = production_ok_with(&[]);
    map.remove("REDIS_URL");
    let error = Settings::from_vars(&map).unwrap_err().to_string();
    assert!(
        error.starts_with(
            "invalid setting REDIS_URL: is required in production (or REDIS_SENTINELS)"
        ),
        "{error}"
    );
}

#[test]
fn sentinels_in_clear_text_to_remote_hosts_or_a_single_sentinel_are_warned_and_typos_suggested() {
    let settings = Settings::from_vars(&production_with_sentinels(&[(
        "REDIS_SENTINEL_TLS",
        "false",
    )]))
    .unwrap();
    assert_eq!(settings.warnings.len(), 1, "{:?}", settings.warnings);
    assert!(settings.warnings[0].contains("REDIS_SENTINEL_TLS=true"));

    let settings = Settings::from_vars(&production_with_sentinels(&[(
        "REDIS_SENTINELS",
        "10.0.0.1:26379",
    )]))
    .unwrap();
    assert_eq!(settings.warnings.len(), 1, "{:?}", settings.warnings);
    assert!(settings.warnings[0].contains("one sentinel"));

    let settings = Settings::from_vars(&production_with_sentinels(&[
        ("REDIS_SENTINELS", "127.0.0.1:26379,localhost:26380"),
        ("REDIS_SENTINEL_TLS", "false"),
    ]))
    .unwrap();
    assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);

    let settings = Settings::from_vars(&production_with_sentinels(&[(
        "REDIS_SENTINEL_MASTR_PASSWORD",
        "x",
    )]))
    .unwrap();
    assert_eq!(settings.warnings.len(), 1, "{:?}", settings.warnings);
    assert!(
        settings.warnings[0].contains("did you mean REDIS_SENTINEL_MASTER_PASSWORD?"),
        "{:?}",
        settings.warnings
    );
}

#[test]
fn check_config_shows_the_sentinels_and_hides_their_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .current_dir(dir.path())
        .env("REDIS_SENTINELS", "127.0.0.1:26379,127.0.0.1:26380")
        .env("REDIS_SENTINEL_MASTER", "mymaster")
        .env("REDIS_SENTINEL_PASSWORD", "sentinel-pass-value")
        .env("REDIS_SENTINEL_MASTER_PASSWORD", "primary-pass-value")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("127.0.0.1:26379,127.0.0.1:26380"),
        "{stdout}"
    );
    assert!(stdout.contains("mymaster"), "{stdout}");
    for secret in ["sentinel-pass-value", "primary-pass-value"] {
        assert!(!stdout.contains(secret), "{secret} leaked:\n{stdout}");
    }
}
