//! A busy advisor's mailbox: tens of thousands of messages over years, filed as people file.
//!
//! Half of the mail is from the last six months, most of it still in Inbox; older mail sits
//! in Archive and in user folders: Inbox/Clients/<client> (with a Statements folder below
//! the largest clients), Inbox/Projects/<year>/<project>, Inbox/Newsletters (an inbox rule),
//! a few in Junk Email and Deleted Items, and an old folder deleted into Deleted Items. This
//! is the shape that breaks a sync reading Inbox only, or trusting a filtered delta round
//! (capped at 5,000 messages). Everything is drawn from a random stream of its own, seeded
//! from the options and the mailbox, so the rest of the world does not change.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Datelike, Duration, Utc};

use super::generate::{html_body, recipient, GenerateOptions, AUTOMATED, FIRST, LAST, TOPICS};
use super::ids::{mix64, Rng};
use super::model::{Attachment, AttachmentKind, Content, MessageContent, Recipient, World};

/// The advisor's main clients: (display name, mail domain). Each has a folder under
/// Inbox/Clients; the first three also a Statements folder below it.
const CLIENTS: [(&str, &str); 12] = [
    ("Acme Holdings", "acme-holdings.example"),
    ("Globex Family Trust", "globex.example"),
    ("Initech Pension Plan", "initech.example"),
    ("Umbrella Trust", "umbrella-trust.example"),
    ("Hooli Founders", "hooli.example"),
    ("Stark Household", "stark-family.example"),
    ("Wayne Foundation", "wayne-foundation.example"),
    ("Pym Partners", "pym.example"),
    ("Soylent Estate", "soylent.example"),
    ("Tyrell Family Office", "tyrell.example"),
    ("Oscorp Retirement", "oscorp.example"),
    ("Vandelay Imports", "vandelay.example"),
];

/// Projects filed under Inbox/Projects/<year>.
const PROJECTS: [&str; 4] = ["Onboarding", "Rebalancing", "Estate planning", "Tax season"];

/// Where a message is filed.
#[derive(Clone, Copy)]
enum Place {
    Inbox,
    Sent,
    Archive,
    Junk,
    Deleted,
    Newsletters,
    Client(usize),
    Statements(usize),
    Project(i32, usize),
    OldProspects,
}

/// The folders of a busy mailbox, by index.
struct Tree {
    inbox: usize,
    sent: usize,
    archive: usize,
    junk: usize,
    deleted: usize,
    newsletters: usize,
    clients: Vec<usize>,
    statements: Vec<usize>,
    /// (year, folder): two projects a year, in year order.
    projects: Vec<(i32, usize)>,
    old_prospects: usize,
}

impl Tree {
    fn build(world: &mut World, t: usize, u: usize, years: &[i32]) -> Tree {
        let mut path = |p: &str| {
            world
                .ensure_folder_path(t, u, p)
                .expect("generated folder names are valid and distinct")
        };
        let clients: Vec<usize> = CLIENTS
            .iter()
            .map(|(name, _)| path(&format!("Inbox/Clients/{name}")))
            .collect();
        let statements: Vec<usize> = CLIENTS[..3]
            .iter()
            .map(|(name, _)| path(&format!("Inbox/Clients/{name}/Statements")))
            .collect();
        let mut projects = Vec::new();
        for &year in years {
            for p in 0..2 {
                let project = (year as usize * 2 + p) % PROJECTS.len();
                let f = path(&format!("Inbox/Projects/{year}/{}", PROJECTS[project]));
                projects.push((year, f));
            }
        }
        let newsletters = path("Inbox/Newsletters");
        let old_prospects = path("Deleted Items/Old Prospects");
        let user = &world.tenants[t].users[u];
        let wk = |n: &str| user.folder_index(n).expect("well-known folder");
        Tree {
            inbox: wk("inbox"),
            sent: wk("sentitems"),
            archive: wk("archive"),
            junk: wk("junkemail"),
            deleted: wk("deleteditems"),
            newsletters,
            clients,
            statements,
            projects,
            old_prospects,
        }
    }

    fn folder(&self, place: Place) -> usize {
        match place {
            Place::Inbox => self.inbox,
            Place::Sent => self.sent,
            Place::Archive => self.archive,
            Place::Junk => self.junk,
            Place::Deleted => self.deleted,
            Place::Newsletters => self.newsletters,
            Place::Client(c) => self.clients[c],
            Place::Statements(c) => self.statements[c],
            Place::Project(year, k) => self
                .projects
                .iter()
                .filter(|(y, _)| *y == year)
                .nth(k)
                .or(self.projects.last())
                .map(|(_, f)| *f)
                .expect("at least one project"),
            Place::OldProspects => self.old_prospects,
        }
    }
}

/// What kind of message to write.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// From one of the main clients.
    Client(usize),
    /// From someone who is not (yet) a client.
    Prospect,
    Automated,
    /// From a colleague.
    Colleague,
    /// Sent by the advisor to a client.
    Out(usize),
}

fn pick_kind(rng: &mut Rng) -> Kind {
    let roll = rng.unit();
    if roll < 0.35 {
        Kind::Client(rng.below(CLIENTS.len() as u64) as usize)
    } else if roll < 0.50 {
        Kind::Prospect
    } else if roll < 0.62 {
        Kind::Automated
    } else if roll < 0.70 {
        Kind::Colleague
    } else {
        Kind::Out(rng.below(CLIENTS.len() as u64) as usize)
    }
}

/// Where a message of this kind, this old, ends up.
fn place(rng: &mut Rng, kind: Kind, recent: bool, year: i32) -> Place {
    let roll = rng.unit();
    let project = |rng: &mut Rng| Place::Project(year, rng.below(2) as usize);
    match (kind, recent) {
        (Kind::Out(_), _) => Place::Sent,
        (Kind::Automated, true) if roll < 0.50 => Place::Newsletters,
        (Kind::Automated, true) if roll < 0.95 => Place::Inbox,
        (Kind::Automated, true) => Place::Junk,
        (Kind::Automated, false) if roll < 0.40 => Place::Newsletters,
        (Kind::Automated, false) if roll < 0.70 => Place::Deleted,
        (Kind::Automated, false) if roll < 0.90 => Place::Archive,
        (Kind::Automated, false) => Place::Junk,
        (Kind::Client(_), true) if roll < 0.78 => Place::Inbox,
        (Kind::Client(c), true) if roll < 0.88 => Place::Client(c),
        (Kind::Client(c), true) if roll < 0.93 && c < 3 => Place::Statements(c),
        (Kind::Client(_), true) if roll < 0.97 => project(rng),
        (Kind::Client(_), true) => Place::Deleted,
        (Kind::Client(_), false) if roll < 0.45 => Place::Archive,
        (Kind::Client(c), false) if roll < 0.70 => Place::Client(c),
        (Kind::Client(c), false) if roll < 0.80 && c < 3 => Place::Statements(c),
        (Kind::Client(_), false) if roll < 0.92 => project(rng),
        (Kind::Client(_), false) if roll < 0.97 => Place::Inbox,
        (Kind::Client(_), false) => Place::Deleted,
        (Kind::Prospect, true) if roll < 0.92 => Place::Inbox,
        (Kind::Prospect, true) if roll < 0.95 => Place::Junk,
        (Kind::Prospect, true) => Place::Deleted,
        (Kind::Prospect, false) if roll < 0.55 => Place::Archive,
        (Kind::Prospect, false) if roll < 0.80 => Place::OldProspects,
        (Kind::Prospect, false) if roll < 0.90 => Place::Deleted,
        (Kind::Prospect, false) => Place::Inbox,
        (Kind::Colleague, true) if roll < 0.95 => Place::Inbox,
        (Kind::Colleague, true) => Place::Deleted,
        (Kind::Colleague, false) if roll < 0.70 => Place::Archive,
        (Kind::Colleague, false) if roll < 0.90 => Place::Inbox,
        (Kind::Colleague, false) => Place::Deleted,
    }
}

/// Small attachments only (busy mailboxes are about message counts, not bytes).
fn attachments(rng: &mut Rng, seq: u64, at: DateTime<Utc>, rate: f64) -> Vec<Attachment> {
    if !rng.chance(rate) {
        return Vec::new();
    }
    let (ext, ct) = *rng.pick(&[
        ("pdf", "application/pdf"),
        (
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ]);
    vec![Attachment {
        id: format!("AAMkAGBusy{}", STANDARD.encode(mix64(seq).to_be_bytes())),
        name: format!("document-{seq}.{ext}"),
        kind: AttachmentKind::File {
            content_type: ct.to_string(),
            content: Content::Generated {
                seed: mix64(seq ^ 0xa77),
                len: 1_000 + rng.below(120_000),
            },
            is_inline: false,
            content_id: None,
        },
        last_modified: at,
    }]
}

/// Fills mailbox `u` of tenant `t` with a busy advisor's mail (see the module's doc).
pub fn fill(world: &mut World, t: usize, u: usize, opts: &GenerateOptions, now: DateTime<Utc>) {
    let mut rng = Rng::new(mix64(
        opts.seed ^ 0xb5_u64 << 40 ^ (t as u64) << 20 ^ u as u64,
    ));
    let years = if opts.years == 0 { 3 } else { opts.years } as i64;
    let recent_from = now - Duration::days(182);
    let start = now - Duration::days(365 * years);
    let year_list: Vec<i32> = (start.year()..=now.year()).collect();
    let tree = Tree::build(world, t, u, &year_list);
    let (me, domain, colleagues) = {
        let tenant = &world.tenants[t];
        let user = &tenant.users[u];
        let colleagues: Vec<Recipient> = tenant
            .users
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != u)
            .map(|(_, c)| recipient(&c.display_name, &c.mail))
            .collect();
        (
            recipient(&user.display_name, &user.mail),
            tenant.domain.clone(),
            colleagues,
        )
    };
    world.tenants[t].users[u].job_title = Some("Wealth advisor".into());
    // Half of the mail in the last six months, the rest spread over the older years; in time
    // order, so arrival order follows receivedDateTime as in a real mailbox.
    let n = opts.busy_messages;
    let recent_secs = (now - recent_from).num_seconds().max(1) as u64;
    let older_secs = (recent_from - start).num_seconds().max(1) as u64;
    let mut times: Vec<DateTime<Utc>> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                recent_from + Duration::seconds(rng.below(recent_secs) as i64)
            } else {
                start + Duration::seconds(rng.below(older_secs) as i64)
            }
        })
        .collect();
    times.sort();
    // A few running conversations per client, so replies thread.
    let threads: Vec<Vec<(String, String)>> = CLIENTS
        .iter()
        .enumerate()
        .map(|(c, (name, _))| {
            (0..4)
                .map(|k| {
                    let id = mix64(opts.seed ^ (c as u64) << 8 ^ k ^ 0x7e);
                    (
                        format!(
                            "AAQkADBusy{}",
                            STANDARD.encode(id.to_be_bytes()).trim_end_matches('=')
                        ),
                        format!("{} - {name}", TOPICS[(c * 4 + k as usize) % TOPICS.len()]),
                    )
                })
                .collect()
        })
        .collect();
    let base_seq = mix64(opts.seed ^ (t as u64) << 32 ^ u as u64) & 0xffff_ffff;
    for (i, at) in times.into_iter().enumerate() {
        let seq = base_seq << 24 | i as u64;
        let kind = match pick_kind(&mut rng) {
            Kind::Colleague if colleagues.is_empty() => Kind::Prospect,
            k => k,
        };
        let recent = at >= recent_from;
        let folder = tree.folder(place(&mut rng, kind, recent, at.year()));
        let contact = |rng: &mut Rng, c: Option<usize>| {
            let (g, s) = (*rng.pick(&FIRST), *rng.pick(&LAST));
            let d = match c {
                Some(c) => CLIENTS[c].1,
                None => "mail.example",
            };
            recipient(
                &format!("{g} {s}"),
                &format!("{}.{}@{d}", g.to_ascii_lowercase(), s.to_ascii_lowercase()),
            )
        };
        let (from, to, automated) = match kind {
            Kind::Client(c) => (contact(&mut rng, Some(c)), me.clone(), false),
            Kind::Prospect => (contact(&mut rng, None), me.clone(), false),
            Kind::Automated => {
                let (name, address) = *rng.pick(&AUTOMATED);
                (recipient(name, address), me.clone(), true)
            }
            Kind::Colleague => (rng.pick(&colleagues).clone(), me.clone(), false),
            Kind::Out(c) => (me.clone(), contact(&mut rng, Some(c)), false),
        };
        let (conversation_id, subject) = match kind {
            Kind::Client(c) | Kind::Out(c) if rng.chance(0.6) => {
                let (cid, subject) = rng.pick(&threads[c]).clone();
                (cid, format!("RE: {subject}"))
            }
            _ => {
                let subject = if automated {
                    format!("Your weekly digest #{i}")
                } else {
                    format!("{} - {}", rng.pick(&TOPICS), from.name)
                };
                let cid = format!("AAQkADBusy{}", STANDARD.encode(mix64(seq).to_be_bytes()));
                (cid, subject)
            }
        };
        let sender_domain = from.address.split('@').nth(1).unwrap_or("example");
        let internet_message_id = format!("<{:016x}.b{i}@{sender_domain}>", mix64(seq ^ opts.seed));
        let mut headers = vec![
            (
                "Received".to_string(),
                format!(
                    "from mail.{domain} by EXCH01.{domain} with Microsoft SMTP Server; {}",
                    at.to_rfc2822()
                ),
            ),
            ("MIME-Version".to_string(), "1.0".to_string()),
            ("Message-ID".to_string(), internet_message_id.clone()),
        ];
        if automated {
            headers.push(("Auto-Submitted".into(), "auto-generated".into()));
            headers.push(("Precedence".into(), "bulk".into()));
        }
        let greeting = to.name.split(' ').next().unwrap_or("there").to_string();
        let content = MessageContent {
            internet_message_id,
            conversation_id,
            conversation_index: STANDARD.encode(mix64(seq ^ 1).to_be_bytes()),
            subject,
            body: Arc::from(html_body(&mut rng, &greeting, &from.name)),
            body_is_html: true,
            from: Some(from),
            to: vec![to],
            cc: vec![],
            bcc: vec![],
            reply_to: vec![],
            received: at,
            sent: at - Duration::seconds(rng.below(90) as i64),
            is_draft: false,
            is_read: !recent || rng.chance(0.85),
            importance: if rng.chance(0.04) { "high" } else { "normal" },
            inference_classification: if automated { "other" } else { "focused" },
            categories: vec![],
            flagged: rng.chance(0.03),
            headers,
            attachments: attachments(&mut rng, seq, at, opts.attachment_rate * 0.3),
        };
        world.add_message(t, u, folder, content, false);
    }
}
