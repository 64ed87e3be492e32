//! The admin API's route table: every endpoint once, with its method, path template, handler,
//! body limit and what the OpenAPI document says of it (area, who may call it, query
//! parameters, body, answers). The router ([`router`]) and the document
//! ([`super::openapi::document`]) are both built from [`table`], so neither can name an
//! endpoint the other lacks; [`route_list`] exposes the pairs for the tests.
//!
//! The handlers themselves live with their area (`api.rs`, `api_crm.rs`, `api_calendar.rs`,
//! `api_mail.rs`, `api_send.rs`, `console.rs`); each is a thin function over that area's logic.

use std::borrow::Cow;
use std::sync::Arc;

use axum::handler::Handler;
use axum::routing::MethodRouter;
use axum::Router;
use hyper::Method;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::openapi::{RefOr, Schema};

use super::api::MAX_BODY;
use super::{api, api_calendar as cal, api_crm as crm, api_mail as mail, api_send as send};
use super::{api_attachments as attachments, api_setup as setup};
use super::{console, oauth, Shared};

/// The areas of the API: the document's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Area {
    Service,
    Tenants,
    Mail,
    Crm,
    Me,
    Calendar,
    Send,
    Setup,
    Plugins,
    Console,
    Notifications,
}

impl Area {
    pub(super) const ALL: &'static [Area] = &[
        Area::Service,
        Area::Tenants,
        Area::Mail,
        Area::Crm,
        Area::Me,
        Area::Calendar,
        Area::Send,
        Area::Setup,
        Area::Plugins,
        Area::Console,
        Area::Notifications,
    ];

    /// The tag's name and what it groups.
    pub(super) fn tag(self) -> (&'static str, &'static str) {
        match self {
            Area::Service => (
                "service",
                "Health, readiness, metrics, the document itself, leases and retries across orgs",
            ),
            Area::Tenants => (
                "tenants",
                "Tenants, their mailboxes with health, subscriptions and runs, logs, sync now",
            ),
            Area::Mail => (
                "mail sync",
                "A tenant's mail settings, verification, failed records and the Sync Emails switch",
            ),
            Area::Crm => (
                "crm",
                "An org's contacts and entities, timelines, matching, review lists and API tokens",
            ),
            Area::Me => (
                "me",
                "A user's own view: review list, mapping, personal rules (a user token)",
            ),
            Area::Calendar => (
                "calendar",
                "Calendar settings and CRM events of an org, a tenant, a user",
            ),
            Area::Send => ("send", "Email sent from the CRM through a linked mailbox"),
            Area::Setup => (
                "setup",
                "A tenant's declaration, users import, exclusion rules, connectivity test and activation",
            ),
            Area::Plugins => (
                "plugins",
                "An org's plugins: what runs, history, rollback, shadow diffs",
            ),
            Area::Console => (
                "console",
                "The console's pages and its sign-in session (a cookie)",
            ),
            Area::Notifications => (
                "notifications",
                "Graph's change notifications (open; proved by their client state)",
            ),
        }
    }
}

/// Who may call an endpoint (E12); the document's security and refusals follow from it, and
/// the scope tests (tests/all/scopes.rs) assert each route answers as its entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: health, readiness, the console's pages and sign-in, Graph's notifications.
    Open,
    /// The service's admin token only.
    ServiceAdmin,
    /// The service admin, or an org admin within its own org (`{org}` or the record's org).
    OrgAdmin,
    /// A user token, for that user's own records.
    User,
}

/// A body type's schema name, and its schemas (itself first, then those it refers to).
pub(super) type Schemas = (Cow<'static, str>, Vec<(String, RefOr<Schema>)>);

/// A request body as the document describes it.
pub(super) struct BodyDoc {
    pub content_type: &'static str,
    /// The schema's component name and the schemas it needs (itself first), or `None` for a
    /// body described in words only.
    pub schemas: Option<fn() -> Schemas>,
    pub description: &'static str,
}

/// The schema of a request body type and those it refers to.
fn schemas_of<T: utoipa::ToSchema>() -> Schemas {
    let mut all = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut all);
    (T::name(), all)
}

/// One endpoint: the router serves `handler` for `method` at `path`; the document describes it
/// from the rest.
pub(super) struct Endpoint {
    pub method: Method,
    /// The path template, axum's syntax (`/api/tenants/{org}/{tenant}/runs`), which is also
    /// OpenAPI's.
    pub path: &'static str,
    pub area: Area,
    pub access: Access,
    pub summary: &'static str,
    /// Query parameters: name and meaning.
    pub query: &'static [(&'static str, &'static str)],
    pub body: Option<BodyDoc>,
    /// The success status and what it answers.
    pub ok: (u16, &'static str),
    /// The success answer's content type.
    pub ok_type: &'static str,
    /// Refusals particular to this endpoint (409, 502...), with their meaning.
    pub errors: &'static [(u16, &'static str)],
    /// The largest body this route reads.
    pub limit: usize,
    handler: MethodRouter<Arc<Shared>>,
}

impl Endpoint {
    fn new(method: Method, path: &'static str, handler: MethodRouter<Arc<Shared>>) -> Self {
        Endpoint {
            method,
            path,
            area: Area::Service,
            access: Access::OrgAdmin,
            summary: "",
            query: &[],
            body: None,
            ok: (200, "the answer"),
            ok_type: "application/json",
            errors: &[],
            limit: MAX_BODY,
            handler,
        }
    }

    fn area(mut self, area: Area) -> Self {
        self.area = area;
        self
    }

    fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    fn says(mut self, summary: &'static str) -> Self {
        self.summary = summary;
        self
    }

    fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Self {
        self.query = query;
        self
    }

    /// A JSON body of type `T` (its schema derived with `ToSchema`).
    fn json<T: utoipa::ToSchema>(mut self, description: &'static str) -> Self {
        self.body = Some(BodyDoc {
            content_type: "application/json",
            schemas: Some(schemas_of::<T>),
            description,
        });
        self
    }

    /// A body described in words (its type lives in a crate without schemas).
    fn body(mut self, content_type: &'static str, description: &'static str) -> Self {
        self.body = Some(BodyDoc {
            content_type,
            schemas: None,
            description,
        });
        self
    }

    fn answers(mut self, status: u16, description: &'static str) -> Self {
        self.ok = (status, description);
        self
    }

    fn answers_type(mut self, content_type: &'static str) -> Self {
        self.ok_type = content_type;
        self
    }

    fn refuses(mut self, errors: &'static [(u16, &'static str)]) -> Self {
        self.errors = errors;
        self
    }

    fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

fn get<H: Handler<T, Arc<Shared>>, T: 'static>(path: &'static str, h: H) -> Endpoint {
    Endpoint::new(Method::GET, path, axum::routing::get(h))
}

fn post<H: Handler<T, Arc<Shared>>, T: 'static>(path: &'static str, h: H) -> Endpoint {
    Endpoint::new(Method::POST, path, axum::routing::post(h))
}

fn put<H: Handler<T, Arc<Shared>>, T: 'static>(path: &'static str, h: H) -> Endpoint {
    Endpoint::new(Method::PUT, path, axum::routing::put(h))
}

fn patch<H: Handler<T, Arc<Shared>>, T: 'static>(path: &'static str, h: H) -> Endpoint {
    Endpoint::new(Method::PATCH, path, axum::routing::patch(h))
}

fn delete<H: Handler<T, Arc<Shared>>, T: 'static>(path: &'static str, h: H) -> Endpoint {
    Endpoint::new(Method::DELETE, path, axum::routing::delete(h))
}

const PAGE: (&str, &str) = ("limit", "how many to answer (a page)");
const TENANT_LEVEL: (&str, &str) = (
    "tenant",
    "a tenant of the org: its level instead of the org's",
);
const EVENT_WINDOW: &[(&str, &str)] = &[
    (
        "from",
        "events starting at or after: YYYY-MM-DD or epoch ms",
    ),
    ("to", "events starting before: YYYY-MM-DD or epoch ms"),
    ("limit", "a page: 50 by default, at most 200"),
    ("after", "the previous page's `next` (MS:ID)"),
];
const REVIEW_FILTER: &[(&str, &str)] = &[
    ("since", "sent at or after: YYYY-MM-DD or epoch ms"),
    ("until", "sent before: YYYY-MM-DD or epoch ms"),
    ("domain", "the sender's domain"),
    ("before", "the previous page's `next` (MS:ID)"),
    PAGE,
];
const LISTING: &[(&str, &str)] = &[
    PAGE,
    ("after", "the last id of the previous page"),
    ("filter", "words the name or address holds"),
];
const FORMAT: &[(&str, &str)] = &[("format", "csv or json (json when absent)")];
const MAIL_LIST: &[(&str, &str)] = &[
    ("state", "queued, sending, sent or failed"),
    ("limit", "how many rows (100 by default)"),
];

const SYNC_REFUSED: &[(u16, &str)] = &[(409, "the tenant is disabled or not activated")];
const SEND_REFUSED: &[(u16, &str)] = &[(
    409,
    "the mailbox is not linked or disabled, or the idempotency key was used for another email",
)];

/// Every endpoint of the API.
pub(super) fn table() -> Vec<Endpoint> {
    use Access::*;
    use Area::*;
    vec![
        // The service.
        get("/health", api::get_health)
            .area(Service)
            .access(Open)
            .says("Whether the process is alive, and how many mailboxes wait (503 when its database does not answer)"),
        get("/ready", api::get_ready)
            .area(Service)
            .access(Open)
            .says("Whether to send this process work: 503 while it drains or its database does not answer"),
        get("/api/openapi.json", super::openapi::serve)
            .area(Service)
            .access(Open)
            .says("This document (it holds no data)"),
        get("/metrics", api::get_metrics)
            .area(Service)
            .access(ServiceAdmin)
            .says("Prometheus metrics in the OpenMetrics text format")
            .answers_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        get("/api/leases", api::get_leases)
            .area(Service)
            .access(ServiceAdmin)
            .says("Which process holds each mailbox's lease: [{mailbox_id, holder}]"),
        post("/api/retry", api::retry_all)
            .area(Service)
            .access(ServiceAdmin)
            .query(&[("since", "how far back, in days: 30d (the default)")])
            .says("Every failed run of the last days retried: {runs: [{tenant_id, run_id, mailbox_ids}]}")
            .answers(202, "the retries asked for"),
        // Tenants, runs and logs.
        get("/api/tenants", api::list_tenants)
            .area(Tenants)
            .query(&[("org", "only this org's tenants (an org admin sees only its own)")])
            .says("The tenants (an org admin's: its org's)"),
        get("/api/tenants/{org}/{tenant}/mailboxes", api::list_mailboxes)
            .area(Tenants)
            .says("The tenant's mailboxes, each with its health"),
        get("/api/tenants/{org}/{tenant}/subscriptions", api::tenant_subscriptions)
            .area(Tenants)
            .says("The tenant's change-notification subscriptions"),
        get(
            "/api/tenants/{org}/{tenant}/mailboxes/{address}/subscriptions",
            api::mailbox_subscriptions,
        )
        .area(Tenants)
        .says("One mailbox's change-notification subscriptions"),
        get("/api/tenants/{org}/{tenant}/runs", api::list_runs)
            .area(Tenants)
            .query(&[
                ("limit", "how many runs (50 by default)"),
                ("before", "the last run id of the previous page"),
                ("since", "only runs started since: an age (30m, 24h, 7d), a date or epoch ms"),
                ("errors_only", "1 or true: only runs that did not fully succeed (errors, incomplete, failed)"),
            ])
            .says("The tenant's runs, newest first"),
        post("/api/tenants/{org}/{tenant}/sync", api::sync_now)
            .area(Tenants)
            .says("Sync now: the tenant's next run made due")
            .answers(202, "{requested: true, tenant}")
            .refuses(SYNC_REFUSED),
        get("/api/runs/{id}", api::get_run)
            .area(Tenants)
            .says("One run, with its counts"),
        post("/api/runs/{id}/retry", api::retry_one_run)
            .area(Tenants)
            .says("The run's failed mailboxes retried")
            .answers(202, "the retry asked for"),
        get("/api/logs", api::get_logs)
            .area(Tenants)
            .query(&[
                ("org", "an org's lines (an org admin: its own)"),
                ("tenant", "a tenant's lines (with org)"),
                ("run", "one run's lines"),
                ("errors_only", "1 or true: errors only"),
                ("since", "only lines since: an age (30m, 24h, 7d), a date or epoch ms"),
                ("limit", "how many lines (100 by default)"),
            ])
            .says("Log lines of runs, newest first"),
        // A tenant's mail sync.
        get("/api/tenants/{org}/{tenant}/settings", mail::get_settings)
            .area(Mail)
            .says("The tenant's sync settings"),
        patch("/api/tenants/{org}/{tenant}/settings", mail::patch_settings)
            .area(Mail)
            .body(
                "application/json",
                "the settings to change (any of the fields GET answers); the rest keep their value",
            )
            .says("The tenant's sync settings changed"),
        post(
            "/api/tenants/{org}/{tenant}/mailboxes/{address}/verify",
            mail::verify,
        )
        .area(Mail)
        .query(&[("repair", "1 or true: repair what differs")])
        .says("Each synced folder of the mailbox checked against Graph, id by id")
        .refuses(&[(502, "Graph could not be read")]),
        get("/api/tenants/{org}/{tenant}/failures", mail::list_failures)
            .area(Mail)
            .query(&[
                ("mailbox", "one mailbox's, by address"),
                ("parked", "1 or true: only parked records; 0 or false: only those still retried"),
                ("limit", "how many (200 by default)"),
            ])
            .says("The records a stage failed on: {items}"),
        post("/api/tenants/{org}/{tenant}/failures/retry", mail::retry_failures)
            .area(Mail)
            .body(
                "application/json",
                "{\"mailbox\": ADDRESS, \"id\": GRAPH_ID}, both optional: which parked records",
            )
            .says("Parked records retried at the tenant's next run")
            .answers(202, "{mailboxes, run_requested}"),
        put(
            "/api/tenants/{org}/{tenant}/users/{email}/sync-emails",
            mail::put_sync_emails,
        )
        .area(Mail)
        .body("application/json", "{\"on\": true|false}")
        .says("A user's Sync Emails switch (C2)"),
        // The CRM side of an org.
        post("/api/orgs/{org}/match", crm::org_match)
            .area(Crm)
            .says("The org's matching job, now, waited for (up to 60 s)"),
        get("/api/tenants/{org}/{tenant}/match/failures", crm::match_failures)
            .area(Crm)
            .query(&[("limit", "how many, most recently failed first (50 by default, at most 1000)")])
            .says("The records the matching plugin failed on, each with the plugin version that failed it: {failures, total}"),
        get("/api/orgs/{org}/contacts", crm::list_contacts)
            .area(Crm)
            .query(LISTING)
            .says("A page of the org's contacts"),
        post("/api/orgs/{org}/contacts", crm::create_contact)
            .area(Crm)
            .body(
                "application/json",
                "a contact: {name, email, alt_email, contact_points, entity_id, external_id}",
            )
            .says("A contact created")
            .answers(201, "the contact"),
        post("/api/orgs/{org}/contacts/import", crm::import_contacts_body)
            .area(Crm)
            .query(FORMAT)
            .body("text/csv", "the contacts, CSV or JSON (as export writes them)")
            .says("Contacts imported: per-line results"),
        get("/api/orgs/{org}/contacts/export", crm::export_contacts_file)
            .area(Crm)
            .query(FORMAT)
            .says("Every contact of the org, as a file import reads back")
            .answers_type("text/csv"),
        get("/api/orgs/{org}/contacts/warnings", crm::contact_warnings)
            .area(Crm)
            .says("Contacts holding the address of a synced user"),
        get("/api/orgs/{org}/contacts/{contact}", crm::get_contact)
            .area(Crm)
            .says("One contact"),
        put("/api/orgs/{org}/contacts/{contact}", crm::put_contact)
            .area(Crm)
            .body("application/json", "the contact, every field (read it first to change one)")
            .says("A contact changed: {outcome, contact}"),
        delete("/api/orgs/{org}/contacts/{contact}", crm::delete_contact)
            .area(Crm)
            .says("A contact removed: {removed}"),
        get("/api/orgs/{org}/contacts/{contact}/timeline", crm::contact_timeline)
            .area(Crm)
            .query(&[("before", "the previous page's `next` (MS:ID)"), PAGE])
            .says("A contact's emails and events, newest first: {items, next}"),
        get("/api/orgs/{org}/entities", crm::list_entities)
            .area(Crm)
            .query(LISTING)
            .says("A page of the org's entities"),
        post("/api/orgs/{org}/entities", crm::create_entity)
            .area(Crm)
            .body("application/json", "an entity: {name, kind, domains, external_id}")
            .says("An entity created")
            .answers(201, "the entity"),
        post("/api/orgs/{org}/entities/import", crm::import_entities_body)
            .area(Crm)
            .query(FORMAT)
            .body("text/csv", "the entities, CSV or JSON (as export writes them)")
            .says("Entities imported: per-line results"),
        get("/api/orgs/{org}/entities/export", crm::export_entities_file)
            .area(Crm)
            .query(FORMAT)
            .says("Every entity of the org, as a file import reads back")
            .answers_type("text/csv"),
        get("/api/orgs/{org}/entities/{entity}", crm::get_entity)
            .area(Crm)
            .says("One entity"),
        put("/api/orgs/{org}/entities/{entity}", crm::put_entity)
            .area(Crm)
            .body("application/json", "the entity, every field")
            .says("An entity changed: {outcome, entity}"),
        delete("/api/orgs/{org}/entities/{entity}", crm::delete_entity)
            .area(Crm)
            .says("An entity removed, its contacts detached: {removed, contacts_detached}"),
        get(
            "/api/orgs/{org}/tenants/{tenant}/users/{user}/review",
            crm::user_review,
        )
        .area(Crm)
        .query(REVIEW_FILTER)
        .says("A user's review list of unmatched emails: {items, next}"),
        post("/api/orgs/{org}/review/map", crm::org_map)
            .area(Crm)
            .json::<crm::MapRequest>("the emails and the contact they are mapped to")
            .says("Emails of the org mapped to a contact"),
        get("/api/orgs/{org}/tokens", crm::list_tokens)
            .area(Crm)
            .says("The org's API tokens (never their secrets)"),
        post("/api/orgs/{org}/tokens", crm::create_token)
            .area(Crm)
            .json::<crm::TokenRequest>(
                "tenant and user for a user token; neither for the org admin's (the service admin only)",
            )
            .says("A token created: its secret is answered once")
            .answers(201, "{id, token, label}"),
        delete("/api/orgs/{org}/tokens/{token}", crm::revoke_token)
            .area(Crm)
            .says("A token revoked"),
        // A user's own view.
        get("/api/me", crm::me_get)
            .area(Me)
            .access(User)
            .says("Who the token is: {org, tenant, user}"),
        get("/api/me/review", crm::me_review)
            .area(Me)
            .access(User)
            .query(REVIEW_FILTER)
            .says("My review list of unmatched emails: {items, next}"),
        post("/api/me/review/map", crm::me_map)
            .area(Me)
            .access(User)
            .json::<crm::MapRequest>("my emails and the contact they are mapped to")
            .says("My emails mapped to a contact"),
        get("/api/me/contacts", crm::me_contacts)
            .area(Me)
            .access(User)
            .query(LISTING)
            .says("A page of my org's contacts (read only), to map mail to"),
        get("/api/me/rules", crm::me_rules)
            .area(Me)
            .access(User)
            .says("My personal exclusion rules"),
        post("/api/me/rules", crm::me_add_rule)
            .area(Me)
            .access(User)
            .body(
                "application/json",
                "{\"effect\": \"exclude\"|\"include\", \"target\": \"any_address\"|\"sender\"|\"recipient\"|\"subject\", \"pattern\": \"...\"}",
            )
            .says("A personal rule added")
            .answers(201, "{id}"),
        delete("/api/me/rules/{rule}", crm::me_remove_rule)
            .area(Me)
            .access(User)
            .says("A personal rule removed"),
        // Calendars.
        get("/api/orgs/{org}/calendar/settings", cal::org_settings)
            .area(Calendar)
            .says("The org's calendar settings and where they come from: {settings, from}"),
        put("/api/orgs/{org}/calendar/settings", cal::put_org_settings)
            .area(Calendar)
            .json::<cal::SettingsRequest>("the fields to change; the rest keep their value")
            .says("The org's calendar settings changed, with C9's invitation warning: {settings, from, warnings}"),
        get(
            "/api/orgs/{org}/tenants/{tenant}/calendar/settings",
            cal::tenant_settings,
        )
        .area(Calendar)
        .says("The tenant's calendar settings and where they come from"),
        put(
            "/api/orgs/{org}/tenants/{tenant}/calendar/settings",
            cal::put_tenant_settings,
        )
        .area(Calendar)
        .json::<cal::SettingsRequest>("the fields to change; the rest keep their value")
        .says("The tenant's calendar settings changed"),
        put(
            "/api/orgs/{org}/tenants/{tenant}/users/{user}/sync-events",
            cal::put_sync_events,
        )
        .area(Calendar)
        .json::<cal::SwitchRequest>("the switch")
        .says("A user's Sync Events switch: {user, sync_events, outbox}"),
        get(
            "/api/orgs/{org}/tenants/{tenant}/users/{user}/events",
            cal::user_events,
        )
        .area(Calendar)
        .query(EVENT_WINDOW)
        .says("A page of a user's events: {items, next}"),
        post(
            "/api/orgs/{org}/tenants/{tenant}/users/{user}/events",
            cal::create_user_event,
        )
        .area(Calendar)
        .json::<cal::EventRequest>("the new event")
        .says("An event created in a user's calendar")
        .answers(201, "the event, and where its push stands"),
        get(
            "/api/orgs/{org}/tenants/{tenant}/events/{event}",
            cal::tenant_event,
        )
        .area(Calendar)
        .says("One event of the tenant"),
        patch(
            "/api/orgs/{org}/tenants/{tenant}/events/{event}",
            cal::tenant_event,
        )
        .area(Calendar)
        .body("application/json", "the fields to change; only those change (and are pushed)")
        .says("An event changed"),
        delete(
            "/api/orgs/{org}/tenants/{tenant}/events/{event}",
            cal::tenant_event,
        )
        .area(Calendar)
        .says("An event removed: {removed, queued, push}"),
        get("/api/me/events", cal::my_events)
            .area(Calendar)
            .access(User)
            .query(EVENT_WINDOW)
            .says("A page of my events: {items, next}"),
        post("/api/me/events", cal::create_my_event)
            .area(Calendar)
            .access(User)
            .json::<cal::EventRequest>("the new event")
            .says("An event created in my calendar")
            .answers(201, "the event, and where its push stands"),
        get("/api/me/events/{event}", cal::my_event)
            .area(Calendar)
            .access(User)
            .says("One of my events"),
        patch("/api/me/events/{event}", cal::my_event)
            .area(Calendar)
            .access(User)
            .body("application/json", "the fields to change; only those change (and are pushed)")
            .says("One of my events changed"),
        delete("/api/me/events/{event}", cal::my_event)
            .area(Calendar)
            .access(User)
            .says("One of my events removed"),
        // Email sent from the CRM.
        post("/api/orgs/{org}/tenants/{tenant}/mail", send::org_send)
            .area(Send)
            .json::<send::MailBody>("the email; an Idempotency-Key header makes a repeat answer the first row")
            .says("An email queued from a linked mailbox of the tenant")
            .answers(202, "the outbox row (200 with the first row for a repeated idempotency key)")
            .refuses(SEND_REFUSED)
            .limit(send::MAX_MAIL_BODY),
        get("/api/orgs/{org}/tenants/{tenant}/mail", send::org_list)
            .area(Send)
            .query(MAIL_LIST)
            .says("The tenant's outbox rows: {items}"),
        get("/api/orgs/{org}/tenants/{tenant}/mail/{id}", send::org_one)
            .area(Send)
            .says("One outbox row, its state and the email it became"),
        post("/api/me/mail", send::me_send)
            .area(Send)
            .access(User)
            .json::<send::MailBody>("the email; `from` defaults to my mailbox")
            .says("An email queued from my own mailbox")
            .answers(202, "the outbox row (200 with the first row for a repeated idempotency key)")
            .refuses(SEND_REFUSED)
            .limit(send::MAX_MAIL_BODY),
        get("/api/me/mail", send::me_list)
            .area(Send)
            .access(User)
            .query(MAIL_LIST)
            .says("My outbox rows: {items}"),
        get("/api/me/mail/{id}", send::me_one)
            .area(Send)
            .access(User)
            .says("One of my outbox rows"),
        // A tenant's setup.
        post("/api/orgs/{org}/tenants/{tenant}/test", crm::tenant_test)
            .area(Setup)
            .query(&[("mailbox", "the mailbox to try (the tenant's first by default)")])
            .says("The connectivity checklist `tenant test` runs, step by step (a failed step is part of the answer)"),
        post("/api/orgs/{org}/tenants/{tenant}/activate", crm::tenant_activate)
            .area(Setup)
            .query(&[("force", "true: activate despite a failed check")])
            .says("The tenant activated after its checks, with its warnings")
            .refuses(&[(409, "a check failed or the tenant is disabled: the CLI's words, and the checklist")]),
        post("/api/orgs", setup::add_org_route)
            .area(Setup)
            .access(ServiceAdmin)
            .body("application/json", "{name}: the org's name, one word of letters, digits, '-', '_' or '.'")
            .says("An org created, before its first tenant is declared")
            .answers(201, "the org created: {id, name, next}")
            .refuses(&[(409, "an org of that name exists")]),
        post("/api/orgs/{org}/tenants", setup::declare_route)
            .area(Setup)
            .body(
                "application/json",
                "{name, ms_tenant, client_id, secret, secret_label, authority?, graph_url?, delegated?}: the tenant as `tenant add [--delegated]` declares it (a delegated one then signs in through `.../authorize`); the secret is stored sealed and never answered",
            )
            .says("A tenant declared with its app registration's credentials")
            .answers(201, "the tenant declared (without its secret)")
            .refuses(&[(409, "a tenant of that name exists in the org")]),
        post("/api/orgs/{org}/tenants/{tenant}/authorize", oauth::start_route)
            .area(Setup)
            .query(&[("login_hint", "the admin account to sign in as (optional)")])
            .says("A delegated tenant's Microsoft sign-in started: {url, redirect_uri, expires_in_secs}; the browser opens url, and the identity platform sends it back to /oauth/callback. Sets the m365sync_oauth cookie binding the sign-in to this browser. 400 when the tenant is app-only or the service has no address to be called back on")
            .refuses(&[]),
        get("/oauth/callback", oauth::callback)
            .area(Setup)
            .access(Open)
            .query(&[
                ("state", "the sign-in's state, as started"),
                ("code", "the authorization code"),
                ("error", "the identity platform's refusal, instead of a code"),
                ("error_description", "its words"),
            ])
            .says("The identity platform's redirect after a console sign-in: the code exchanged, the refresh token stored sealed, and the browser sent back to the setup assistant (303); a wrong, used or expired state, another browser's answer or a refusal is 400 in words (text/plain)")
            .answers(303, "authorized: back to /#/setup/ORG/TENANT")
            .refuses(&[(502, "the code was not exchanged for a token")]),
        post("/api/orgs/{org}/tenants/{tenant}/users/import", setup::import_route)
            .area(Setup)
            .body("text/csv", "Entra's users export (Users > All users > Download users)")
            .says("Each line of the CSV: the user and mailbox added, updated, unchanged, skipped or refused, and why"),
        get("/api/orgs/{org}/rules", setup::org_rules)
            .area(Setup)
            .says("The org's exclusion rules"),
        post("/api/orgs/{org}/rules", setup::add_org_rule)
            .area(Setup)
            .body("application/json", "{effect: exclude|include, target: any_address|sender|recipient|subject, pattern}")
            .says("An exclusion rule added at the org's level (it acts on syncs from now)")
            .answers(201, "the rule's id"),
        delete("/api/orgs/{org}/rules/{rule}", setup::remove_org_rule)
            .area(Setup)
            .says("An org-level exclusion rule removed"),
        get("/api/orgs/{org}/tenants/{tenant}/rules", setup::tenant_rules)
            .area(Setup)
            .says("The tenant's exclusion rules"),
        post("/api/orgs/{org}/tenants/{tenant}/rules", setup::add_tenant_rule)
            .area(Setup)
            .body("application/json", "{effect: exclude|include, target: any_address|sender|recipient|subject, pattern}")
            .says("An exclusion rule added at the tenant's level")
            .answers(201, "the rule's id"),
        delete("/api/orgs/{org}/tenants/{tenant}/rules/{rule}", setup::remove_tenant_rule)
            .area(Setup)
            .says("A tenant-level exclusion rule removed"),
        get("/api/orgs/{org}/tenants/{tenant}/users/{user}/rules", setup::user_rules)
            .area(Setup)
            .says("A user's own exclusion rules, as the org's admin sees them"),
        post("/api/orgs/{org}/tenants/{tenant}/users/{user}/rules", setup::add_user_rule)
            .area(Setup)
            .body("application/json", "{effect: exclude|include, target: any_address|sender|recipient|subject, pattern}")
            .says("An exclusion rule added at a user's level (it wins over the org's and the tenant's for that user's mail)")
            .answers(201, "the rule's id"),
        delete(
            "/api/orgs/{org}/tenants/{tenant}/users/{user}/rules/{rule}",
            setup::remove_user_rule,
        )
        .area(Setup)
        .says("A user-level exclusion rule removed"),
        post("/api/tenants/{org}/{tenant}/mailboxes/{address}/enable", setup::enable_mailbox)
            .area(Tenants)
            .says("A mailbox enabled: synced again from its cursors"),
        post("/api/tenants/{org}/{tenant}/mailboxes/{address}/disable", setup::disable_mailbox)
            .area(Tenants)
            .says("A mailbox disabled: not synced until enabled; its data stays"),
        get("/api/tenants/{org}/{tenant}/attachments/skipped", attachments::skipped_route)
            .area(Mail)
            .query(&[
                ("after", "the previous page's `next` (EMAIL_ID:GRAPH_ID)"),
                ("limit", "a page: 50 by default, at most 500"),
            ])
            .says("Attachments of stored emails that were not stored, and why: {counts, attachments, next}"),
        // Plugins.
        get("/api/orgs/{org}/plugins", crm::plugins)
            .area(Plugins)
            .says("What runs in each slot of the org and its tenants, and why, with what each version in force decided there (`decided`: kept, dropped, mapped, matched, linked, failed)"),
        get("/api/orgs/{org}/plugins/{slot}/history", crm::plugin_history)
            .area(Plugins)
            .query(&[TENANT_LEVEL])
            .says("Installs, rollbacks, uninstalls and shadows at one level, oldest first, each with what its version decided at that level (`decided`), and the built-in plugin with its counts (`builtin`)"),
        post("/api/orgs/{org}/plugins/{slot}/rollback", crm::plugin_rollback)
            .area(Plugins)
            .query(&[TENANT_LEVEL])
            .says("The version before the current one back in force at that level"),
        post("/api/orgs/{org}/plugins/{slot}/install", crm::plugin_install)
            .area(Plugins)
            .query(&[TENANT_LEVEL])
            .body(
                "application/json",
                "{wasm_base64, file_name?, cases?, cases_name?, no_cases?}: the component and the case file it must pass (or no_cases: true)",
            )
            .says("A component installed at that level once it loads in the sandbox and passes its cases, as `plugin install` does")
            .answers(201, "installed, with the case report; 200 when it was already in force")
            .refuses(&[(422, "a case differs: {error, report}")])
            .limit(MAX_BODY * 2),
        get("/api/orgs/{org}/plugins/{slot}/shadow", crm::plugin_shadow)
            .area(Plugins)
            .query(&[TENANT_LEVEL, ("limit", "how many differing records (200 by default)")])
            .says("A shadow run's diff: counts and the records it decided otherwise"),
        // The console.
        get("/", console::index)
            .area(Console)
            .access(Open)
            .says("The console's page (open: it holds no data)")
            .answers_type("text/html"),
        get("/console/{name}", console::asset)
            .area(Console)
            .access(Open)
            .says("The console's script or style sheet")
            .answers_type("text/javascript"),
        get("/session", console::session)
            .area(Console)
            .access(Open)
            .says("Who the console's cookie (or a bearer token) signs in: 401 when nobody"),
        post("/session", console::sign_in)
            .area(Console)
            .access(Open)
            .body(
                "application/json",
                "{\"token\": TOKEN} (or a form field `token`): sets the console's HttpOnly cookie",
            )
            .says("Sign in to the console with an API token"),
        delete("/session", console::sign_out)
            .area(Console)
            .access(Open)
            .says("Sign out: the cookie cleared"),
        post("/session/logout", console::sign_out)
            .area(Console)
            .access(Open)
            .says("Sign out (a form's post): the cookie cleared"),
        // Graph's change notifications.
        post("/notifications", api::post_notification)
            .area(Notifications)
            .access(Open)
            .query(&[("validationToken", "Graph's handshake: echoed as text")])
            .body("application/json", "Graph's change notifications: {value: [...]}")
            .says("Graph's change notifications (202), or the validation handshake")
            .answers(202, "accepted")
            .answers_type("text/plain")
            .limit(super::notifications::MAX_NOTIFICATION_BODY),
        post("/notifications/lifecycle", api::post_lifecycle)
            .area(Notifications)
            .access(Open)
            .query(&[("validationToken", "Graph's handshake: echoed as text")])
            .body("application/json", "Graph's lifecycle notifications: {value: [...]}")
            .says("Graph's lifecycle notifications (reauthorization, removal, missed)")
            .answers(202, "accepted")
            .answers_type("text/plain")
            .limit(super::notifications::MAX_NOTIFICATION_BODY),
    ]
}

/// The router: one route per endpoint of [`table`], each under its body limit.
pub(super) fn router() -> Router<Arc<Shared>> {
    table().into_iter().fold(Router::new(), |router, e| {
        let max = e.limit;
        let handler =
            e.handler
                .layer(RequestBodyLimitLayer::new(max))
                .layer(axum::middleware::map_response(
                    move |answer: axum::response::Response| {
                        std::future::ready(api::too_large(answer, max))
                    },
                ));
        router.route(e.path, handler)
    })
}

/// Every (method, path template) the API serves, as the router serves them.
pub fn route_list() -> Vec<(String, String)> {
    table()
        .into_iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect()
}

/// Every (method, path template) the API serves with who may call it, as the table declares
/// it: what the scope tests check each route against, so a route added to the table is
/// tested for its scope without a line of test code.
pub fn route_access() -> Vec<(String, String, Access)> {
    table()
        .into_iter()
        .map(|e| (e.method.to_string(), e.path.to_string(), e.access))
        .collect()
}

/// The methods the route `template` answers, as a 405 names them (`GET, POST`).
pub(super) fn methods_of(template: &str) -> String {
    static METHODS: std::sync::OnceLock<std::collections::HashMap<&'static str, Vec<String>>> =
        std::sync::OnceLock::new();
    let methods = METHODS.get_or_init(|| {
        let mut m = std::collections::HashMap::<&'static str, Vec<String>>::new();
        for e in table() {
            m.entry(e.path).or_default().push(e.method.to_string());
        }
        m
    });
    methods
        .get(template)
        .map(|m| m.join(", "))
        .unwrap_or_default()
}
