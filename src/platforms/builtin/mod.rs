//! The table of built-in platforms: one module each, holding its definition (with its sources in
//! `shared/providers.md` and `shared/platform-apis.md`) and its [`Platform`](super::Platform)
//! behaviour, and one line each in [`BUILT_IN`], in display order.

mod google;
mod linkedin;
mod meta;
mod pinterest;
/// The publishing clients' test harness, shared by every platform's tests (the sandbox on a port,
/// tokens through its consent screen, fixed media sources).
#[cfg(test)]
#[cfg(feature = "sandbox")]
pub(crate) mod publish_harness;
mod tiktok;
mod twitter;

use super::assets::AssetKind;
use super::definition::BuiltInPlatform;

/// The built-in platforms, in display order.
pub static BUILT_IN: &[&BuiltInPlatform] = &[
    &meta::PLATFORM,
    &tiktok::PLATFORM,
    &google::PLATFORM,
    &pinterest::PLATFORM,
    &twitter::PLATFORM,
    &linkedin::PLATFORM,
];

/// The table line of a built-in platform, by slug.
pub fn built_in(slug: &str) -> Option<&'static BuiltInPlatform> {
    BUILT_IN.iter().copied().find(|p| p.slug == slug)
}

/// Every kind of asset the built-in platforms discover, in the table's order (the order views list
/// them), each once.
pub fn asset_kinds() -> Vec<AssetKind> {
    let mut kinds: Vec<AssetKind> = Vec::new();
    for kind in BUILT_IN.iter().flat_map(|p| p.asset_kinds) {
        if !kinds.iter().any(|k| k.key == kind.key) {
            kinds.push(*kind);
        }
    }
    kinds
}

/// A kind of asset from its API text.
pub fn asset_kind(text: &str) -> Option<AssetKind> {
    BUILT_IN
        .iter()
        .flat_map(|p| p.asset_kinds)
        .find(|kind| kind.key == text)
        .copied()
}
