//! The platform layer, at the bottom of the core: the table of built-in platforms and what the
//! operator's settings say about each.
//!
//! The table is the one list of built-in platforms: settings, the catalog, the page, the OpenAPI
//! document and the tests all derive theirs from it.

pub mod settings;

/// One line of the table of built-in platforms.
#[derive(Debug)]
pub struct BuiltInPlatform {
    /// The slug used in paths and settings.
    pub slug: &'static str,
    /// The prefix of its override variables (`<PREFIX>_TOKEN_URL`, `<PREFIX>_SCOPES`, ...).
    pub env_prefix: &'static str,
    /// The variable holding the client id (`META_APP_ID`, `TIKTOK_CLIENT_KEY`, ...).
    pub client_id_var: &'static str,
    /// The variable holding the client secret.
    pub client_secret_var: &'static str,
}

/// The built-in platforms, in display order.
pub static BUILT_IN: [BuiltInPlatform; 5] = [
    BuiltInPlatform {
        slug: "meta",
        env_prefix: "META",
        client_id_var: "META_APP_ID",
        client_secret_var: "META_APP_SECRET",
    },
    BuiltInPlatform {
        slug: "tiktok",
        env_prefix: "TIKTOK",
        client_id_var: "TIKTOK_CLIENT_KEY",
        client_secret_var: "TIKTOK_CLIENT_SECRET",
    },
    BuiltInPlatform {
        slug: "google",
        env_prefix: "GOOGLE",
        client_id_var: "GOOGLE_CLIENT_ID",
        client_secret_var: "GOOGLE_CLIENT_SECRET",
    },
    BuiltInPlatform {
        slug: "pinterest",
        env_prefix: "PINTEREST",
        client_id_var: "PINTEREST_APP_ID",
        client_secret_var: "PINTEREST_APP_SECRET",
    },
    BuiltInPlatform {
        slug: "twitter",
        env_prefix: "TWITTER",
        client_id_var: "TWITTER_CLIENT_ID",
        client_secret_var: "TWITTER_CLIENT_SECRET",
    },
];
