//! The directory: users (people and shared mailboxes), groups, the organization and rooms.

use serde_json::{json, Map, Value};

use super::graph::Ctx;
use super::model::{MailboxKind, User, World};
use super::request::{GraphError, GraphResult, SimResponse};

const USER_FIELDS: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// Directory's 404, which differs from Exchange's.
pub fn resource_not_found(who: &str) -> GraphError {
    GraphError::not_found(
        "Request_ResourceNotFound",
        format!("Resource '{who}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn user_json(user: &User, select: Option<&[String]>) -> Value {
    let mut all = Map::new();
    all.insert("businessPhones".into(), json!([]));
    all.insert("displayName".into(), user.display_name.clone().into());
    all.insert("givenName".into(), user.given_name.clone().into());
    all.insert("jobTitle".into(), user.job_title.clone().into());
    all.insert("mail".into(), user.mail.clone().into());
    all.insert("mobilePhone".into(), Value::Null);
    all.insert("officeLocation".into(), Value::Null);
    all.insert("preferredLanguage".into(), "en-US".into());
    all.insert("surname".into(), user.surname.clone().into());
    all.insert("userPrincipalName".into(), user.upn.clone().into());
    all.insert("id".into(), user.id.clone().into());
    all.insert(
        "accountEnabled".into(),
        (user.kind == MailboxKind::Person).into(),
    );
    all.insert("userType".into(), "Member".into());
    all.insert(
        "mailboxSettings".into(),
        json!({"userPurpose": if user.kind == MailboxKind::Shared { "shared" } else { "user" }}),
    );
    match select {
        None => Value::Object(
            all.into_iter()
                .filter(|(k, _)| USER_FIELDS.contains(&k.as_str()))
                .collect(),
        ),
        Some(fields) => {
            let mut out = Map::new();
            for f in fields {
                if let Some((k, v)) = all.iter().find(|(k, _)| k.eq_ignore_ascii_case(f)) {
                    out.insert(k.clone(), v.clone());
                } else {
                    out.insert(f.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
    }
}

fn parse_select(ctx: &Ctx) -> Option<Vec<String>> {
    ctx.req.query("$select").map(|s| {
        s.split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect()
    })
}

/// A `$filter` on users: `field eq 'value'` or `startswith(field,'value')`, joined by `or`.
fn user_filter(filter: &str) -> Result<Vec<(bool, String, String)>, GraphError> {
    let mut clauses = Vec::new();
    for clause in filter.split(" or ") {
        let c = clause.trim();
        if let Some(inner) = c
            .strip_prefix("startswith(")
            .and_then(|s| s.strip_suffix(')'))
        {
            let (field, value) = inner
                .split_once(',')
                .ok_or_else(|| GraphError::bad_request(format!("Invalid filter clause: {c}")))?;
            clauses.push((
                true,
                field.trim().to_string(),
                value.trim().trim_matches('\'').to_string(),
            ));
        } else {
            let parts: Vec<&str> = c.splitn(3, ' ').collect();
            if parts.len() != 3 || !parts[1].eq_ignore_ascii_case("eq") {
                return Err(GraphError::bad_request(format!(
                    "Unsupported or invalid query filter clause specified: {c}"
                )));
            }
            clauses.push((
                false,
                parts[0].to_string(),
                parts[2].trim_matches('\'').to_string(),
            ));
        }
    }
    Ok(clauses)
}

/// `GET /users` with `$select`, `$filter`, `$top` (default 100, at most 999) and paging.
pub fn list_users(ctx: &Ctx, world: &World) -> GraphResult {
    ctx.require("User.Read.All")?;
    let tenant = &world.tenants[ctx.caller.tenant];
    let top: usize = match ctx.req.query("$top") {
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=999).contains(n))
            .ok_or_else(|| {
                GraphError::new(
                    400,
                    "Request_UnsupportedQuery",
                    format!(
                        "Invalid page size specified: '{v}'. Must be between 1 and 999 inclusive."
                    ),
                )
            })?,
        None => 100,
    };
    let skip: usize = ctx
        .req
        .query("$skiptoken")
        .and_then(|s| s.strip_prefix("X2").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let select = parse_select(ctx);
    let filter = ctx.req.query("$filter").map(user_filter).transpose()?;
    let matches: Vec<&User> = tenant
        .users
        .iter()
        .filter(|u| match &filter {
            None => true,
            Some(clauses) => clauses.iter().any(|(prefix, field, value)| {
                let v = user_json(u, Some(std::slice::from_ref(field)));
                let actual = v
                    .as_object()
                    .and_then(|o| o.values().next())
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if *prefix {
                    actual
                        .to_ascii_lowercase()
                        .starts_with(&value.to_ascii_lowercase())
                } else {
                    actual.eq_ignore_ascii_case(value)
                }
            }),
        })
        .collect();
    let page: Vec<Value> = matches
        .iter()
        .skip(skip)
        .take(top)
        .map(|u| user_json(u, select.as_deref()))
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/$metadata#users", ctx.graph_base),
        "value": page,
    });
    if skip + top < matches.len() {
        body["@odata.nextLink"] = ctx
            .same_url_with("$skiptoken", &format!("X2{}", skip + top))
            .into();
    }
    Ok(SimResponse::json(200, &body))
}

/// `GET /users/{id}`.
pub fn get_user(ctx: &Ctx, world: &World, t: usize, u: usize) -> GraphResult {
    if ctx.caller.user != Some(u) {
        ctx.require("User.Read.All")?;
    }
    let mut v = user_json(&world.tenants[t].users[u], parse_select(ctx).as_deref());
    v["@odata.context"] = format!("{}/$metadata#users/$entity", ctx.graph_base).into();
    Ok(SimResponse::json(200, &v))
}

/// `GET /groups` and `GET /groups/{id}` (with `$filter=mail eq '..'`).
pub fn groups(ctx: &Ctx, world: &World, rest: &[String]) -> GraphResult {
    ctx.require("Group.Read.All")
        .or_else(|_| ctx.require("User.Read.All"))?;
    let tenant = &world.tenants[ctx.caller.tenant];
    match rest.first() {
        None => {
            let filter = ctx.req.query("$filter").map(user_filter).transpose()?;
            let value: Vec<Value> = tenant
                .groups
                .iter()
                .filter(|g| match &filter {
                    None => true,
                    Some(c) => c.iter().any(|(_, field, value)| {
                        field.eq_ignore_ascii_case("mail") && g.mail.eq_ignore_ascii_case(value)
                            || field.eq_ignore_ascii_case("displayName")
                                && g.display_name.eq_ignore_ascii_case(value)
                    }),
                })
                .map(|g| serde_json::to_value(g).expect("group serialises"))
                .collect();
            Ok(SimResponse::json(
                200,
                &json!({"@odata.context": format!("{}/$metadata#groups", ctx.graph_base), "value": value}),
            ))
        }
        Some(id) => tenant
            .groups
            .iter()
            .find(|g| g.id.eq_ignore_ascii_case(id) || g.mail.eq_ignore_ascii_case(id))
            .map(|g| SimResponse::json(200, g))
            .ok_or_else(|| resource_not_found(id)),
    }
}

/// `GET /organization`.
pub fn organization(ctx: &Ctx, world: &World) -> GraphResult {
    let t = &world.tenants[ctx.caller.tenant];
    Ok(SimResponse::json(
        200,
        &json!({
            "@odata.context": format!("{}/$metadata#organization", ctx.graph_base),
            "value": [{
                "id": t.id,
                "displayName": t.display_name,
                "verifiedDomains": [{"name": t.domain, "isDefault": true, "isInitial": false, "type": "Managed"}],
            }]
        }),
    ))
}

/// `GET /places/microsoft.graph.room`.
pub fn places(ctx: &Ctx, world: &World, rest: &[String]) -> GraphResult {
    if rest.first().map(String::as_str) != Some("microsoft.graph.room") {
        return Err(GraphError::bad_request(
            "Only /places/microsoft.graph.room is supported.",
        ));
    }
    ctx.require("Place.Read.All")
        .or_else(|_| ctx.require("Calendars.Read"))?;
    let value: Vec<Value> = world.tenants[ctx.caller.tenant]
        .rooms
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).expect("room serialises");
            v["@odata.type"] = "#microsoft.graph.room".into();
            v["bookingType"] = "standard".into();
            v
        })
        .collect();
    Ok(SimResponse::json(
        200,
        &json!({"@odata.context": format!("{}/$metadata#places/microsoft.graph.room", ctx.graph_base), "value": value}),
    ))
}
