//! Mail folder trees as Exchange keeps them, and the Graph routes over them.
//!
//! A mailbox's folders hang under the root (`msgfolderroot`): the well-known folders
//! (`inbox`, `sentitems`, `archive`, ...) and user folders at any depth (Inbox/Clients/Acme).
//! Folders live in one vector per mailbox and are named by index everywhere (messages, sealed
//! delta tokens, subscriptions); a deleted folder stays as a tombstone so no index is reused.
//! Every hierarchy change (create, rename, move, delete) is logged in the mailbox's
//! `folder_log`, which `mailFolders/delta` replays exactly as message delta replays a folder's
//! log. Messages of a folder are served by [`super::mail`] and [`super::delta`].

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::graph::Ctx;
use super::ids::{mix64, Rng};
use super::mail::{item_not_found, unsupported};
use super::model::{after, folder_id, Folder, User, World, ROOT_FOLDER};
use super::request::{GraphError, GraphResult, SimResponse};

/// Why a folder operation was refused; each becomes the error Graph gives for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderError {
    /// A folder under the same parent already has this name (compared case-insensitively).
    Exists(String),
    /// An empty display name.
    InvalidName,
    /// Well-known folders cannot be moved, renamed or deleted: the verb refused.
    Distinguished(&'static str),
    /// A folder cannot move (or be copied) into itself or below itself.
    IntoItself,
    /// No such folder in this mailbox (or a deleted one).
    NotFound,
}

impl FolderError {
    /// The Graph error for this refusal.
    pub fn to_graph(&self) -> GraphError {
        match self {
            FolderError::Exists(name) => GraphError::new(
                409,
                "ErrorFolderExists",
                format!("A folder with the specified name already exists., Could not create folder '{name}'."),
            ),
            FolderError::InvalidName => GraphError::new(
                400,
                "ErrorInvalidRequest",
                "The folder's displayName is required and cannot be empty.",
            ),
            FolderError::Distinguished("delete") => GraphError::new(
                400,
                "ErrorDeleteDistinguishedFolder",
                "Distinguished folders cannot be deleted.",
            ),
            FolderError::Distinguished("move") => GraphError::new(
                400,
                "ErrorMoveDistinguishedFolder",
                "Distinguished folders cannot be moved.",
            ),
            FolderError::Distinguished(verb) => GraphError::new(
                400,
                "ErrorInvalidRequest",
                format!("Distinguished folders cannot be {verb}d."),
            ),
            FolderError::IntoItself => GraphError::new(
                400,
                "ErrorInvalidRequest",
                "A folder cannot be moved or copied into itself or one of its subfolders.",
            ),
            FolderError::NotFound => item_not_found(),
        }
    }
}

impl std::fmt::Display for FolderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_graph().message)
    }
}

impl User {
    /// The root folder (`msgfolderroot`), parent of Inbox and its siblings.
    pub fn root_folder(&self) -> usize {
        self.folder_index(ROOT_FOLDER.0)
            .expect("every mailbox has a root folder")
    }

    /// The folders directly under `parent` that exist, in creation order.
    pub fn child_folders(&self, parent: usize) -> Vec<usize> {
        (0..self.folders.len())
            .filter(|&c| !self.folders[c].deleted && self.folders[c].parent == Some(parent))
            .collect()
    }

    /// The child of `parent` with this display name (case-insensitive, as Exchange compares).
    pub fn child_named(&self, parent: usize, name: &str) -> Option<usize> {
        let name = name.trim();
        self.child_folders(parent)
            .into_iter()
            .find(|&c| self.folders[c].display_name.eq_ignore_ascii_case(name))
    }

    /// True when `f` is `ancestor` or lies anywhere below it.
    pub fn is_within(&self, f: usize, ancestor: usize) -> bool {
        let mut at = Some(f);
        while let Some(i) = at {
            if i == ancestor {
                return true;
            }
            at = self.folders[i].parent;
        }
        false
    }

    /// The folder's path of display names below the root ("Inbox/Clients/Acme"); empty for
    /// the root itself.
    pub fn folder_path(&self, f: usize) -> String {
        let mut names = Vec::new();
        let mut at = f;
        while let Some(parent) = self.folders[at].parent {
            names.push(self.folders[at].display_name.as_str());
            at = parent;
        }
        names.reverse();
        names.join("/")
    }

    /// Resolves an id, a well-known name, or a path of display names below the root
    /// ("Inbox/Clients/Acme", case-insensitive): how the control API and scenarios name
    /// folders. Graph itself takes ids and well-known names only ([`User::folder_index`]).
    pub fn resolve_folder(&self, key: &str) -> Option<usize> {
        if let Some(f) = self.folder_index(key) {
            return Some(f);
        }
        let mut at = self.root_folder();
        for name in key.split('/').filter(|s| !s.trim().is_empty()) {
            at = self.child_named(at, name)?;
        }
        (at != self.root_folder()).then_some(at)
    }

    /// The folder's key in the ground truth: its well-known name, or its path.
    pub fn truth_key(&self, f: usize) -> String {
        self.folders[f]
            .well_known
            .clone()
            .unwrap_or_else(|| self.folder_path(f))
    }

    /// The folder and every folder below it that exists, parents before children.
    pub fn subtree(&self, f: usize) -> Vec<usize> {
        let mut out = vec![f];
        let mut i = 0;
        while i < out.len() {
            out.extend(self.child_folders(out[i]));
            i += 1;
        }
        out
    }
}

impl World {
    /// Records a hierarchy change of folder `f` for `mailFolders/delta`.
    fn log_folder(&mut self, t: usize, u: usize, f: usize) {
        let seq = self.bump();
        let user = &mut self.tenants[t].users[u];
        user.folder_log.insert(seq, f);
        user.folders[f].changed = seq;
    }

    fn live(&self, t: usize, u: usize, f: usize) -> Result<(), FolderError> {
        match self.tenants[t].users[u].folders.get(f) {
            Some(folder) if !folder.deleted => Ok(()),
            _ => Err(FolderError::NotFound),
        }
    }

    /// Creates a folder named `name` under `parent`; refuses a name a sibling already has.
    pub fn create_folder(
        &mut self,
        t: usize,
        u: usize,
        parent: usize,
        name: &str,
        hidden: bool,
    ) -> Result<usize, FolderError> {
        self.live(t, u, parent)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(FolderError::InvalidName);
        }
        if self.tenants[t].users[u].child_named(parent, name).is_some() {
            return Err(FolderError::Exists(name.to_string()));
        }
        let seq = self.bump();
        let mut rng = Rng::new(mix64(seq ^ (self.salt as u64) << 24 ^ (u as u64) << 48));
        let mut folder = Folder::new(folder_id(&mut rng), name, Some(parent));
        folder.hidden = hidden;
        folder.created = seq;
        let user = &mut self.tenants[t].users[u];
        user.folders.push(folder);
        let f = user.folders.len() - 1;
        self.log_folder(t, u, f);
        Ok(f)
    }

    /// Creates every missing folder of a path below the root ("Inbox/Clients/Acme"; the first
    /// name may be a well-known folder's display name) and returns the last one.
    pub fn ensure_folder_path(
        &mut self,
        t: usize,
        u: usize,
        path: &str,
    ) -> Result<usize, FolderError> {
        if let Some(f) = self.tenants[t].users[u].folder_index(path) {
            return Ok(f);
        }
        let mut at = self.tenants[t].users[u].root_folder();
        for name in path.split('/').filter(|s| !s.trim().is_empty()) {
            at = match self.tenants[t].users[u].child_named(at, name) {
                Some(existing) => existing,
                None => self.create_folder(t, u, at, name, false)?,
            };
        }
        if at == self.tenants[t].users[u].root_folder() {
            return Err(FolderError::InvalidName);
        }
        Ok(at)
    }

    /// Renames a user folder.
    pub fn rename_folder(
        &mut self,
        t: usize,
        u: usize,
        f: usize,
        name: &str,
    ) -> Result<(), FolderError> {
        self.live(t, u, f)?;
        let user = &self.tenants[t].users[u];
        if user.folders[f].well_known.is_some() {
            return Err(FolderError::Distinguished("rename"));
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(FolderError::InvalidName);
        }
        if user.folders[f].display_name == name {
            return Ok(());
        }
        let parent = user.folders[f].parent.expect("user folders have a parent");
        if user.child_named(parent, name).is_some_and(|c| c != f) {
            return Err(FolderError::Exists(name.to_string()));
        }
        self.tenants[t].users[u].folders[f].display_name = name.to_string();
        self.log_folder(t, u, f);
        Ok(())
    }

    /// Moves a user folder (with everything in and below it) under `dest`.
    pub fn move_folder(
        &mut self,
        t: usize,
        u: usize,
        f: usize,
        dest: usize,
    ) -> Result<(), FolderError> {
        self.live(t, u, f)?;
        self.live(t, u, dest)?;
        let user = &self.tenants[t].users[u];
        if user.folders[f].well_known.is_some() {
            return Err(FolderError::Distinguished("move"));
        }
        if user.is_within(dest, f) {
            return Err(FolderError::IntoItself);
        }
        if user.folders[f].parent == Some(dest) {
            return Ok(());
        }
        let name = user.folders[f].display_name.clone();
        if user.child_named(dest, &name).is_some() {
            return Err(FolderError::Exists(name));
        }
        self.tenants[t].users[u].folders[f].parent = Some(dest);
        self.log_folder(t, u, f);
        Ok(())
    }

    /// `DELETE mailFolders/{id}`: Exchange moves the folder to Deleted Items; a folder already
    /// in Deleted Items is deleted for good ([`World::purge_folder`]). A name already taken in
    /// Deleted Items gets a number, as " (2)".
    pub fn delete_folder(&mut self, t: usize, u: usize, f: usize) -> Result<(), FolderError> {
        self.live(t, u, f)?;
        let user = &self.tenants[t].users[u];
        if user.folders[f].well_known.is_some() {
            return Err(FolderError::Distinguished("delete"));
        }
        let bin = user
            .folder_index("deleteditems")
            .expect("every mailbox has deleted items");
        if user.is_within(f, bin) {
            return self.purge_folder(t, u, f);
        }
        let name = user.folders[f].display_name.clone();
        let mut free = name.clone();
        let mut n = 2;
        while user.child_named(bin, &free).is_some() {
            free = format!("{name} ({n})");
            n += 1;
        }
        let user = &mut self.tenants[t].users[u];
        user.folders[f].display_name = free;
        user.folders[f].parent = Some(bin);
        self.log_folder(t, u, f);
        Ok(())
    }

    /// Deletes a user folder for good (`permanentDelete`): it, its subfolders and their
    /// messages are gone, and folder delta reports each folder as `@removed`.
    pub fn purge_folder(&mut self, t: usize, u: usize, f: usize) -> Result<(), FolderError> {
        self.live(t, u, f)?;
        if self.tenants[t].users[u].folders[f].well_known.is_some() {
            return Err(FolderError::Distinguished("delete"));
        }
        let doomed = self.tenants[t].users[u].subtree(f);
        for &d in doomed.iter().rev() {
            let keys: Vec<u64> = self.tenants[t].users[u].folders[d]
                .items
                .values()
                .copied()
                .collect();
            for key in keys {
                self.delete_message(key);
            }
            self.tenants[t].users[u].folders[d].deleted = true;
            self.log_folder(t, u, d);
        }
        Ok(())
    }

    /// Copies a folder, its subfolders and their messages under `dest` (the copies are new
    /// folders and new messages). Returns the new folder.
    pub fn copy_folder(
        &mut self,
        t: usize,
        u: usize,
        f: usize,
        dest: usize,
    ) -> Result<usize, FolderError> {
        self.live(t, u, f)?;
        self.live(t, u, dest)?;
        let user = &self.tenants[t].users[u];
        if user.folders[f].parent.is_none() {
            return Err(FolderError::Distinguished("copie"));
        }
        if user.is_within(dest, f) {
            return Err(FolderError::IntoItself);
        }
        let (name, hidden) = (user.folders[f].display_name.clone(), user.folders[f].hidden);
        let copy = self.create_folder(t, u, dest, &name, hidden)?;
        let keys: Vec<u64> = self.tenants[t].users[u].folders[f]
            .items
            .values()
            .copied()
            .collect();
        for key in keys {
            self.copy_message(key, copy);
        }
        for child in self.tenants[t].users[u].child_folders(f) {
            self.copy_folder(t, u, child, copy)?;
        }
        Ok(copy)
    }
}

/// Folder properties in the order Graph writes them.
const FOLDER_FIELDS: [&str; 8] = [
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "isHidden",
];

/// What a message adds to its folder's `sizeInBytes`: headers, subject, body, attachments.
fn message_size(m: &super::model::Message) -> u64 {
    let c = &m.content;
    1024 + (c.subject.len() + c.body.len()) as u64
        + c.attachments.iter().map(|a| a.size()).sum::<u64>()
}

/// The id Graph gives as the root's `parentFolderId` (the mailbox's non-IPM root).
fn store_root_id(user: &User) -> String {
    let root = &user.folders[user.root_folder()];
    format!("{}AAAB", root.id.trim_end_matches('='))
}

/// A folder as Graph renders it, without `@odata.context`; `$select`ed properties only.
pub fn folder_json(
    world: &World,
    t: usize,
    u: usize,
    f: usize,
    select: Option<&[String]>,
) -> Map<String, Value> {
    let user = &world.tenants[t].users[u];
    let folder = &user.folders[f];
    let wanted = |name: &str| {
        name == "id" || select.is_none_or(|s| s.iter().any(|x| x.eq_ignore_ascii_case(name)))
    };
    let mut out = Map::new();
    let needs_items = ["unreadItemCount", "sizeInBytes"].iter().any(|n| wanted(n));
    let (mut unread, mut size) = (0u64, 0u64);
    if needs_items {
        for m in folder.items.values().filter_map(|k| world.messages.get(k)) {
            unread += u64::from(!m.content.is_read);
            size += message_size(m);
        }
    }
    for name in FOLDER_FIELDS {
        if !wanted(name) {
            continue;
        }
        let v: Value = match name {
            "id" => folder.id.clone().into(),
            "displayName" => folder.display_name.clone().into(),
            "parentFolderId" => match folder.parent {
                Some(p) => user.folders[p].id.clone().into(),
                None => store_root_id(user).into(),
            },
            "childFolderCount" => user.child_folders(f).len().into(),
            "unreadItemCount" => unread.into(),
            "totalItemCount" => folder.items.len().into(),
            "sizeInBytes" => size.into(),
            _ => folder.hidden.into(),
        };
        out.insert(name.to_string(), v);
    }
    out
}

/// `$select` of a folder request, checked against the folder's properties.
fn folder_select(ctx: &Ctx) -> Result<Option<Vec<String>>, GraphError> {
    let Some(select) = ctx.req.query("$select").filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let names: Vec<String> = select.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(bad) = names
        .iter()
        .find(|n| !FOLDER_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(n)))
    {
        return Err(GraphError::bad_request(format!(
            "Could not find a property named '{bad}' on type 'microsoft.graph.mailFolder'."
        )));
    }
    Ok(Some(names))
}

/// Resolves a folder named in a Graph path or body: an id or a well-known name. An unknown
/// id that looks like one is 404; anything else is a malformed id (400), as Graph tells them.
pub fn graph_folder(world: &World, t: usize, u: usize, name: &str) -> Result<usize, GraphError> {
    world.tenants[t].users[u].folder_index(name).ok_or_else(|| {
        if name.starts_with("AQMk") || name.starts_with("AAMk") {
            item_not_found()
        } else {
            GraphError::bad_request("Id is malformed.").with_code("ErrorInvalidIdMalformed")
        }
    })
}

/// Routes `/users/{u}/mailFolders...`.
pub fn handle(ctx: &Ctx, world: &mut World, t: usize, u: usize, rest: &[String]) -> GraphResult {
    let method = ctx.req.method.as_str();
    let root = world.tenants[t].users[u].root_folder();
    let Some(first) = rest.get(1).map(String::as_str) else {
        return match method {
            "GET" => {
                ctx.require("Mail.Read")?;
                list(ctx, world, t, u, root)
            }
            "POST" => {
                ctx.require("Mail.ReadWrite")?;
                create(ctx, world, t, u, root)
            }
            _ => Err(unsupported(ctx)),
        };
    };
    if matches!(first, "delta" | "delta()") && rest.len() == 2 && method == "GET" {
        ctx.require("Mail.Read")?;
        return delta(ctx, world, t, u);
    }
    let mut f = graph_folder(world, t, u, first)?;
    let mut i = 2;
    // `mailFolders/{a}/childFolders/{b}/childFolders/{c}/...` addresses c, a child of b.
    while rest.get(i).is_some_and(|s| s == "childFolders")
        && rest
            .get(i + 1)
            .is_some_and(|s| !matches!(s.as_str(), "delta" | "delta()"))
    {
        let child = graph_folder(world, t, u, &rest[i + 1])?;
        if world.tenants[t].users[u].folders[child].parent != Some(f) {
            return Err(item_not_found());
        }
        f = child;
        i += 2;
    }
    let tail = &rest[i..];
    let seg = |k: usize| tail.get(k).map(String::as_str);
    match (method, seg(0), seg(1), tail.len()) {
        ("GET", None, _, _) => {
            ctx.require("Mail.Read")?;
            Ok(one(ctx, world, t, u, f, 200)?)
        }
        ("PATCH", None, _, _) => {
            ctx.require("Mail.ReadWrite")?;
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Patch {
                display_name: Option<String>,
                is_hidden: Option<bool>,
            }
            let p: Patch = ctx.req.json()?;
            if p.is_hidden.is_some() {
                return Err(GraphError::new(
                    400,
                    "ErrorInvalidRequest",
                    "isHidden can be set only when a folder is created.",
                ));
            }
            if let Some(name) = p.display_name {
                world
                    .rename_folder(t, u, f, &name)
                    .map_err(|e| e.to_graph())?;
            }
            Ok(one(ctx, world, t, u, f, 200)?)
        }
        ("DELETE", None, _, _) => {
            ctx.require("Mail.ReadWrite")?;
            world.delete_folder(t, u, f).map_err(|e| e.to_graph())?;
            Ok(SimResponse::empty(204))
        }
        ("POST", Some("permanentDelete"), None, _) => {
            ctx.require("Mail.ReadWrite")?;
            world.purge_folder(t, u, f).map_err(|e| e.to_graph())?;
            Ok(SimResponse::empty(204))
        }
        ("POST", Some(action @ ("move" | "copy")), None, _) => {
            ctx.require("Mail.ReadWrite")?;
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Dest {
                destination_id: String,
            }
            let d: Dest = ctx.req.json()?;
            let dest = graph_folder(world, t, u, &d.destination_id)?;
            let target = if action == "move" {
                world.move_folder(t, u, f, dest).map_err(|e| e.to_graph())?;
                f
            } else {
                world.copy_folder(t, u, f, dest).map_err(|e| e.to_graph())?
            };
            one(ctx, world, t, u, target, 201)
        }
        ("GET", Some("childFolders"), None, _) => {
            ctx.require("Mail.Read")?;
            list(ctx, world, t, u, f)
        }
        ("POST", Some("childFolders"), None, _) => {
            ctx.require("Mail.ReadWrite")?;
            create(ctx, world, t, u, f)
        }
        ("GET", Some("messages"), Some("delta" | "delta()"), 2) => {
            ctx.require("Mail.Read")?;
            super::delta::messages_delta(ctx, world, t, u, f)
        }
        ("GET", Some("messages"), Some("$count"), 2) => {
            ctx.require("Mail.Read")?;
            let n = super::mail::count_messages(ctx, world, t, u, Some(f))?;
            Ok(SimResponse::bytes(
                200,
                "text/plain",
                n.to_string().into_bytes(),
            ))
        }
        ("GET", Some("messages"), None, _) => {
            ctx.require("Mail.Read")?;
            super::mail::list_messages(ctx, world, t, u, Some(f))
        }
        ("POST", Some("messages"), None, _) => {
            ctx.require("Mail.ReadWrite")?;
            super::mail::create_draft(ctx, world, t, u, f)
        }
        (_, Some("messages"), Some(id), _) => {
            let id = id.to_string();
            super::mail::message_routes(ctx, world, t, u, &id, &tail[2..])
        }
        _ => Err(unsupported(ctx)),
    }
}

/// One folder with `@odata.context` (and `$expand=childFolders`), with this status.
fn one(ctx: &Ctx, world: &World, t: usize, u: usize, f: usize, status: u16) -> GraphResult {
    let select = folder_select(ctx)?;
    let user = &world.tenants[t].users[u];
    let mut v = Map::new();
    v.insert(
        "@odata.context".into(),
        format!(
            "{}/$metadata#users('{}')/mailFolders/$entity",
            ctx.graph_base, user.id
        )
        .into(),
    );
    v.extend(folder_json(world, t, u, f, select.as_deref()));
    if expands_children(ctx)? {
        v.insert(
            "childFolders".into(),
            visible_children(ctx, user, f)
                .into_iter()
                .map(|c| Value::Object(folder_json(world, t, u, c, select.as_deref())))
                .collect::<Vec<_>>()
                .into(),
        );
    }
    Ok(SimResponse::json(status, &v))
}

fn expands_children(ctx: &Ctx) -> Result<bool, GraphError> {
    match ctx.req.query("$expand").map(str::trim) {
        None | Some("") => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("childFolders") => Ok(true),
        Some(e) => Err(GraphError::bad_request(format!(
            "Could not find a navigation property named '{e}' on type 'microsoft.graph.mailFolder' (the simulator expands childFolders only)."
        ))),
    }
}

/// The children a listing shows: hidden ones only with `includeHiddenFolders=true`; ordered
/// by display name, as Exchange lists them.
fn visible_children(ctx: &Ctx, user: &User, parent: usize) -> Vec<usize> {
    let hidden_too = ctx
        .req
        .query("includeHiddenFolders")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut children: Vec<usize> = user
        .child_folders(parent)
        .into_iter()
        .filter(|&c| hidden_too || !user.folders[c].hidden)
        .collect();
    children.sort_by_key(|&c| (user.folders[c].display_name.to_lowercase(), c));
    children
}

/// `$filter=displayName eq 'X'` on folder listings (how clients find a folder by name).
fn name_filter(ctx: &Ctx) -> Result<Option<String>, GraphError> {
    let Some(filter) = ctx
        .req
        .query("$filter")
        .map(str::trim)
        .filter(|f| !f.is_empty())
    else {
        return Ok(None);
    };
    let parts: Vec<&str> = filter.splitn(3, ' ').collect();
    match parts.as_slice() {
        [field, op, value]
            if field.eq_ignore_ascii_case("displayName") && op.eq_ignore_ascii_case("eq") =>
        {
            let v = value.trim();
            let v = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(v);
            Ok(Some(v.replace("''", "'")))
        }
        _ => Err(GraphError::bad_request(format!(
            "Invalid filter clause: the simulator filters folders by displayName eq '...' only, got '{filter}'."
        ))),
    }
}

/// `GET mailFolders` (children of the root) and `GET mailFolders/{id}/childFolders`: pages of
/// `$top` (default 10, as Graph) with `$skip` nextLinks.
fn list(ctx: &Ctx, world: &World, t: usize, u: usize, parent: usize) -> GraphResult {
    let select = folder_select(ctx)?;
    let expand = expands_children(ctx)?;
    let user = &world.tenants[t].users[u];
    let mut children = visible_children(ctx, user, parent);
    if let Some(name) = name_filter(ctx)? {
        children.retain(|&c| user.folders[c].display_name.eq_ignore_ascii_case(&name));
    }
    let top = match ctx.req.query("$top") {
        None => 10,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| GraphError::bad_request(format!("Invalid $top value '{v}'.")))?,
    }
    .clamp(1, ctx.sim.protocol().max_page);
    let skip: usize = ctx
        .req
        .query("$skip")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let value: Vec<Value> = children
        .iter()
        .skip(skip)
        .take(top)
        .map(|&c| {
            let mut v = folder_json(world, t, u, c, select.as_deref());
            if expand {
                v.insert(
                    "childFolders".into(),
                    visible_children(ctx, user, c)
                        .into_iter()
                        .map(|g| Value::Object(folder_json(world, t, u, g, select.as_deref())))
                        .collect::<Vec<_>>()
                        .into(),
                );
            }
            Value::Object(v)
        })
        .collect();
    let context = if parent == user.root_folder() {
        format!(
            "{}/$metadata#users('{}')/mailFolders",
            ctx.graph_base, user.id
        )
    } else {
        format!(
            "{}/$metadata#users('{}')/mailFolders('{}')/childFolders",
            ctx.graph_base, user.id, user.folders[parent].id
        )
    };
    let mut body = Map::new();
    body.insert("@odata.context".into(), context.into());
    if ctx
        .req
        .query("$count")
        .is_some_and(|c| c.eq_ignore_ascii_case("true"))
    {
        body.insert("@odata.count".into(), children.len().into());
    }
    if skip + top < children.len() {
        body.insert(
            "@odata.nextLink".into(),
            ctx.same_url_with("$skip", &(skip + top).to_string()).into(),
        );
    }
    body.insert("value".into(), value.into());
    Ok(SimResponse::json(200, &body))
}

/// `POST mailFolders` and `POST mailFolders/{id}/childFolders`: `{"displayName", "isHidden"}`.
fn create(ctx: &Ctx, world: &mut World, t: usize, u: usize, parent: usize) -> GraphResult {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct NewFolder {
        #[serde(default)]
        display_name: String,
        #[serde(default)]
        is_hidden: bool,
    }
    let body: NewFolder = ctx.req.json()?;
    let f = world
        .create_folder(t, u, parent, &body.display_name, body.is_hidden)
        .map_err(|e| e.to_graph())?;
    one(ctx, world, t, u, f, 201)
}

/// The state sealed in `mailFolders/delta` links (all of a mailbox's folders, flattened).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FolderDeltaState {
    /// Marks a folder-hierarchy token, so a message delta token never opens as one.
    fd: bool,
    /// Tenant id and user index: the token only works where it was issued.
    t: String,
    u: usize,
    /// World epoch and mailbox sync generation at issue.
    ep: u64,
    g: u64,
    /// When the state was created (unix seconds); too old means 410.
    iat: i64,
    /// Sequence the round reads changes after; `None` for a first round.
    base: Option<u64>,
    /// The round's end sequence; `None` in a deltaLink.
    end: Option<u64>,
    /// First round: the next folder index to read. Later round: the last log entry read.
    cur: u64,
    /// `$select` of the first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sel: Option<Vec<String>>,
}

fn sync_state_not_found(ctx: &Ctx, location: &str) -> GraphError {
    GraphError::new(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found; it may have expired or been reset. resyncRequired",
    )
    .with_header("location", format!("{location}?$deltatoken="))
    .with_header("request-id", ctx.request_id.clone())
}

/// `GET /users/{u}/mailFolders/delta`: every folder below the root, flattened, each with its
/// `parentFolderId`; later rounds send the folders created, renamed or moved since, and
/// `@removed` for deleted ones. Rounds, tokens and 410 work as in message delta.
fn delta(ctx: &Ctx, world: &World, t: usize, u: usize) -> GraphResult {
    let user = &world.tenants[t].users[u];
    let location = format!("{}/users/{}/mailFolders/delta", ctx.graph_base, user.id);
    let now = chrono::Utc::now().timestamp();
    let token = ctx
        .req
        .query("$skiptoken")
        .or(ctx.req.query("$deltatoken"))
        .filter(|tok| !tok.is_empty());
    let mut state = match token {
        None => FolderDeltaState {
            fd: true,
            t: world.tenants[t].id.clone(),
            u,
            ep: world.epoch,
            g: user.sync_generation,
            iat: now,
            base: None,
            end: Some(world.seq),
            cur: 0,
            sel: folder_select(ctx)?,
        },
        Some(tok) => {
            let s: FolderDeltaState = ctx
                .sim
                .sealer
                .open(tok)
                .filter(|s: &FolderDeltaState| s.fd)
                .ok_or_else(|| sync_state_not_found(ctx, &location))?;
            if s.t != world.tenants[t].id
                || s.u != u
                || s.ep != world.epoch
                || s.g != user.sync_generation
                || s.iat + ctx.sim.protocol().sync_state_secs < now
            {
                return Err(sync_state_not_found(ctx, &location));
            }
            s
        }
    };
    if state.end.is_none() {
        state.end = Some(world.seq);
        state.cur = state.base.unwrap_or(0);
        state.iat = now;
    }
    let end = state.end.expect("set above");
    let page_size = ctx
        .prefer
        .max_page_size
        .unwrap_or(ctx.sim.protocol().default_delta_page)
        .clamp(1, ctx.sim.protocol().max_page);
    let select = state.sel.clone();
    let render = |f: usize| {
        let folder = &user.folders[f];
        if folder.deleted {
            json!({"@odata.type": "#microsoft.graph.mailFolder", "id": folder.id, "@removed": {"reason": "deleted"}})
        } else {
            let mut v = Map::new();
            v.insert("@odata.type".into(), "#microsoft.graph.mailFolder".into());
            v.extend(folder_json(world, t, u, f, select.as_deref()));
            Value::Object(v)
        }
    };
    let mut items = Vec::new();
    let mut done = true;
    match state.base {
        None => {
            let mut f = state.cur as usize;
            while f < user.folders.len() {
                let folder = &user.folders[f];
                f += 1;
                if folder.parent.is_none() || folder.deleted || folder.created > end {
                    continue;
                }
                items.push(render(f - 1));
                if items.len() >= page_size {
                    break;
                }
            }
            state.cur = f as u64;
            done = !(f..user.folders.len()).any(|g| {
                let folder = &user.folders[g];
                folder.parent.is_some() && !folder.deleted && folder.created <= end
            });
        }
        Some(base) => {
            let start = state.cur.max(base);
            for (&seq, &f) in user.folder_log.range(after(start, end)) {
                state.cur = seq;
                let latest = user.folders[f].changed;
                if latest > seq && latest <= end {
                    continue; // a later change in this round reports the folder
                }
                items.push(render(f));
                if items.len() >= page_size {
                    done = user.folder_log.range(after(seq, end)).next().is_none();
                    break;
                }
            }
        }
    }
    ctx.sim
        .stats
        .delta_items_served
        .fetch_add(items.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        format!("{}/$metadata#Collection(mailFolder)", ctx.graph_base).into(),
    );
    if done {
        let next = FolderDeltaState {
            base: state.end,
            end: None,
            cur: 0,
            iat: now,
            ..state
        };
        body.insert(
            "@odata.deltaLink".into(),
            format!("{location}?$deltatoken={}", ctx.sim.sealer.seal(&next)).into(),
        );
    } else {
        body.insert(
            "@odata.nextLink".into(),
            format!("{location}?$skiptoken={}", ctx.sim.sealer.seal(&state)).into(),
        );
    }
    body.insert("value".into(), items.into());
    Ok(SimResponse::json(200, &body))
}
