//! Contract 0.2, the lean records: what a 0.2 plugin is handed and how its answers come back.
//!
//! The host builds whole records (0.1's types, [`crate::bindings::types`]). Handing a record to
//! a plugin costs one call into the plugin's allocator per string and per list, empty ones
//! included (`cabi_realloc`, tens of nanoseconds each): an 0.1 email of 4 addresses carries
//! about 23, which made even a plugin that reads nothing cost ~2.5 us a record. A 0.2 plugin
//! names the parts it reads in `describe().fields` ([`Fields`]); [`email`], [`event`] and
//! [`match_input`] project a record onto those parts, leaving the rest `none` (a `none`
//! crosses as a discriminant, with no allocation). Its answers (verdicts, CRM records,
//! matches) are converted back to 0.1's types, which have the same shapes.
//!
//! The host imports of 0.2 are 0.1's ([`crate::host`]) with 0.2's types, converted here too.

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

/// Both directions of a record whose fields are the same in 0.1 and 0.2.
macro_rules! records {
    ($($name:ident { $($field:ident),+ })*) => {$(
        impl Conv<new::$name> for old::$name {
            fn conv(self) -> new::$name {
                new::$name { $($field: self.$field.conv()),+ }
            }
        }
        impl Conv<old::$name> for new::$name {
            fn conv(self) -> old::$name {
                old::$name { $($field: self.$field.conv()),+ }
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

records! {
    Rule { id, level, effect, target, pattern }
    Body { content_type, content, truncated }
    Header { name, value }
    AttachmentInfo { name, content_type, size, is_inline }
    Location { display_name, email, location_type }
    Contact { id, name, entity, email, alternate_email, contact_points }
    Entity { id, name, kind }
    ConfigOption { key, description, default }
    Verdict { decision, rule, reason }
    CrmEmail {
        external_id, internet_message_id, conversation_id, mailbox, direction, from, to, cc,
        bcc, subject, description, sent, received, importance, categories, attachment_count,
        attachment_bytes
    }
    CrmAttendee { email, name, status, optional }
    CrmEvent {
        external_id, subject, description, all_day, start, end, assigned_to, attendees,
        location, resources, recurring, private, reminder_set, reminder_at, show_time_as,
        status, teams_meeting, teams_url
    }
    ContactMatch { contact, entity, address, field, reason }
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

fn address(a: &old::Address, names: bool) -> new::Address {
    new::Address {
        role: a.role.conv(),
        email: a.email.clone(),
        name: names.then(|| a.name.clone()),
    }
}

/// `value()` when `f` holds `part`, else `None`: an undeclared part never crosses.
fn when<T>(f: Fields, part: Fields, value: impl FnOnce() -> T) -> Option<T> {
    f.contains(part).then(value)
}

/// An email as a plugin that declared `f` receives it.
pub(crate) fn email(e: &old::Email, f: Fields) -> new::Email {
    let names = f.contains(Fields::NAMES);
    let dates = f.contains(Fields::DATES);
    let thread = f.contains(Fields::THREAD);
    new::Email {
        id: e.id.clone(),
        direction: e.direction.conv(),
        importance: e.importance.conv(),
        is_draft: e.is_draft,
        mailbox: when(f, Fields::MAILBOX, || e.mailbox.clone()),
        user: when(f, Fields::USER, || e.user.clone()).flatten(),
        folder: when(f, Fields::FOLDER, || e.folder.clone()),
        addresses: when(f, Fields::ADDRESSES, || {
            e.addresses.iter().map(|a| address(a, names)).collect()
        }),
        subject: when(f, Fields::SUBJECT, || e.subject.clone()),
        body: when(f, Fields::BODY, || e.body.clone().conv()),
        preview: when(f, Fields::PREVIEW, || e.preview.clone()),
        sent: if dates { e.sent.clone() } else { None },
        received: if dates { e.received.clone() } else { None },
        categories: when(f, Fields::CATEGORIES, || e.categories.clone()),
        headers: when(f, Fields::HEADERS, || e.headers.clone().conv()),
        attachments: when(f, Fields::ATTACHMENTS, || e.attachments.clone().conv()),
        internet_message_id: if thread {
            e.internet_message_id.clone()
        } else {
            None
        },
        conversation_id: if thread {
            e.conversation_id.clone()
        } else {
            None
        },
    }
}

/// An event as a plugin that declared `f` receives it.
pub(crate) fn event(e: &old::Event, f: Fields) -> new::Event {
    let names = f.contains(Fields::NAMES);
    let addresses = f.contains(Fields::ADDRESSES);
    let dates = f.contains(Fields::DATES);
    let location = f.contains(Fields::LOCATION);
    let online = f.contains(Fields::ONLINE_MEETING);
    new::Event {
        id: e.id.clone(),
        is_all_day: e.is_all_day,
        sensitivity: e.sensitivity.conv(),
        reminder_minutes_before_start: e.reminder_minutes_before_start,
        show_as: e.show_as.conv(),
        response_status: e.response_status.conv(),
        is_online_meeting: e.is_online_meeting,
        is_cancelled: e.is_cancelled,
        is_draft: e.is_draft,
        mailbox: when(f, Fields::MAILBOX, || e.mailbox.clone()),
        user: when(f, Fields::USER, || e.user.clone()).flatten(),
        subject: when(f, Fields::SUBJECT, || e.subject.clone()),
        body: when(f, Fields::BODY, || e.body.clone().conv()),
        start: dates.then(|| e.start.clone()),
        end: dates.then(|| e.end.clone()),
        organizer: if addresses {
            e.organizer.as_ref().map(|a| address(a, names))
        } else {
            None
        },
        attendees: addresses.then(|| {
            e.attendees
                .iter()
                .map(|a| new::Attendee {
                    email: a.email.clone(),
                    name: names.then(|| a.name.clone()),
                    kind: a.kind.conv(),
                    response: a.response.conv(),
                })
                .collect()
        }),
        location: location.then(|| e.location.clone()),
        locations: location.then(|| e.locations.clone().conv()),
        recurrence: when(f, Fields::RECURRENCE, || e.recurrence.clone()).flatten(),
        online_meeting_provider: if online {
            e.online_meeting_provider.clone()
        } else {
            None
        },
        online_meeting_url: if online {
            e.online_meeting_url.clone()
        } else {
            None
        },
        categories: when(f, Fields::CATEGORIES, || e.categories.clone()),
    }
}

/// A matching input as a plugin that declared `f` receives it: whole, with display names only
/// when it declared `names`.
pub(crate) fn match_input(m: &old::MatchInput, f: Fields) -> new::MatchInput {
    let names = f.contains(Fields::NAMES);
    new::MatchInput {
        record_id: m.record_id.clone(),
        user: m.user.clone(),
        addresses: m.addresses.iter().map(|a| address(a, names)).collect(),
        conversation_id: m.conversation_id.clone(),
        thread_matches: m.thread_matches.clone().conv(),
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
