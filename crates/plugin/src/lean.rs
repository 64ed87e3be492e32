//! Contract 0.2, the lean records: what a 0.2 plugin is handed and how its answers come back.
//!
//! The host builds whole records (0.1's types, [`crate::bindings::types`]). Handing a record to
//! a plugin costs one call into the plugin's allocator per string and per list, empty ones
//! included (`cabi_realloc`, tens of nanoseconds each): an 0.1 email of 4 addresses carries
//! about 23, which made even a plugin that reads nothing cost ~2.5 us a record. A 0.2 plugin
//! names the parts it reads in `describe().fields` ([`Fields`]); [`with_emails`],
//! [`with_events`] and [`with_match_inputs`] project a batch onto those parts, leaving the rest
//! `none` (a `none` crosses as a discriminant, with no allocation). A projection borrows: its
//! strings are the host record's own (`&str`), and its lists are slices of one arena per
//! batch, so projecting a batch copies no string and allocates a few vectors in all; wasmtime
//! copies each declared string once, from the host's record into the plugin's memory. Its
//! answers (verdicts, CRM records, matches) are converted back to 0.1's types, which have the
//! same shapes.
//!
//! The host imports of 0.2 are 0.1's ([`crate::host`]) with 0.2's types, converted here too.

use std::ops::Range;

use super::bindings::lean::host::Host as LeanHost;
use super::bindings::lean::types as new;
use super::bindings::types as old;
use super::host::HostState;

pub use new::Fields;

/// A value converted between the two contracts' generated types, which have the same shape
/// where this is implemented (the generated types of two WIT packages are distinct Rust types).
pub(crate) trait Conv<T> {
    fn conv(self) -> T;
}

impl<A: Conv<B>, B> Conv<Option<B>> for Option<A> {
    fn conv(self) -> Option<B> {
        self.map(Conv::conv)
    }
}

impl<A: Conv<B>, B> Conv<Vec<B>> for Vec<A> {
    fn conv(self) -> Vec<B> {
        self.into_iter().map(Conv::conv).collect()
    }
}

macro_rules! same {
    ($($t:ty),*) => { $(impl Conv<$t> for $t { fn conv(self) -> $t { self } })* };
}
same!(String, bool, u32, u64);

/// Both directions of an enum whose cases are the same in 0.1 and 0.2.
macro_rules! enums {
    ($($name:ident: $($case:ident),+;)*) => {$(
        impl Conv<new::$name> for old::$name {
            fn conv(self) -> new::$name {
                match self { $(old::$name::$case => new::$name::$case),+ }
            }
        }
        impl Conv<old::$name> for new::$name {
            fn conv(self) -> old::$name {
                match self { $(new::$name::$case => old::$name::$case),+ }
            }
        }
    )*};
}

/// A 0.2 record the host receives (an answer, a descriptor's part) as 0.1's, whose fields are
/// the same: `new::NAME => old::NAME { fields }`.
macro_rules! into_old {
    ($($new:ident => $old:ident { $($field:ident),+ })*) => {$(
        impl Conv<old::$old> for new::$new {
            fn conv(self) -> old::$old {
                old::$old { $($field: self.$field.conv()),+ }
            }
        }
    )*};
}

/// A 0.1 record the host answers a 0.2 plugin's import with, as 0.2's.
macro_rules! into_new {
    ($($name:ident { $($field:ident),+ })*) => {$(
        impl Conv<new::$name> for old::$name {
            fn conv(self) -> new::$name {
                new::$name { $($field: self.$field.conv()),+ }
            }
        }
    )*};
}

enums! {
    Level: Org, Tenant, User;
    Effect: Exclude, Include;
    RuleTarget: AnyAddress, Sender, Recipient, Subject;
    AddressRole: From, Sender, To, Cc, Bcc, ReplyTo;
    Direction: Sent, Received;
    BodyType: Text, Html;
    Importance: Low, Normal, High;
    Sensitivity: Normal, Personal, Private, Confidential;
    ShowAs: Free, Tentative, Busy, Oof, WorkingElsewhere, Unknown;
    Response: None, Organizer, TentativelyAccepted, Accepted, Declined, NotResponded;
    AttendeeKind: Required, Optional, Resource;
    PluginKind: Exclusion, Mapping, Matching;
    Decision: Keep, Drop;
    ShowTimeAs: Busy, OutOfOffice, Free;
    AttendeeStatus: New, Accepted, Declined;
    MatchField: Email, AlternateEmail, ContactPoint, Thread;
    LogLevel: Debug, Info, Warn, Error;
}

into_new! {
    Rule { id, level, effect, target, pattern }
    Contact { id, name, entity, email, alternate_email, contact_points }
    Entity { id, name, kind }
}

into_old! {
    ConfigOption => ConfigOption { key, description, default }
    Verdict => Verdict { decision, rule, reason }
    CrmEmail => CrmEmail {
        external_id, internet_message_id, conversation_id, mailbox, direction, from, to, cc,
        bcc, subject, description, sent, received, importance, categories, attachment_count,
        attachment_bytes
    }
    CrmAttendee => CrmAttendee { email, name, status, optional }
    CrmEvent => CrmEvent {
        external_id, subject, description, all_day, start, end, assigned_to, attendees,
        location, resources, recurring, private, reminder_set, reminder_at, show_time_as,
        status, teams_meeting, teams_url
    }
    ContactMatchResult => ContactMatch { contact, entity, address, field, reason }
}

/// A 0.2 descriptor as the host keeps it: 0.1's, and the parts the plugin reads apart.
pub(crate) fn descriptor(d: new::Descriptor) -> (old::Descriptor, Fields) {
    let fields = d.fields;
    let d = old::Descriptor {
        name: d.name,
        version: d.version,
        kind: d.kind.conv(),
        config: d.config.conv(),
    };
    (d, fields)
}

/// The parts of a record a plugin declared, by their names in `wit/plugin.wit` (for `plugin
/// list` and the errors that name them).
pub fn field_names(f: Fields) -> Vec<&'static str> {
    [
        (Fields::MAILBOX, "mailbox"),
        (Fields::USER, "user"),
        (Fields::FOLDER, "folder"),
        (Fields::ADDRESSES, "addresses"),
        (Fields::NAMES, "names"),
        (Fields::SUBJECT, "subject"),
        (Fields::BODY, "body"),
        (Fields::PREVIEW, "preview"),
        (Fields::DATES, "dates"),
        (Fields::CATEGORIES, "categories"),
        (Fields::HEADERS, "headers"),
        (Fields::ATTACHMENTS, "attachments"),
        (Fields::THREAD, "thread"),
        (Fields::LOCATION, "location"),
        (Fields::RECURRENCE, "recurrence"),
        (Fields::ONLINE_MEETING, "online-meeting"),
    ]
    .into_iter()
    .filter(|(flag, _)| f.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}

/// The lists of one batch's projected records, one arena per element type: a batch's
/// projection allocates these few vectors, never one per record and list.
#[derive(Default)]
struct Arena<'a> {
    addresses: Vec<new::Address<'a>>,
    strings: Vec<&'a str>,
    headers: Vec<new::Header<'a>>,
    attachments: Vec<new::AttachmentInfo<'a>>,
    attendees: Vec<new::Attendee<'a>>,
    locations: Vec<new::Location<'a>>,
    matches: Vec<new::ContactMatchParam<'a>>,
}

/// Where one record's lists are in the [`Arena`] (`None`: not declared).
#[derive(Default)]
struct Spans {
    addresses: Option<Range<usize>>,
    categories: Option<Range<usize>>,
    headers: Option<Range<usize>>,
    attachments: Option<Range<usize>>,
    attendees: Option<Range<usize>>,
    locations: Option<Range<usize>>,
}

/// Appends `items` to `list` when `wanted`, and says where they are.
fn push<T>(
    list: &mut Vec<T>,
    wanted: bool,
    items: impl Iterator<Item = T>,
) -> Option<Range<usize>> {
    wanted.then(|| {
        let start = list.len();
        list.extend(items);
        start..list.len()
    })
}

/// The arena's `span` of `list`, when declared.
fn slice<'l, T>(list: &'l [T], span: &Option<Range<usize>>) -> Option<&'l [T]> {
    span.clone().map(|r| &list[r])
}

fn address(a: &old::Address, names: bool) -> new::Address<'_> {
    new::Address {
        role: a.role.conv(),
        email: &a.email,
        name: names.then_some(a.name.as_str()),
    }
}

fn body(b: &old::Body) -> new::Body<'_> {
    new::Body {
        content_type: b.content_type.conv(),
        content: &b.content,
        truncated: b.truncated,
    }
}

/// `value()` when `f` holds `part`, else `None`: an undeclared part never crosses.
fn when<T>(f: Fields, part: Fields, value: impl FnOnce() -> T) -> Option<T> {
    f.contains(part).then(value)
}

impl<'a> Arena<'a> {
    /// Appends the lists of an email that a plugin declaring `f` receives.
    fn email(&mut self, e: &'a old::Email, f: Fields) -> Spans {
        let names = f.contains(Fields::NAMES);
        Spans {
            addresses: push(
                &mut self.addresses,
                f.contains(Fields::ADDRESSES),
                e.addresses.iter().map(|a| address(a, names)),
            ),
            categories: push(
                &mut self.strings,
                f.contains(Fields::CATEGORIES),
                e.categories.iter().map(String::as_str),
            ),
            headers: push(
                &mut self.headers,
                f.contains(Fields::HEADERS),
                e.headers.iter().map(|h| new::Header {
                    name: &h.name,
                    value: &h.value,
                }),
            ),
            attachments: push(
                &mut self.attachments,
                f.contains(Fields::ATTACHMENTS),
                e.attachments.iter().map(|a| new::AttachmentInfo {
                    name: &a.name,
                    content_type: &a.content_type,
                    size: a.size,
                    is_inline: a.is_inline,
                }),
            ),
            ..Spans::default()
        }
    }

    /// Appends the lists of an event that a plugin declaring `f` receives.
    fn event(&mut self, e: &'a old::Event, f: Fields) -> Spans {
        let names = f.contains(Fields::NAMES);
        Spans {
            attendees: push(
                &mut self.attendees,
                f.contains(Fields::ADDRESSES),
                e.attendees.iter().map(|a| new::Attendee {
                    email: &a.email,
                    name: names.then_some(a.name.as_str()),
                    kind: a.kind.conv(),
                    response: a.response.conv(),
                }),
            ),
            locations: push(
                &mut self.locations,
                f.contains(Fields::LOCATION),
                e.locations.iter().map(|l| new::Location {
                    display_name: &l.display_name,
                    email: l.email.as_deref(),
                    location_type: &l.location_type,
                }),
            ),
            categories: push(
                &mut self.strings,
                f.contains(Fields::CATEGORIES),
                e.categories.iter().map(String::as_str),
            ),
            ..Spans::default()
        }
    }
}

/// Calls `call` with `batch` as a plugin that declared `f` receives it.
pub(crate) fn with_emails<R>(
    batch: &[old::Email],
    f: Fields,
    call: impl FnOnce(&[new::Email<'_>]) -> R,
) -> R {
    let mut arena = Arena::default();
    let spans: Vec<Spans> = batch.iter().map(|e| arena.email(e, f)).collect();
    let lean: Vec<new::Email<'_>> = batch
        .iter()
        .zip(&spans)
        .map(|(e, s)| email(e, f, &arena, s))
        .collect();
    call(&lean)
}

/// Calls `call` with `batch` as a plugin that declared `f` receives it.
pub(crate) fn with_events<R>(
    batch: &[old::Event],
    f: Fields,
    call: impl FnOnce(&[new::Event<'_>]) -> R,
) -> R {
    let mut arena = Arena::default();
    let spans: Vec<Spans> = batch.iter().map(|e| arena.event(e, f)).collect();
    let lean: Vec<new::Event<'_>> = batch
        .iter()
        .zip(&spans)
        .map(|(e, s)| event(e, f, &arena, s))
        .collect();
    call(&lean)
}

/// Calls `call` with `batch` as a plugin that declared `f` receives it: whole, with display
/// names only when it declared `names`.
pub(crate) fn with_match_inputs<R>(
    batch: &[old::MatchInput],
    f: Fields,
    call: impl FnOnce(&[new::MatchInput<'_>]) -> R,
) -> R {
    let names = f.contains(Fields::NAMES);
    let mut arena = Arena::default();
    let spans: Vec<(Range<usize>, Range<usize>)> = batch
        .iter()
        .map(|m| {
            let addresses = push(
                &mut arena.addresses,
                true,
                m.addresses.iter().map(|a| address(a, names)),
            )
            .unwrap_or_default();
            let start = arena.matches.len();
            arena
                .matches
                .extend(m.thread_matches.iter().map(|c| new::ContactMatchParam {
                    contact: &c.contact,
                    entity: c.entity.as_deref(),
                    address: &c.address,
                    field: c.field.conv(),
                    reason: &c.reason,
                }));
            (addresses, start..arena.matches.len())
        })
        .collect();
    let lean: Vec<new::MatchInput<'_>> = batch
        .iter()
        .zip(spans)
        .map(|(m, (addresses, matches))| new::MatchInput {
            record_id: &m.record_id,
            user: m.user.as_deref(),
            addresses: &arena.addresses[addresses],
            conversation_id: m.conversation_id.as_deref(),
            thread_matches: &arena.matches[matches],
        })
        .collect();
    call(&lean)
}

/// An email as a plugin that declared `f` receives it, its lists in `arena` at `spans`.
fn email<'a>(e: &'a old::Email, f: Fields, arena: &'a Arena<'a>, spans: &Spans) -> new::Email<'a> {
    let dates = f.contains(Fields::DATES);
    let thread = f.contains(Fields::THREAD);
    new::Email {
        id: &e.id,
        direction: e.direction.conv(),
        importance: e.importance.conv(),
        is_draft: e.is_draft,
        mailbox: when(f, Fields::MAILBOX, || e.mailbox.as_str()),
        user: when(f, Fields::USER, || e.user.as_deref()).flatten(),
        folder: when(f, Fields::FOLDER, || e.folder.as_str()),
        addresses: slice(&arena.addresses, &spans.addresses),
        subject: when(f, Fields::SUBJECT, || e.subject.as_str()),
        body: when(f, Fields::BODY, || body(&e.body)),
        preview: when(f, Fields::PREVIEW, || e.preview.as_str()),
        sent: e.sent.as_deref().filter(|_| dates),
        received: e.received.as_deref().filter(|_| dates),
        categories: slice(&arena.strings, &spans.categories),
        headers: slice(&arena.headers, &spans.headers),
        attachments: slice(&arena.attachments, &spans.attachments),
        internet_message_id: e.internet_message_id.as_deref().filter(|_| thread),
        conversation_id: e.conversation_id.as_deref().filter(|_| thread),
    }
}

/// An event as a plugin that declared `f` receives it, its lists in `arena` at `spans`.
fn event<'a>(e: &'a old::Event, f: Fields, arena: &'a Arena<'a>, spans: &Spans) -> new::Event<'a> {
    let names = f.contains(Fields::NAMES);
    let addresses = f.contains(Fields::ADDRESSES);
    let dates = f.contains(Fields::DATES);
    let location = f.contains(Fields::LOCATION);
    let online = f.contains(Fields::ONLINE_MEETING);
    new::Event {
        id: &e.id,
        is_all_day: e.is_all_day,
        sensitivity: e.sensitivity.conv(),
        reminder_minutes_before_start: e.reminder_minutes_before_start,
        show_as: e.show_as.conv(),
        response_status: e.response_status.conv(),
        is_online_meeting: e.is_online_meeting,
        is_cancelled: e.is_cancelled,
        is_draft: e.is_draft,
        mailbox: when(f, Fields::MAILBOX, || e.mailbox.as_str()),
        user: when(f, Fields::USER, || e.user.as_deref()).flatten(),
        subject: when(f, Fields::SUBJECT, || e.subject.as_str()),
        body: when(f, Fields::BODY, || body(&e.body)),
        start: dates.then_some(e.start.as_str()),
        end: dates.then_some(e.end.as_str()),
        organizer: e
            .organizer
            .as_ref()
            .filter(|_| addresses)
            .map(|a| address(a, names)),
        attendees: slice(&arena.attendees, &spans.attendees),
        location: location.then_some(e.location.as_str()),
        locations: slice(&arena.locations, &spans.locations),
        recurrence: when(f, Fields::RECURRENCE, || e.recurrence.as_deref()).flatten(),
        online_meeting_provider: e.online_meeting_provider.as_deref().filter(|_| online),
        online_meeting_url: e.online_meeting_url.as_deref().filter(|_| online),
        categories: slice(&arena.strings, &spans.categories),
    }
}

/// The 0.2 host imports: 0.1's ([`crate::host`]), the same bounds, 0.2's types.
impl LeanHost for HostState {
    fn rules(&mut self, user: Option<String>) -> wasmtime::Result<Vec<new::Rule>> {
        super::bindings::host::Host::rules(self, user).map(Conv::conv)
    }

    fn internal_domains(&mut self) -> wasmtime::Result<Vec<String>> {
        super::bindings::host::Host::internal_domains(self)
    }

    fn contacts_by_email(&mut self, emails: Vec<String>) -> wasmtime::Result<Vec<new::Contact>> {
        super::bindings::host::Host::contacts_by_email(self, emails).map(Conv::conv)
    }

    fn entity_by_id(&mut self, id: String) -> wasmtime::Result<Option<new::Entity>> {
        super::bindings::host::Host::entity_by_id(self, id).map(Conv::conv)
    }

    fn sync_users(&mut self, emails: Vec<String>) -> wasmtime::Result<Vec<bool>> {
        super::bindings::host::Host::sync_users(self, emails)
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        super::bindings::host::Host::config(self, key)
    }

    fn log(&mut self, level: new::LogLevel, message: String) -> wasmtime::Result<()> {
        super::bindings::host::Host::log(self, level.conv(), message)
    }
}
