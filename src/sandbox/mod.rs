//! TEMPORARY stub replaced by the simulators on merge.
pub const PLATFORMS: [&str; 5] = ["meta", "tiktok", "google", "pinterest", "twitter"];
#[derive(Clone, Debug)]
pub struct SimClient {
    pub platform: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
}
#[derive(Clone, Debug)]
pub struct Simulator;
impl Simulator {
    pub fn new(_clients: Vec<SimClient>) -> Self {
        Self
    }
    pub fn sandbox_client(platform: &str, api_url: &str) -> SimClient {
        SimClient {
            platform: platform.into(),
            client_id: format!("sandbox-{platform}-client"),
            client_secret: format!("sandbox-{platform}-secret"),
            redirect_uris: vec![format!("{api_url}/api/v1/oauth/callback/{platform}")],
        }
    }
}
pub struct SandboxEndpoints {
    pub authorize: String,
    pub token: String,
    pub revoke: String,
    pub userinfo: String,
}
pub fn endpoints(base: &str, platform: &str) -> Option<SandboxEndpoints> {
    Some(SandboxEndpoints {
        authorize: format!("{base}/sandbox/{platform}/a"),
        token: format!("{base}/sandbox/{platform}/t"),
        revoke: format!("{base}/sandbox/{platform}/r"),
        userinfo: format!("{base}/sandbox/{platform}/u"),
    })
}
pub fn router(_sim: Simulator) -> axum::Router {
    axum::Router::new()
}
