//! The admin API's OpenAPI 3.1 document, served at `GET /api/openapi.json` (open: it describes
//! the API and holds no data).
//!
//! It is built from the route table ([`super::routes::table`]) with utoipa's builders, not from
//! `#[utoipa::path]` attributes: the table is what the router serves, so a route cannot be
//! served undocumented or documented unserved. Request bodies whose types live in this crate's
//! service derive `ToSchema`; the bodies and answers of store types are described in words
//! (the store crate carries no schema code), errors by the one `Error` schema they all share.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use hyper::{Method, StatusCode};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, Required, ResponseBuilder,
};

use super::api::Answer;
use super::routes::{table, Access, Area, Endpoint};
use super::Shared;

/// `GET /api/openapi.json`: the document, built once.
pub(super) async fn serve(State(_): State<Arc<Shared>>) -> Answer {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| {
        document()
            .to_json()
            .expect("the OpenAPI document serializes")
    });
    hyper::Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(text.clone())))
        .expect("static response parts")
}

/// The name of the error schema every refusal answers.
const ERROR: &str = "Error";

/// The whole document.
pub(super) fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut components = ComponentsBuilder::new()
        .schema(
            ERROR,
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    "error",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("what went wrong, and what to do")),
                )
                .required("error")
                .description(Some("Every refusal and failure: {\"error\": \"...\"}")),
        )
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The service admin token (admin_token_file), an org admin token or a user token (`m365sync token create`)",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "console_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::console::COOKIE,
                "The console's session cookie (POST /session); a request that changes something also sends X-M365sync-Console: 1",
            ))),
        );
    let mut seen = BTreeSet::new();
    for e in table() {
        if let Some(body) = &e.body {
            if let Some(schemas) = body.schemas {
                for (name, schema) in schemas().1 {
                    if seen.insert(name.clone()) {
                        components = components.schema(name, schema);
                    }
                }
            }
        }
        paths = paths.path(e.path, PathItem::new(http_method(&e.method), operation(&e)));
    }
    let tags = Area::ALL
        .iter()
        .map(|a| {
            let (name, about) = a.tag();
            TagBuilder::new()
                .name(name)
                .description(Some(about))
                .build()
        })
        .collect::<Vec<_>>();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("m365sync admin API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The admin API of `m365sync serve`: tenants, mailboxes, runs and logs; an org's CRM side, calendars, outbound email, setup and plugins; a user's own view under /api/me. JSON in, JSON out; errors are {\"error\": \"...\"}. An org admin reaches only its org (another org's records answer 404 as missing ones); a user token only /api/me.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .tags(Some(tags))
        .build()
}

fn http_method(m: &Method) -> HttpMethod {
    match *m {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => unreachable!("the table has no {m} route"),
    }
}

/// The `{name}` parameters of a path template.
pub(super) fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// What a path parameter names.
fn path_param_doc(name: &str) -> &'static str {
    match name {
        "org" => "the org's name",
        "tenant" => "the tenant's name within its org",
        "address" => "a mailbox's address",
        "user" | "email" => "a user's address",
        "id" => "the record's id (a number)",
        "contact" => "the contact's id",
        "entity" => "the entity's id",
        "event" => "the event's id",
        "rule" => "the rule's id",
        "token" => "the token's id",
        "slot" => "the plugin slot: exclusion, mapping or matching",
        "name" => "the file's name",
        _ => "a path parameter",
    }
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ERROR)))
                .build(),
        )
        .build()
}

/// One endpoint's operation.
fn operation(e: &Endpoint) -> utoipa::openapi::path::Operation {
    let (tag, _) = e.area.tag();
    let id = format!(
        "{}{}",
        e.method.as_str().to_ascii_lowercase(),
        e.path
            .split(['/', '.', '-'])
            .map(|s| s.trim_start_matches('{').trim_end_matches('}'))
            .filter(|s| !s.is_empty())
            .map(|s| format!("_{s}"))
            .collect::<String>()
    );
    let who = match e.access {
        Access::Open => "Open: no token.",
        Access::ServiceAdmin => "The service admin's token only.",
        Access::OrgAdmin => {
            "The service admin, or an org admin within its own org (another org answers 404, as a missing one); a user token is refused (403)."
        }
        Access::User => "A user token, for the user's own records (another token is refused: 403).",
    };
    let mut op = OperationBuilder::new()
        .tag(tag)
        .summary(Some(e.summary))
        .description(Some(who))
        .operation_id(Some(id));
    let params = path_params(e.path);
    for p in &params {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*p)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(path_param_doc(p)))
                .schema(Some(string_schema())),
        );
    }
    for (name, about) in e.query {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*about))
                .schema(Some(string_schema())),
        );
    }
    if let Some(body) = &e.body {
        let schema: utoipa::openapi::RefOr<utoipa::openapi::Schema> = match body.schemas {
            Some(schemas) => Ref::from_schema_name(schemas().0).into(),
            None => ObjectBuilder::new()
                .description(Some(body.description))
                .build()
                .into(),
        };
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(body.description))
                .content(
                    body.content_type,
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .required(Some(Required::True))
                .build(),
        ));
    }
    let (status, about) = e.ok;
    op = op.response(
        status.to_string(),
        ResponseBuilder::new()
            .description(about)
            .content(
                e.ok_type,
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().description(Some(about)).build()))
                    .build(),
            )
            .build(),
    );
    let takes_input = !params.is_empty() || !e.query.is_empty() || e.body.is_some();
    if takes_input && e.access != Access::Open {
        op = op.response(
            "400",
            error_response("a parameter or the body is not valid: the error says which and how"),
        );
    }
    if e.access != Access::Open {
        op = op
            .response("401", error_response("no token, or one that is not valid (or revoked)"))
            .response(
                "403",
                error_response("the token's role may not call this, or a cookie-signed change did not come from the console"),
            )
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .security(SecurityRequirement::new("console_cookie", Vec::<String>::new()));
    }
    if !params.is_empty() || e.access == Access::OrgAdmin {
        op = op.response(
            "404",
            error_response(
                "no such org, tenant or record, or one outside the caller's reach (answered alike)",
            ),
        );
    }
    for (status, about) in e.errors {
        op = op.response(status.to_string(), error_response(about));
    }
    if e.body.is_some() {
        op = op.response("413", error_response("the body is over the route's limit"));
    }
    op = op.response(
        "503",
        error_response(
            "the database is unavailable, or the request took longer than 120 s and was stopped",
        ),
    );
    op.build()
}
