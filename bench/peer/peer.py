"""The peer: what a firm would otherwise write to copy its Microsoft 365 mail into SQLite.

Written as a competent Python developer would with Microsoft's own SDK (msgraph-sdk over
azure-identity): per-folder message delta with `Prefer: odata.maxpagesize=100` and ImmutableId,
following nextLink to the deltaLink, four mailboxes at a time on asyncio (Outlook allows four
concurrent requests per mailbox; m365sync syncs four mailboxes at a time in a one-off run), and
one SQLite transaction per page writing the same records m365sync keeps: the message's fields
and its recipients. No attachments are fetched (m365sync does fetch them: the peer does less).

Usage: python peer.py INPUT.json  (written by `m365sync bench peer`; see bench/README.md)
Prints one JSON report on stdout. Trust in the simulator's CA comes from SSL_CERT_FILE and
REQUESTS_CA_BUNDLE, set by the harness before this process starts.
"""

import asyncio
import json
import resource
import sqlite3
import sys
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    mailbox TEXT NOT NULL,
    folder TEXT NOT NULL,
    internet_message_id TEXT,
    conversation_id TEXT,
    subject TEXT,
    from_address TEXT,
    from_name TEXT,
    received_at TEXT,
    sent_at TEXT,
    body_type TEXT,
    body TEXT,
    body_preview TEXT,
    importance TEXT,
    is_read INTEGER,
    has_attachments INTEGER,
    web_link TEXT
);
CREATE TABLE IF NOT EXISTS recipients (
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    address TEXT,
    name TEXT
);
CREATE INDEX IF NOT EXISTS recipients_message ON recipients(message_id);
CREATE TABLE IF NOT EXISTS cursors (
    mailbox TEXT NOT NULL,
    folder TEXT NOT NULL,
    delta_link TEXT NOT NULL,
    PRIMARY KEY (mailbox, folder)
);
"""

PREFER = 'odata.maxpagesize={size}, IdType="ImmutableId"'
FOLDERS = ("inbox", "sentitems")
CONCURRENT_MAILBOXES = 4


def iso(dt):
    return dt.isoformat() if dt is not None else None


def email(recipient):
    if recipient is None or recipient.email_address is None:
        return None, None
    return recipient.email_address.address, recipient.email_address.name


class Sink:
    """One SQLite connection; each page is written in one transaction."""

    def __init__(self, path):
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def write_page(self, mailbox, folder, messages, delta_link):
        rows, recipients, removed = [], [], []
        for m in messages:
            if "@removed" in (m.additional_data or {}):
                removed.append((m.id,))
                continue
            address, name = email(m.from_)
            rows.append((
                m.id, mailbox, folder, m.internet_message_id, m.conversation_id, m.subject,
                address, name, iso(m.received_date_time), iso(m.sent_date_time),
                m.body.content_type.value if m.body and m.body.content_type else None,
                m.body.content if m.body else None, m.body_preview,
                m.importance.value if m.importance else None,
                int(bool(m.is_read)), int(bool(m.has_attachments)), m.web_link,
            ))
            for kind, people in (("to", m.to_recipients), ("cc", m.cc_recipients),
                                 ("bcc", m.bcc_recipients)):
                for r in people or []:
                    a, n = email(r)
                    recipients.append((m.id, kind, a, n))
        with self.db:  # one transaction per page
            ids = [(r[0],) for r in rows] + removed
            self.db.executemany("DELETE FROM recipients WHERE message_id = ?", ids)
            self.db.executemany("DELETE FROM messages WHERE id = ?", removed)
            self.db.executemany(
                "INSERT OR REPLACE INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            self.db.executemany("INSERT INTO recipients VALUES (?,?,?,?)", recipients)
            if delta_link:
                self.db.execute("INSERT OR REPLACE INTO cursors VALUES (?,?,?)",
                                (mailbox, folder, delta_link))
        return len(rows)


async def main(cfg):
    from azure.identity.aio import ClientSecretCredential
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient

    credential = ClientSecretCredential(cfg["tenant_id"], cfg["client_id"], cfg["secret"],
                                        authority=cfg["authority"],
                                        disable_instance_discovery=True)
    auth = AzureIdentityAuthenticationProvider(credential,
                                               scopes=["https://graph.microsoft.com/.default"],
                                               allowed_hosts=[cfg["host"]])
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = cfg["graph_url"]
    client = GraphServiceClient(request_adapter=adapter)
    sink = Sink(cfg["db"])
    prefer = PREFER.format(size=cfg["page_size"])
    started = time.monotonic()
    totals = {"processed": 0, "stored": 0, "pages": 0}
    timeline = [(0.0, 0)]

    def config():
        c = RequestConfiguration()
        c.headers.add("Prefer", prefer)
        return c

    async def sync_folder(mailbox, folder):
        builder = (client.users.by_user_id(mailbox).mail_folders.by_mail_folder_id(folder)
                   .messages.delta)
        page = await builder.get(request_configuration=config())
        while page is not None:
            items = list(page.value or [])
            delta_link = page.odata_delta_link
            totals["stored"] += sink.write_page(mailbox, folder, items, delta_link)
            totals["processed"] += len(items)
            totals["pages"] += 1
            if page.odata_next_link:
                page = await builder.with_url(page.odata_next_link).get(
                    request_configuration=config())
            else:
                break

    gate = asyncio.Semaphore(CONCURRENT_MAILBOXES)

    async def sync_mailbox(mailbox):
        async with gate:
            for folder in FOLDERS:
                await sync_folder(mailbox, folder)
            timeline.append((time.monotonic() - started, totals["processed"]))

    try:
        await asyncio.gather(*(sync_mailbox(m) for m in cfg["mailboxes"]))
    finally:
        await credential.close()
    seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "processed": totals["processed"],
        "stored": totals["stored"],
        "pages": totals["pages"],
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024.0,
        "timeline": timeline,
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    report = asyncio.run(main(cfg))
    json.dump(report, sys.stdout)
