//! A seeded, deterministic generator of realistic tenants.
//!
//! Each mailbox gets mail across more than six months: clients writing in, the user writing
//! out, colleagues writing to each other (one copy per mailbox under one internetMessageId),
//! newsletters and automated senders, threads with replies, HTML bodies, and attachments from a
//! few bytes to beyond the inline limit. Calendars are filled by [`super::calendar`]. The same
//! options always give the same ids, counts and contents (dates are relative to `now`).

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::ids::{message_id, mix64, Rng};
use super::model::{
    App, AppSecret, Attachment, AttachmentKind, Content, Group, MailboxKind, MessageContent,
    Recipient, Room, Tenant, User, World,
};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Seeds every random choice: the same options always make the same world.
    pub seed: u64,
    /// How many tenants to make.
    pub tenants: usize,
    /// People per tenant.
    pub users: usize,
    /// Shared mailboxes per tenant.
    pub shared: usize,
    /// Messages each mailbox starts (internal mail also lands in colleagues' mailboxes).
    pub messages: usize,
    /// Calendar items per person.
    pub events: usize,
    /// The instant "now" for the generated history; `None` means the real now.
    pub now: Option<DateTime<Utc>>,
    /// Share of messages with attachments (0.18 by default; 0 for a benchmark that prices
    /// the message pipeline alone). Changing it changes nothing else of the world.
    pub attachment_rate: f64,
    /// Years of history. 0 keeps the classic 200 days for ordinary mailboxes (and 3 years for
    /// busy ones): worlds generated before this option existed stay byte-for-byte the same.
    pub years: u32,
    /// How many people, counted from the first after the tenant's admin, have a busy
    /// advisor's mailbox: `busy_messages` more messages over the years, half of them in the
    /// last six months, filed as a real advisor files them (Inbox/Clients/<client>,
    /// Inbox/Projects/<year>/<project>, Inbox/Newsletters, old mail in Archive, some in Junk
    /// and Deleted Items). Real mailboxes look like this, and they are where a sync that reads
    /// only Inbox, or trusts a capped delta round, loses mail.
    pub busy_users: usize,
    /// Messages a busy mailbox gets on top of its ordinary ones.
    pub busy_messages: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            tenants: 1,
            users: 5,
            shared: 1,
            messages: 200,
            events: 20,
            now: None,
            attachment_rate: 0.18,
            years: 0,
            busy_users: 0,
            busy_messages: 20_000,
        }
    }
}

impl GenerateOptions {
    /// The world `m365sync serve --sandbox` starts with: today's five people and a shared
    /// mailbox, the first person after the admin a busy advisor (20,000 more messages over
    /// three years, more than 5,000 of them received in Inbox in the last six months, older
    /// mail in Archive, mail filed in nested folders), so a new user sees the product sync a
    /// mailbox shaped like theirs.
    pub fn sandbox() -> GenerateOptions {
        GenerateOptions {
            busy_users: 1,
            busy_messages: 20_000,
            ..GenerateOptions::default()
        }
    }
}

/// A generated world.
pub struct Generated {
    /// The world itself.
    pub world: World,
}

pub(crate) const FIRST: [&str; 24] = [
    "Adele",
    "Alex",
    "Diego",
    "Grady",
    "Henrietta",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Sofia",
    "Tomas",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
    "Zoe",
    "Omar",
];
pub(crate) const LAST: [&str; 16] = [
    "Vance",
    "Wilber",
    "Siciliani",
    "Archie",
    "Gonzalez",
    "Lambert",
    "Nguyen",
    "Sherman",
    "Holt",
    "Patel",
    "Kim",
    "Okafor",
    "Rossi",
    "Berg",
    "Castro",
    "Moreau",
];
const TENANT_NAMES: [(&str, &str); 6] = [
    ("Contoso Wealth", "contoso.example"),
    ("Fabrikam Advisors", "fabrikam.example"),
    ("Northwind Partners", "northwind.example"),
    ("Tailspin Capital", "tailspin.example"),
    ("Woodgrove Family Office", "woodgrove.example"),
    ("Litware Planning", "litware.example"),
];
const CLIENT_DOMAINS: [&str; 6] = [
    "acme-holdings.example",
    "globex.example",
    "initech.example",
    "umbrella-trust.example",
    "mail.example",
    "hooli.example",
];
pub(crate) const AUTOMATED: [(&str, &str); 5] = [
    ("Market Weekly", "newsletter@marketweekly.example"),
    ("Salesforce", "notifications@salesforce.example"),
    ("DocuSign", "no-reply@docusign.example"),
    ("LinkedIn", "messages-noreply@linkedin.example"),
    ("Microsoft 365", "no-reply@microsoft.example"),
];
pub(crate) const TOPICS: [&str; 16] = [
    "Quarterly portfolio review",
    "Trust documents",
    "Rebalancing proposal",
    "Tax loss harvesting",
    "Estate plan update",
    "Meeting follow-up",
    "Account transfer",
    "Retirement income plan",
    "Insurance renewal",
    "Beneficiary forms",
    "College savings",
    "Fee schedule",
    "Risk questionnaire",
    "Charitable giving",
    "Onboarding checklist",
    "Market outlook",
];
const WORDS: [&str; 32] = [
    "portfolio",
    "allocation",
    "review",
    "client",
    "meeting",
    "proposal",
    "documents",
    "signature",
    "trust",
    "estate",
    "quarter",
    "performance",
    "fees",
    "transfer",
    "account",
    "income",
    "tax",
    "plan",
    "update",
    "schedule",
    "attached",
    "please",
    "confirm",
    "thanks",
    "regards",
    "next",
    "week",
    "call",
    "details",
    "questions",
    "forms",
    "balance",
];

fn person(
    rng: &mut Rng,
    domain: &str,
    taken: &mut std::collections::HashSet<String>,
) -> (String, String, String) {
    loop {
        let first = *rng.pick(&FIRST);
        let last = *rng.pick(&LAST);
        let local = format!(
            "{}.{}",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase()
        );
        if taken.insert(local.clone()) {
            return (
                first.to_string(),
                last.to_string(),
                format!("{local}@{domain}"),
            );
        }
        if taken.len() >= FIRST.len() * LAST.len() {
            let n = taken.len();
            let local = format!("user{n}");
            taken.insert(local.clone());
            return ("User".into(), n.to_string(), format!("{local}@{domain}"));
        }
    }
}

pub(crate) fn html_body(rng: &mut Rng, greeting: &str, signer: &str) -> String {
    let paragraphs = 1 + rng.below(4) as usize;
    let mut body = format!("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><p>Hi {greeting},</p>");
    for _ in 0..paragraphs {
        body.push_str("<p>");
        let words = 12 + rng.below(50) as usize;
        for i in 0..words {
            if i > 0 {
                body.push(' ');
            }
            let word = *rng.pick(&WORDS);
            body.push_str(word);
        }
        body.push_str(".</p>");
    }
    body.push_str(&format!("<p>Best regards,<br>{signer}</p></body></html>"));
    body
}

fn attachments(rng: &mut Rng, seq: u64, at: DateTime<Utc>, rate: f64) -> Vec<Attachment> {
    if !rng.chance(rate) {
        return Vec::new();
    }
    let count = 1 + rng.below(3) as usize;
    (0..count)
        .map(|i| {
            let id = format!(
                "AAMkAGAtt{}",
                STANDARD.encode(mix64(seq * 7 + i as u64).to_be_bytes())
            );
            let roll = rng.unit();
            let (name, kind) = if roll < 0.04 {
                (
                    "Forwarded message.eml".to_string(),
                    AttachmentKind::Item {
                        subject: "Original request".into(),
                        body: "<p>Please see below.</p>".into(),
                    },
                )
            } else if roll < 0.10 {
                (
                    "Shared folder".to_string(),
                    AttachmentKind::Reference {
                        source_url: format!(
                            "https://contoso.sharepoint.example/sites/clients/doc{seq}.docx"
                        ),
                    },
                )
            } else {
                let size = if rng.chance(0.03) {
                    3 * 1024 * 1024 + rng.below(3 * 1024 * 1024)
                } else if rng.chance(0.1) {
                    1 + rng.below(64)
                } else {
                    2_000 + rng.below(400_000)
                };
                let (ext, ct) = *rng.pick(&[
                    ("pdf", "application/pdf"),
                    (
                        "docx",
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    ),
                    (
                        "xlsx",
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    ),
                    ("png", "image/png"),
                    ("txt", "text/plain"),
                ]);
                let inline = ext == "png" && rng.chance(0.5);
                (
                    format!("{}-{seq}.{ext}", rng.pick(&WORDS)),
                    AttachmentKind::File {
                        content_type: ct.to_string(),
                        content: Content::Generated {
                            seed: mix64(seq ^ (i as u64) << 48),
                            len: size,
                        },
                        is_inline: inline,
                        content_id: inline.then(|| format!("image{i}@{seq}")),
                    },
                )
            };
            Attachment {
                id,
                name,
                kind,
                last_modified: at,
            }
        })
        .collect()
}

/// Builds a tenant's directory: an app with two valid secrets, people, shared mailboxes,
/// groups and rooms.
fn directory(world: &mut World, rng: &mut Rng, opts: &GenerateOptions, index: usize) -> usize {
    let (name, domain) = TENANT_NAMES[index % TENANT_NAMES.len()];
    let domain = if index < TENANT_NAMES.len() {
        domain.to_string()
    } else {
        format!("t{index}.{domain}")
    };
    let tenant_id = rng.guid();
    let t = world.tenants.len();
    world.tenants.push(Tenant::new(
        tenant_id,
        domain.clone(),
        name.to_string(),
        format!("admin@{domain}"),
    ));
    world.tenants[t].apps.push(App {
        client_id: rng.guid(),
        display_name: "m365sync".into(),
        secrets: (0..2)
            .map(|_| AppSecret {
                value: format!(
                    "sim~{}",
                    STANDARD.encode(rng.bytes(24)).replace(['+', '/', '='], "x")
                ),
                expires_at: None,
            })
            .collect(),
        roles: [
            "Mail.ReadWrite",
            "Mail.Send",
            "Calendars.ReadWrite",
            "User.Read.All",
            "Group.Read.All",
            "Place.Read.All",
        ]
        .map(String::from)
        .to_vec(),
        redirect_uris: vec![
            "http://localhost/callback".into(),
            "http://localhost:8400/callback".into(),
            // What `m365sync tenant authorize` listens on (any port: loopback ports are ignored).
            "http://127.0.0.1/callback".into(),
            // The admin service's own callback, for the console's "Sign in with Microsoft"
            // (`serve` on loopback, the sandbox's; any port).
            "http://127.0.0.1/oauth/callback".into(),
            "http://localhost/oauth/callback".into(),
        ],
        access_policy: None,
    });
    let mut taken = std::collections::HashSet::new();
    let add = |world: &mut World,
               rng: &mut Rng,
               given: &str,
               surname: &str,
               upn: String,
               kind: MailboxKind,
               title: Option<&str>| {
        let display = if surname.is_empty() {
            given.to_string()
        } else {
            format!("{given} {surname}")
        };
        let user = User {
            id: rng.guid(),
            mail: upn.clone(),
            upn,
            display_name: display,
            given_name: given.to_string(),
            surname: surname.to_string(),
            job_title: title.map(str::to_string),
            kind,
            folders: Vec::new(),
            folder_log: Default::default(),
            sync_generation: 0,
            calendar: Default::default(),
        };
        world.add_user(t, user)
    };
    taken.insert("admin".to_string());
    add(
        world,
        rng,
        "Adele",
        "Admin",
        format!("admin@{domain}"),
        MailboxKind::Person,
        Some("IT administrator"),
    );
    for _ in 1..opts.users.max(1) {
        let (g, s, upn) = person(rng, &domain, &mut taken);
        let title = *rng.pick(&[
            "Wealth advisor",
            "Client associate",
            "Paraplanner",
            "Operations",
        ]);
        add(world, rng, &g, &s, upn, MailboxKind::Person, Some(title));
    }
    for i in 0..opts.shared {
        let local = ["info", "support", "clientservices", "billing"]
            .get(i)
            .map(|s| s.to_string())
            .unwrap_or(format!("shared{i}"));
        add(
            world,
            rng,
            &format!("{}{}", local[..1].to_uppercase(), &local[1..]),
            "",
            format!("{local}@{domain}"),
            MailboxKind::Shared,
            None,
        );
    }
    world.tenants[t].groups = vec![
        Group {
            id: rng.guid(),
            display_name: "All Staff".into(),
            mail: format!("allstaff@{domain}"),
            mail_enabled: true,
            security_enabled: false,
            group_types: vec!["Unified".into()],
        },
        Group {
            id: rng.guid(),
            display_name: "Advisors".into(),
            mail: format!("advisors@{domain}"),
            mail_enabled: true,
            security_enabled: true,
            group_types: vec![],
        },
    ];
    world.tenants[t].rooms = ["Boardroom", "Harbour View", "Focus Room"]
        .iter()
        .enumerate()
        .map(|(i, r)| Room {
            id: rng.guid(),
            display_name: r.to_string(),
            email_address: format!("{}@{domain}", r.to_ascii_lowercase().replace(' ', "")),
            capacity: [12, 8, 4][i],
            building: "Head office".into(),
        })
        .collect();
    t
}

pub(crate) fn recipient(name: &str, address: &str) -> Recipient {
    Recipient {
        name: name.to_string(),
        address: address.to_string(),
    }
}

/// Generates a world.
pub fn generate(opts: &GenerateOptions) -> Generated {
    let now = opts.now.unwrap_or_else(Utc::now);
    let mut rng = Rng::new(opts.seed);
    let mut world = World::new(mix64(opts.seed) as u32);
    for ti in 0..opts.tenants.max(1) {
        let t = directory(&mut world, &mut rng, opts, ti);
        fill_mail(&mut world, &mut rng, t, opts, now);
        let people: Vec<usize> = (0..world.tenants[t].users.len())
            .filter(|&u| world.tenants[t].users[u].kind == MailboxKind::Person)
            .collect();
        for u in people {
            super::calendar::generate_events(&mut world, t, u, &mut rng, opts.events, now);
        }
    }
    // Busy mailboxes last, from their own random streams: everything above (ids, keys,
    // sequences) is exactly what the same options without busy mailboxes give.
    for t in 0..world.tenants.len() {
        let busy: Vec<usize> = (0..world.tenants[t].users.len())
            .filter(|&u| world.tenants[t].users[u].kind == MailboxKind::Person)
            .skip(1)
            .take(opts.busy_users)
            .collect();
        for u in busy {
            super::generate_busy::fill(&mut world, t, u, opts, now);
        }
    }
    Generated { world }
}

fn fill_mail(
    world: &mut World,
    rng: &mut Rng,
    t: usize,
    opts: &GenerateOptions,
    now: DateTime<Utc>,
) {
    let users = world.tenants[t].users.len();
    let domain = world.tenants[t].domain.clone();
    let span = if opts.years == 0 {
        Duration::days(200)
    } else {
        Duration::days(365 * opts.years as i64)
    };
    // Conversations started so far: (conversation id, subject, participants' addresses).
    let mut threads: Vec<(String, String, Recipient)> = Vec::new();
    let mut seq = 0u64;
    for u in 0..users {
        let me = {
            let user = &world.tenants[t].users[u];
            (recipient(&user.display_name, &user.mail), user.kind)
        };
        let step = span.num_seconds() / opts.messages.max(1) as i64;
        let mut at = now - span;
        for _ in 0..opts.messages {
            seq += 1;
            at += Duration::seconds(1 + rng.below(step.max(2) as u64 * 2) as i64)
                .min(Duration::seconds(step.max(1) * 2));
            if at > now {
                at = now - Duration::seconds(rng.below(3600) as i64);
            }
            let client = {
                let (g, s) = (*rng.pick(&FIRST), *rng.pick(&LAST));
                let d = rng.pick(&CLIENT_DOMAINS);
                recipient(
                    &format!("{g} {s}"),
                    &format!("{}.{}@{d}", g.to_ascii_lowercase(), s.to_ascii_lowercase()),
                )
            };
            let colleague = {
                let c = (u + 1 + rng.below(users.max(2) as u64 - 1) as usize) % users;
                let cu = &world.tenants[t].users[c];
                (c, recipient(&cu.display_name, &cu.mail))
            };
            let roll = rng.unit();
            let shared = me.1 == MailboxKind::Shared;
            let (kind, mut from, mut to, mut cc, folder) = if roll < 0.45 || shared {
                let folder = if rng.chance(0.1) {
                    "archive"
                } else if rng.chance(0.02) {
                    "junkemail"
                } else {
                    "inbox"
                };
                let cc = if rng.chance(0.15) && colleague.0 != u {
                    vec![colleague.1.clone()]
                } else {
                    vec![]
                };
                ("in", client.clone(), vec![me.0.clone()], cc, folder)
            } else if roll < 0.65 {
                (
                    "out",
                    me.0.clone(),
                    vec![client.clone()],
                    vec![],
                    "sentitems",
                )
            } else if roll < 0.80 && colleague.0 != u {
                (
                    "internal",
                    me.0.clone(),
                    vec![colleague.1.clone()],
                    vec![],
                    "sentitems",
                )
            } else if roll < 0.92 {
                let (n, a) = *rng.pick(&AUTOMATED);
                (
                    "automated",
                    recipient(n, a),
                    vec![me.0.clone()],
                    vec![],
                    "inbox",
                )
            } else {
                ("reply", client.clone(), vec![me.0.clone()], vec![], "inbox")
            };
            let (conversation_id, subject) = if kind == "reply" && !threads.is_empty() {
                let (cid, subj, other) = threads[rng.below(threads.len() as u64) as usize].clone();
                from = other;
                to = vec![me.0.clone()];
                cc.clear();
                (cid, format!("RE: {subj}"))
            } else {
                let subject = if kind == "automated" {
                    format!(
                        "{} #{}",
                        rng.pick(&[
                            "Your weekly digest",
                            "New sign-in",
                            "Document completed",
                            "You appeared in searches",
                            "Report ready"
                        ]),
                        seq
                    )
                } else {
                    format!("{} - {}", rng.pick(&TOPICS), client.name)
                };
                let cid = format!(
                    "AAQkADAw{}",
                    STANDARD
                        .encode(mix64(seq ^ 0xc0).to_be_bytes())
                        .trim_end_matches('=')
                );
                if kind != "automated" {
                    threads.push((
                        cid.clone(),
                        subject.clone(),
                        if kind == "in" {
                            from.clone()
                        } else {
                            to[0].clone()
                        },
                    ));
                }
                (cid, subject)
            };
            let mut headers = vec![
                (
                    "Received".to_string(),
                    format!(
                        "from mail.{domain} by EXCH01.{domain} with Microsoft SMTP Server; {}",
                        at.to_rfc2822()
                    ),
                ),
                ("MIME-Version".to_string(), "1.0".to_string()),
            ];
            if kind == "automated" {
                headers.push(("Auto-Submitted".into(), "auto-generated".into()));
                headers.push((
                    "List-Unsubscribe".into(),
                    format!(
                        "<mailto:unsubscribe@{}>",
                        from.address.split('@').nth(1).unwrap_or("x")
                    ),
                ));
                headers.push(("Precedence".into(), "bulk".into()));
            }
            let internet_message_id = format!(
                "<{:016x}.{seq}@{}>",
                mix64(seq ^ opts.seed),
                from.address.split('@').nth(1).unwrap_or("example")
            );
            headers.push(("Message-ID".into(), internet_message_id.clone()));
            let content = MessageContent {
                internet_message_id,
                conversation_id,
                conversation_index: STANDARD.encode(mix64(seq).to_be_bytes()),
                subject,
                body: Arc::from(html_body(
                    rng,
                    to[0].name.split(' ').next().unwrap_or("there"),
                    &from.name,
                )),
                body_is_html: true,
                from: Some(from.clone()),
                to: to.clone(),
                cc: cc.clone(),
                bcc: vec![],
                reply_to: if kind == "automated" && rng.chance(0.3) {
                    vec![recipient("Support", "support@marketweekly.example")]
                } else {
                    vec![]
                },
                received: at,
                sent: at - Duration::seconds(rng.below(90) as i64),
                is_draft: false,
                is_read: rng.chance(0.8),
                importance: if rng.chance(0.05) { "high" } else { "normal" },
                inference_classification: if kind == "automated" {
                    "other"
                } else {
                    "focused"
                },
                categories: if rng.chance(0.1) {
                    vec![rng.pick(&["Client", "Follow up", "Compliance"]).to_string()]
                } else {
                    vec![]
                },
                flagged: rng.chance(0.05),
                headers,
                attachments: attachments(rng, seq, at, opts.attachment_rate),
            };
            let f = world.tenants[t].users[u]
                .folder_index(folder)
                .expect("well-known folder");
            // Internal mail: one copy per mailbox under one internetMessageId.
            let internal_rcpts: Vec<usize> = content
                .to
                .iter()
                .chain(&content.cc)
                .filter_map(|r| world.tenants[t].user_by_key(&r.address))
                .filter(|&r| r != u)
                .collect();
            world.add_message(t, u, f, content.clone(), false);
            if kind == "internal" || kind == "in" {
                for r in internal_rcpts {
                    let inbox = world.tenants[t].users[r]
                        .folder_index("inbox")
                        .expect("inbox");
                    let mut c = content.clone();
                    c.is_read = rng.chance(0.7);
                    world.add_message(t, r, inbox, c, false);
                }
            }
        }
    }
}

/// Per mailbox and folder: the immutable ids and counts a full sync must end with.
pub fn ground_truth(world: &World) -> Value {
    let tenants: Vec<Value> = world
        .tenants
        .iter()
        .map(|t| {
            let mailboxes: Vec<Value> = t
                .users
                .iter()
                .map(|u| {
                    let mut folders = serde_json::Map::new();
                    for (i, f) in u.folders.iter().enumerate() {
                        let Some(parent) = f.parent.filter(|_| !f.deleted) else {
                            continue; // the root holds no mail; deleted folders are gone
                        };
                        let (mut ids, mut received) = (Vec::new(), Vec::new());
                        for m in f.items.values().filter_map(|k| world.messages.get(k)) {
                            ids.push(message_id::immutable(m.key, world.salt));
                            received.push(super::mail::graph_time(&m.content.received));
                        }
                        let mut key = u.truth_key(i);
                        if folders.contains_key(&key) {
                            key = f.id.clone(); // a user folder's path that shadows a name
                        }
                        folders.insert(
                            key,
                            json!({
                                "id": f.id,
                                "path": u.folder_path(i),
                                "parent": u.folders[parent].id,
                                "hidden": f.hidden,
                                "count": ids.len(),
                                "ids": ids,
                                "received": received,
                            }),
                        );
                    }
                    let events = super::calendar::event_ids(&u.calendar);
                    json!({
                        "id": u.id, "upn": u.upn, "kind": u.kind,
                        "folders": folders,
                        "events": {"count": events.len(), "ids": events},
                    })
                })
                .collect();
            json!({"id": t.id, "domain": t.domain, "mailboxes": mailboxes})
        })
        .collect();
    json!({"tenants": tenants})
}

#[cfg(test)]
mod tests {
    use std::hash::{Hash, Hasher};

    use super::*;

    /// FNV-1a: a hash whose output no toolchain update changes.
    struct Fnv(u64);

    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
    }

    /// A digest of everything tests depend on in a generated world: messages (key, place,
    /// order, content), directory ids, the first seven folders' ids, event keys, sequence.
    fn digest(w: &World) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        let mut keys: Vec<u64> = w.messages.keys().copied().collect();
        keys.sort();
        for k in keys {
            let m = &w.messages[&k];
            let c = &m.content;
            (k, m.tenant, m.user, m.folder, m.arrival, &c.subject).hash(&mut h);
            (c.received.timestamp(), &c.internet_message_id, &*c.body).hash(&mut h);
            (c.is_read, c.attachments.len()).hash(&mut h);
        }
        for t in &w.tenants {
            t.id.hash(&mut h);
            for u in &t.users {
                (&u.id, &u.upn, &u.display_name).hash(&mut h);
                for f in u.folders.iter().take(7) {
                    f.id.hash(&mut h);
                }
                for k in u.calendar.events.keys() {
                    k.hash(&mut h);
                }
            }
        }
        (w.seq, w.salt).hash(&mut h);
        h.finish()
    }

    fn june() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn default_options_give_the_worlds_they_always_gave() {
        // The digest of this world before folder trees, busy mailboxes and `years` existed:
        // tests everywhere depend on those worlds, so new options must leave them alone.
        let opts = GenerateOptions {
            tenants: 2,
            now: Some(june()),
            ..Default::default()
        };
        let w = generate(&opts).world;
        assert_eq!((w.messages.len(), w.seq), (2888, 3278));
        assert_eq!(format!("{:016x}", digest(&w)), "71abefba4f62f9a5");
    }

    #[test]
    fn busy_mailboxes_are_deterministic_and_leave_the_rest_of_the_world_alone() {
        let opts = GenerateOptions {
            users: 3,
            busy_users: 1,
            busy_messages: 3_000,
            now: Some(june()),
            ..Default::default()
        };
        let a = ground_truth(&generate(&opts).world);
        assert_eq!(a, ground_truth(&generate(&opts).world));
        let plain = ground_truth(
            &generate(&GenerateOptions {
                busy_users: 0,
                ..opts.clone()
            })
            .world,
        );
        let boxes = |v: &Value| v["tenants"][0]["mailboxes"].as_array().unwrap().clone();
        let (busy, calm) = (boxes(&a), boxes(&plain));
        assert_eq!(busy.len(), calm.len());
        for (i, (x, y)) in busy.iter().zip(&calm).enumerate() {
            if i == 1 {
                assert_ne!(x, y, "the first person after the admin is busy");
            } else {
                assert_eq!(x, y, "mailbox {i} is as without busy mailboxes");
            }
        }
    }

    #[test]
    fn the_sandbox_advisor_has_more_than_5000_recent_messages_in_inbox() {
        let now = june();
        let started = std::time::Instant::now();
        let world = generate(&GenerateOptions {
            now: Some(now),
            ..GenerateOptions::sandbox()
        })
        .world;
        let elapsed = started.elapsed();
        let user = &world.tenants[0].users[1];
        let inbox = &user.folders[user.folder_index("inbox").unwrap()];
        let since = now - Duration::days(182);
        let recent = inbox
            .items
            .values()
            .filter(|k| world.messages[k].content.received >= since)
            .count();
        assert!(recent > 5_000, "{recent}");
        assert!(world.messages.len() > 21_000);
        eprintln!(
            "sandbox world: {} messages in {elapsed:?}, {recent} recent in the advisor's inbox",
            world.messages.len()
        );
    }

    /// `cargo test -p m365sync-sim --release --lib generation_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, meaningful in release builds only"]
    fn generation_speed_of_a_50000_message_mailbox() {
        let opts = GenerateOptions {
            users: 3,
            busy_users: 1,
            busy_messages: 50_000,
            now: Some(june()),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let world = generate(&opts).world;
        let elapsed = started.elapsed();
        eprintln!(
            "generated {} messages ({} in the busy mailbox) in {:.2} s",
            world.messages.len(),
            world.tenants[0].users[1]
                .folders
                .iter()
                .map(|f| f.items.len())
                .sum::<usize>(),
            elapsed.as_secs_f64()
        );
        let started = std::time::Instant::now();
        let bytes = crate::persist::to_bytes(&world);
        eprintln!(
            "saved as {} MB of JSON in {:.2} s",
            bytes.len() / 1_000_000,
            started.elapsed().as_secs_f64()
        );
    }

    #[test]
    fn a_busy_mailbox_has_the_shape_of_a_real_advisors() {
        let now = june();
        let opts = GenerateOptions {
            users: 3,
            busy_users: 1,
            busy_messages: 6_000,
            now: Some(now),
            ..Default::default()
        };
        let world = generate(&opts).world;
        let truth = ground_truth(&world);
        let folders = &truth["tenants"][0]["mailboxes"][1]["folders"];
        let count = |k: &str| {
            folders[k]["count"]
                .as_u64()
                .unwrap_or_else(|| panic!("{k}"))
        };
        let six_months_ago = now - Duration::days(182);
        let recent = |k: &str| {
            folders[k]["received"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| {
                    DateTime::parse_from_rfc3339(r.as_str().unwrap()).unwrap() >= six_months_ago
                })
                .count() as u64
        };
        let total: u64 = folders
            .as_object()
            .unwrap()
            .values()
            .map(|f| f["count"].as_u64().unwrap())
            .sum();
        assert!(total >= 6_000, "{total}");
        // Inbox: mostly recent mail; Archive: mostly old mail (the busy share is all old).
        assert!(recent("inbox") > 1_400, "{}", recent("inbox"));
        assert!(recent("inbox") * 10 > count("inbox") * 8);
        assert!(count("archive") > 600, "{}", count("archive"));
        assert!(recent("archive") * 20 < count("archive"));
        // Filed mail at every depth: 3 (Clients/<client>), 4 (Statements, Projects/<year>/..).
        for key in [
            "Inbox/Clients/Acme Holdings",
            "Inbox/Clients/Acme Holdings/Statements",
            "Inbox/Projects/2025/Tax season",
            "Inbox/Newsletters",
            "Deleted Items/Old Prospects",
            "junkemail",
            "deleteditems",
            "sentitems",
        ] {
            assert!(count(key) > 5, "{key}: {}", count(key));
        }
        let depth = |k: &str| folders[k]["path"].as_str().unwrap().split('/').count();
        assert_eq!(depth("Inbox/Clients/Acme Holdings/Statements"), 4);
        assert_eq!(
            folders["Inbox/Clients/Acme Holdings/Statements"]["parent"],
            folders["Inbox/Clients/Acme Holdings"]["id"]
        );
        assert_eq!(
            world.tenants[0].users[1].job_title.as_deref(),
            Some("Wealth advisor")
        );
    }

    #[test]
    fn same_seed_same_world() {
        let opts = GenerateOptions {
            messages: 30,
            now: Some(Utc::now()),
            ..Default::default()
        };
        let a = ground_truth(&generate(&opts).world);
        let b = ground_truth(&generate(&opts).world);
        assert_eq!(a, b);
        let c = ground_truth(&generate(&GenerateOptions { seed: 2, ..opts }).world);
        assert_ne!(a, c);
    }
}
