//! The OpenAPI 3 document of the whole API (`/api/v2/openapi.json`) and its interactive docs
//! (`/api/`), generated from the handlers' annotations and the wire types.

use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v2/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Horde API",
        description = "The AI Horde API v2: text and image generation by a crowdsourced cluster of workers, paid in kudos.",
        license(name = "AGPL-3.0-or-later")
    ),
    modifiers(&ApiKeyHeader),
    tags(
        (name = "text", description = "Text generation: requests, and the worker's pop and submit"),
        (name = "image", description = "Image generation: requests, worker pop/submit, image links, ratings"),
        (name = "alchemy", description = "Image interrogation and post-processing: requests, the alchemist's pop and submit"),
        (name = "users", description = "Accounts, keys and kudos"),
        (name = "workers", description = "Worker details and management"),
        (name = "status", description = "Horde status"),
        (name = "stats", description = "Generation figures: images and text generations finished, counts only"),
        (name = "filters", description = "Prompt filter rules and IP timeouts (moderators)"),
        (name = "styles", description = "Styles (prompt templates with params and models) and collections of styles")
    )
)]
struct ApiDoc;

/// The `apikey` header, as a security scheme operations refer to.
struct ApiKeyHeader;

impl Modify for ApiKeyHeader {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apikey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "apikey",
                "Your API key; 0000000000 is the anonymous one",
            ))),
        );
    }
}

/// The document's header part; the router adds every operation.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info.version = horde_core::VERSION.to_string();
    doc
}

/// The document again at the public horde's path.
pub const PUBLIC_DOCUMENT_PATH: &str = "/api/swagger.json";

/// `/api/` (Swagger UI, served from the binary) and the JSON document (at [`DOCUMENT_PATH`] and
/// at the public horde's [`PUBLIC_DOCUMENT_PATH`]).
pub fn docs_ui<S: Clone + Send + Sync + 'static>(doc: Document) -> Router<S> {
    let public = axum::Json(doc.clone());
    Router::from(SwaggerUi::new("/api").url(DOCUMENT_PATH, doc)).route(
        PUBLIC_DOCUMENT_PATH,
        axum::routing::get(move || {
            let doc = public.clone();
            async move { doc }
        }),
    )
}
