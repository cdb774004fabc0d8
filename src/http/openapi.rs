//! The OpenAPI document, generated from the handlers' annotations, at `/api/v1/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::state::AppState;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Growth Engine", description = "OAuth connections to the merchant's marketing platforms, and valid access tokens for the platform's services."),
    paths(
        super::health::health,
        super::health::live,
        super::health::ready,
        super::oauth::platforms,
        super::oauth::connect,
        super::oauth::authorize,
        super::oauth::callback,
        super::oauth::disconnect,
        super::oauth::connections,
        super::oauth::token,
        super::oauth::refresh,
        super::proxy::proxy,
        super::asset_routes::refresh_assets,
        super::asset_routes::select,
        super::posts::create,
        super::posts::read,
        super::posts::list,
        super::posts::cancel,
        super::metrics::metrics,
        super::audit::audit,
    ),
    components(schemas(super::views::BuiltInPlatform, super::oauth::GrantMode)),
    modifiers(&BearerKey),
)]
pub(crate) struct ApiDoc;

/// The document's route.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_the_tables_platforms_for_the_platform_paths() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("serializable");
        let slugs: Vec<&str> = crate::platforms::BUILT_IN.iter().map(|p| p.slug).collect();
        let schema = &document["components"]["schemas"]["BuiltInPlatform"];
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["enum"], serde_json::json!(slugs));
        let parameter =
            &document["paths"]["/api/v1/oauth/connect/{platform}"]["get"]["parameters"][0];
        assert_eq!(parameter["name"], "platform");
        assert_eq!(
            parameter["schema"]["$ref"],
            "#/components/schemas/BuiltInPlatform"
        );
    }

    #[test]
    fn connect_documents_grant_missing() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("serializable");
        let parameters = document["paths"]["/api/v1/oauth/connect/{platform}"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .clone();
        let grant = parameters
            .iter()
            .find(|p| p["name"] == "grant")
            .expect("a grant parameter");
        assert_eq!(grant["in"], "query");
        assert_eq!(grant["required"], false);
        let schema = match grant["schema"]["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().expect("a name");
                document["components"]["schemas"][name].clone()
            }
            None => grant["schema"].clone(),
        };
        assert!(schema.to_string().contains("missing"), "{schema}");
    }

    #[test]
    fn the_document_covers_the_proxy_with_its_headers() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("serializable");
        let path = &document["paths"]["/api/v1/proxy/{platform}/{path}"];
        for method in ["get", "post", "put", "patch", "delete"] {
            assert!(path[method].is_object(), "{method} missing: {path}");
        }
        let names: Vec<&str> = path["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"Growth-Engine-Store"), "{names:?}");
    }

    #[test]
    fn the_document_covers_assets_selection_and_the_token_account() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("serializable");
        let paths = &document["paths"];
        assert!(
            paths["/api/v1/oauth/connections/{store_id}/{platform}/assets/refresh"]["post"]
                .is_object()
        );
        let selection = &paths["/api/v1/oauth/connections/{store_id}/{platform}/selection"]["put"];
        assert!(selection["requestBody"].is_object(), "{selection}");
        assert!(selection["responses"]["404"].is_object());
        let token_params = paths["/api/v1/oauth/token/{platform}"]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        assert!(token_params.iter().any(|p| p["name"] == "account"));
        let schemas = &document["components"]["schemas"];
        assert!(schemas["ConnectionView"]["properties"]["assets"].is_object());
        let asset = &schemas["AssetView"]["properties"];
        for field in ["kind", "id", "name", "selected"] {
            assert!(asset[field].is_object(), "{field}");
        }
        assert!(schemas["TokenResponse"]["properties"]["account"].is_object());
    }
}
