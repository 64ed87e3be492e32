// The m365sync console: pages over the admin JSON API (/api/...). No framework, no build step.
// Every page calls the API with the session cookie (set by POST /session) and the console's
// header, so it sees exactly what the signed-in token may see; an API refusal (403/404) is shown
// as "not available to your token", never as an empty or broken page. Data is put into the page
// with textContent only, never as HTML.
"use strict";

const PAGE = 50;
let me = null; // who is signed in: {role, org?, tenant?, user?}

// ---- helpers -------------------------------------------------------------------------------

/** Builds an element: h("a", {href: "#/"}, "text", child...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An API refusal or failure, with the API's own words. */
class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data || null; // the whole answer (a refused activation's checklist)
  }
}

/** Calls the API; answers its JSON or throws an ApiError. `body` is sent as JSON, or as is
 * with `contentType` (a CSV the browser read). */
async function api(method, path, body, contentType) {
  const opts = {
    method,
    credentials: "same-origin",
    headers: { "X-M365sync-Console": "1", Accept: "application/json" },
  };
  if (body !== undefined && contentType) {
    opts.headers["Content-Type"] = contentType;
    opts.body = body;
  } else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, "the service did not answer (" + e.message + ")");
  }
  let data = null;
  try {
    data = await r.json();
  } catch (_) {
    data = null;
  }
  if (!r.ok) {
    throw new ApiError(r.status, (data && data.error) || r.statusText || "HTTP " + r.status, data);
  }
  return data;
}

const enc = encodeURIComponent;

function when(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function ago(ms) {
  if (ms === null || ms === undefined) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return s + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}

function table(headers, rows, attrs) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      attrs || {},
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)
    )
  );
}

function num(n) {
  return h("td", { class: "num" }, n === null || n === undefined ? "–" : String(n));
}

const view = () => document.getElementById("view");

/** Replaces the page's content and moves focus to its heading, for keyboard and reader users. */
function show(title, ...content) {
  if (!me) return; // signed out meanwhile: the sign-in form is showing
  document.title = title + " · m365sync";
  const heading = h("h1", { tabindex: "-1" }, title);
  view().replaceChildren(heading, ...content.flat().filter((c) => c !== null && c !== undefined));
  heading.focus();
}

/** What a page shows when the API refused it or failed. */
function failure(e) {
  if (e.status === 401) {
    signedOut("Your session has ended (the token was revoked, or the service's admin token changed); sign in again.");
    return h("p", {}, "Signed out.");
  }
  if (e.status === 403 || e.status === 404) {
    return h(
      "div",
      { class: "notice denied", role: "alert" },
      h("strong", {}, "Not available to your token. "),
      "The API answered " + e.status + ": " + e.message
    );
  }
  return h(
    "div",
    { class: "notice denied", role: "alert" },
    h("strong", {}, "The service could not answer. "),
    (e.status ? "The API answered " + e.status + ": " : "") + e.message
  );
}

/** Runs a page's loader; shows its refusal in place of the page when the API says no. */
async function page(title, load) {
  view().replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const parts = await load();
    show(title, ...parts);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    show(title, failure(e));
  }
}

/** A message next to an action: its result or its refusal. */
function say(el, text, bad) {
  el.textContent = text;
  el.className = bad ? "error" : "muted";
}

// ---- session -------------------------------------------------------------------------------

function describe(who) {
  if (who.role === "admin") return "service admin";
  if (who.role === "org_admin") return "org admin of " + who.org;
  return "user " + who.user + " (" + who.org + "/" + who.tenant + ")";
}

function signedOut(message) {
  me = null;
  document.getElementById("who").textContent = "";
  document.getElementById("signout").hidden = true;
  document.getElementById("nav").replaceChildren();
  view().replaceChildren();
  const box = document.getElementById("signin");
  box.hidden = false;
  const err = document.getElementById("signin-error");
  err.hidden = !message;
  err.textContent = message || "";
  document.getElementById("token").focus();
}

function signedIn(who) {
  me = who;
  document.getElementById("signin").hidden = true;
  document.getElementById("signin-error").hidden = true;
  document.getElementById("who").textContent = "Signed in as " + describe(who);
  document.getElementById("signout").hidden = false;
  const links =
    who.role === "user"
      ? [
          ["#/review", "My review list"],
          ["#/rules", "My exclusion rules"],
          ["#/events", "My events"],
        ]
      : [
          ["#/tenants", "Tenants"],
          ...(who.role === "org_admin"
            ? [
                ["#/contacts/" + enc(who.org), "Contacts"],
                ["#/plugins/" + enc(who.org), "Plugins"],
                ["#/calendar/" + enc(who.org), "Calendar defaults"],
                ["#/setup/" + enc(who.org), "Set up a tenant"],
              ]
            : []),
        ];
  document
    .getElementById("nav")
    .replaceChildren(...links.map(([href, text]) => h("a", { href }, text)));
  route();
}

async function signIn(ev) {
  ev.preventDefault();
  const input = document.getElementById("token");
  const token = input.value;
  try {
    const r = await fetch("/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-M365sync-Console": "1" },
      body: JSON.stringify({ token }),
    });
    const data = await r.json().catch(() => ({}));
    input.value = "";
    if (!r.ok) {
      signedOut(data.error || "the token was refused (HTTP " + r.status + ")");
      return;
    }
    signedIn(data);
  } catch (e) {
    signedOut("the service did not answer: " + e.message);
  }
}

async function signOut() {
  await fetch("/session/logout", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-M365sync-Console": "1" },
  }).catch(() => {});
  location.hash = "#/";
  signedOut();
}

// ---- admin pages ---------------------------------------------------------------------------

async function tenantsPage() {
  await page("Tenants", async () => {
    const tenants = await api("GET", "/api/tenants");
    const rows = tenants.map((t) =>
      h(
        "tr",
        {},
        h("td", {}, t.org),
        h("td", {}, h("a", { href: "#/tenant/" + enc(t.org) + "/" + enc(t.name) }, t.name)),
        h("td", {}, t.enabled ? "yes" : "no"),
        h("td", {}, t.activated_ms ? when(t.activated_ms) : "not activated"),
        h(
          "td",
          {},
          h("a", { href: "#/failures/" + enc(t.org) + "/" + enc(t.name) }, "Failed records"),
          " · ",
          h("a", { href: "#/contacts/" + enc(t.org) }, "Contacts"),
          " · ",
          h("a", { href: "#/plugins/" + enc(t.org) }, "Plugins"),
          " · ",
          h("a", { href: "#/calendar/" + enc(t.org) }, "Calendar defaults"),
          " · ",
          h("a", { href: "#/setup/" + enc(t.org) + "/" + enc(t.name) }, "Setup")
        )
      )
    );
    // A new tenant is declared in an org that exists: the signed-in admin's own, or each org
    // the service admin sees.
    const orgs = me.role === "org_admin" ? [me.org] : [...new Set(tenants.map((t) => t.org))];
    // A new org: the service admin's alone.
    const newOrg = me.role === "admin" ? [h("a", { href: "#/setup", id: "new-org-link" }, "Set up a new org")] : [];
    const declare = orgs.length || newOrg.length
      ? h("p", { class: "actions", id: "declare-links" }, orgs.map((o) => h("a", { href: "#/setup/" + enc(o) }, "Set up a new tenant in " + o)).concat(newOrg))
      : null;
    const retryMsg = h("span", { role: "status" });
    const retryAll =
      me.role === "admin"
        ? h("div", { class: "actions" },
            h("button", { type: "button", class: "secondary", onclick: async () => {
              try {
                const plan = await api("POST", "/api/retry?since=30d");
                say(retryMsg, plan.runs.length ? "Retry runs started: " + plan.runs.map((r) => "run " + r.run_id + " (" + r.mailbox_ids.length + " mailbox(es))").join(", ") : "Nothing to retry: no errors in the last 30 days.");
              } catch (e) {
                say(retryMsg, "Not retried: " + e.message, true);
              }
            } }, "Retry every error of the last 30 days"),
            retryMsg)
        : null;
    return [
      retryAll,
      declare,
      tenants.length
        ? table(["Org", "Tenant", "Enabled", "Activated", "More"], rows, { id: "tenants" })
        : h("p", {}, "No tenants yet: declare an org and its first tenant with `m365sync apply` or `m365sync tenant add`."),
    ];
  });
}

/** A mailbox's health in words, exactly as the API has it, plus what is resting or failing. */
function healthCell(m, subs) {
  const notes = [];
  if (m.health_detail) notes.push(m.health_detail);
  if (m.backoff_until_ms && m.backoff_until_ms > Date.now()) {
    notes.push("backing off until " + when(m.backoff_until_ms));
  }
  if (!m.enabled) notes.push("disabled: it is not synced until enabled");
  for (const s of subs) {
    if (s.status === "failing") {
      notes.push(
        s.resource + " notifications failing, polled at the cadence: " + (s.detail || "no reason given")
      );
    }
  }
  return h(
    "td",
    {},
    h("span", { class: "health health-" + m.health }, m.health),
    notes.length ? h("div", { class: "muted" }, notes.join("; ")) : null
  );
}

// A mailbox's backfill as the API gives it: folders still in their first round, and Graph's
// item count of those folders as an upper bound (it counts what is stored already and mail
// older than an age limit too).
function backlogText(b) {
  if (!b) return "not started: its folders are found on its first sync";
  if (b.folders_pending === 0) return "done (" + b.folders + " folders)";
  return (
    b.folders_pending + " of " + b.folders + " folders left, at most " +
    b.messages_at_most.toLocaleString("en") + " messages"
  );
}

async function tenantPage(org, tenant) {
  const base = "/api/tenants/" + enc(org) + "/" + enc(tenant);
  await page("Tenant " + org + "/" + tenant, async () => {
    const [mailboxes, subs] = await Promise.all([
      api("GET", base + "/mailboxes"),
      api("GET", base + "/subscriptions"),
    ]);
    const subsOf = (id) => subs.filter((s) => s.mailbox_id === id);
    const mrows = mailboxes.map((m) => {
      const own = subsOf(m.id);
      return h(
        "tr",
        { dataset: { address: m.address } },
        h("td", {}, m.address),
        healthCell(m, own),
        h("td", {}, when(m.last_success_ms)),
        h("td", {}, m.last_success_ms ? ago(m.last_success_ms) : "no success yet"),
        num(m.consecutive_failures),
        h("td", {}, m.failing_since_ms ? when(m.failing_since_ms) : "–"),
        h("td", {}, m.pending_run_id ? h("a", { href: "#/run/" + m.pending_run_id }, "run " + m.pending_run_id) : "none"),
        h("td", { class: "backlog" }, backlogText(m.mail_backlog)),
        h("td", { class: "enabled" }, m.enabled ? "yes" : "no"),
        h("td", {}, m.kind),
        h("td", {}, own.length ? own.map((s) => s.resource + ":" + s.status).join(" ") : "–"),
        h("td", {}, verifyButton(base, m.address), " ", switchButton(base, m))
      );
    });
    const syncMsg = h("span", { class: "muted", role: "status" });
    const syncBtn = h(
      "button",
      {
        type: "button",
        id: "sync-now",
        onclick: async () => {
          syncBtn.disabled = true;
          try {
            await api("POST", base + "/sync");
            say(syncMsg, "Sync requested: the workers start it within a tick.");
          } catch (e) {
            say(syncMsg, "Not started: " + e.message, true);
          } finally {
            syncBtn.disabled = false;
          }
        },
      },
      "Sync now"
    );
    const runsBox = h("div", { id: "tenant-runs" });
    const trail = []; // `before` of each page shown so far, for Newer
    // Filters: by age and errors only; a change starts again from the newest page.
    const age = h("select", { id: "runs-since", onchange: () => { trail.length = 0; loadRuns(""); } }, AGES.map(([v, t]) => h("option", { value: v }, t)));
    const errorsOnly = h("input", { type: "checkbox", id: "runs-errors", onchange: () => { trail.length = 0; loadRuns(""); } });
    const runFilters = h("div", { class: "filters" },
      h("label", { for: "runs-since" }, "Started ", age),
      h("label", { class: "check", for: "runs-errors" }, errorsOnly, " errors only"));
    const loadRuns = async (before) => {
      let runs;
      try {
        runs = await api(
          "GET",
          base + "/runs?limit=" + PAGE + (before ? "&before=" + before : "") +
            (age.value ? "&since=" + age.value : "") + (errorsOnly.checked ? "&errors_only=1" : "")
        );
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        runsBox.replaceChildren(failure(e));
        return;
      }
      runsBox.replaceChildren(
        runs.length
          ? table(
              ["Run", "Status", "Processed", "Synced", "Excluded", "Errors", "Incomplete", "Started", "Finished", "Trigger", "Figures", ""],
              runs.map(runRow),
              { id: "runs" }
            )
          : h("p", {}, age.value || errorsOnly.checked ? "No run matches these filters." : "No runs yet."),
        h(
          "div",
          { class: "pager" },
          h("button", { type: "button", class: "secondary", disabled: !trail.length, onclick: () => loadRuns(trail.pop()) }, "Newer"),
          h("button", { type: "button", class: "secondary", disabled: runs.length < PAGE, onclick: () => { trail.push(before || ""); loadRuns(runs[runs.length - 1].id); } }, "Older " + PAGE)
        )
      );
    };
    const runRow = (r) => {
      const msg = h("span", { role: "status" });
      const retry =
        r.finished_ms && r.status !== "succeeded"
          ? h(
              "button",
              {
                type: "button",
                class: "secondary",
                onclick: async (ev) => {
                  ev.target.disabled = true;
                  try {
                    const plan = await api("POST", "/api/runs/" + r.id + "/retry");
                    if (!plan.runs.length) say(msg, " nothing to retry: no mailbox had errors");
                    else say(msg, " retry started as run " + plan.runs[0].run_id + " of " + plan.runs[0].mailbox_ids.length + " mailbox(es)");
                  } catch (e) {
                    say(msg, " not retried: " + e.message, true);
                  }
                },
              },
              "Retry run"
            )
          : null;
      const status =
        r.status + (r.interruptions ? ", resumed after " + r.interruptions + " interruption(s)" : "");
      return h(
        "tr",
        { dataset: { run: r.id } },
        h("td", {}, h("a", { href: "#/run/" + r.id }, String(r.id))),
        h("td", { class: "status-" + r.status }, status),
        num(r.processed),
        num(r.synced),
        num(r.emails.excluded + r.events.excluded),
        num(r.errors),
        num(r.incomplete),
        h("td", {}, when(r.started_ms)),
        h("td", {}, r.finished_ms ? when(r.finished_ms) : "running"),
        h("td", {}, r.trigger_kind),
        h("td", {}, "emails " + r.emails.processed + " read: " + r.emails.kept + " kept, " + r.emails.excluded + " excluded, " + r.emails.failed + " failed; events " + r.events.processed + " read: " + r.events.kept + " kept, " + r.events.excluded + " excluded, " + r.events.failed + " failed"),
        h("td", {}, retry, msg)
      );
    };
    await loadRuns("");
    const setup = setupBox(org, tenant);
    return [
      h("div", { class: "actions" }, syncBtn, syncMsg,
        h("a", { href: "#/failures/" + enc(org) + "/" + enc(tenant) }, "Failed records"),
        h("a", { href: "#/attachments/" + enc(org) + "/" + enc(tenant) }, "Attachments skipped"),
        h("a", { href: "#/errors/" + enc(org) + "/" + enc(tenant) }, "Errors"),
        h("a", { href: "#/settings/" + enc(org) + "/" + enc(tenant) }, "Sync settings"),
        h("a", { href: "#/calendar/" + enc(org) + "/" + enc(tenant) }, "Calendar settings"),
        h("a", { href: "#/contacts/" + enc(org) }, "Contacts of " + org),
        h("a", { href: "#/plugins/" + enc(org) }, "Plugins of " + org),
        h("a", { href: "#/setup/" + enc(org) + "/" + enc(tenant) }, "Setup assistant")),
      setup,
      h("h2", {}, "Mailboxes"),
      table(
        ["Address", "Health", "Last success", "Lag", "Failures in a row", "Failing since", "Work owed", "Backfill", "Enabled", "Kind", "Notifications", "Actions"],
        mrows,
        { id: "mailboxes" }
      ),
      h("h2", {}, "Runs"),
      h("p", { class: "muted" }, PAGE + " runs a page, newest first. Processed = kept + excluded + failed, per kind."),
      runFilters,
      runsBox,
    ];
  });
}

/** The connectivity checklist as `tenant test` words it: each step, its result and the fix. */
function checklist(report) {
  return table(
    ["Step", "Result", "Detail", "What to fix"],
    report.steps.map((st) =>
      h("tr", { dataset: { step: st.name } }, h("td", {}, st.name), h("td", { class: "step-" + st.status }, st.status), h("td", {}, st.detail), h("td", {}, st.fix || "–"))
    ),
    { id: "checklist" }
  );
}

/** "Test connectivity" and "Activate" for a tenant (`tenant test`, `activate`): answers shown
 * step by step, activation's warnings (C9's invitation warning among them) in words. */
function setupBox(org, tenant) {
  const base = "/api/orgs/" + enc(org) + "/tenants/" + enc(tenant);
  const out = h("div", { id: "setup-result", "aria-live": "polite" });
  const run = async (btn, what) => {
    btn.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, "Asking Microsoft…"));
    try {
      out.replaceChildren(...(await what()));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      out.replaceChildren(failure(e));
    } finally {
      btn.disabled = false;
    }
  };
  const test = h("button", { type: "button", id: "test-connectivity", class: "secondary", onclick: () => run(test, async () => {
    const r = await api("POST", base + "/test");
    return [h("p", { class: r.ok ? "" : "error" }, r.ok ? "Every step passed (" + r.auth_mode + " token)." : "A step failed: fix it and test again."), checklist(r)];
  }) }, "Test connectivity");
  const activate = h("button", { type: "button", id: "activate", class: "secondary", onclick: () => run(activate, async () => {
    let r;
    try {
      r = await api("POST", base + "/activate");
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 409) throw e;
      return [h("p", { class: "error", role: "alert" }, "Not activated: " + e.message)];
    }
    return [
      h("p", {}, (r.newly_activated ? "Activated: " : "Already activated: ") + r.mailboxes + " mailbox(es), mail from " + when(r.commencement_ms) + ", every " + r.cadence_minutes + " min."),
      r.warnings.length ? h("ul", { id: "activate-warnings" }, r.warnings.map((w) => h("li", {}, w))) : null,
    ];
  }) }, "Activate");
  return h("div", {}, h("div", { class: "actions" }, test, activate), out);
}

/** "Verify": each synced folder of the mailbox compared with Graph, id by id (no repair). */
function verifyButton(base, address) {
  const msg = h("span", { role: "status" });
  const btn = h(
    "button",
    {
      type: "button",
      class: "secondary",
      "aria-label": "Verify " + address + " against Microsoft",
      onclick: async () => {
        btn.disabled = true;
        say(msg, " comparing with Microsoft…");
        try {
          const r = await api("POST", base + "/mailboxes/" + enc(address) + "/verify");
          say(msg, r.complete ? " complete: every folder matches" : " not complete: folders differ from Microsoft (`m365sync mailbox verify --repair` fetches what is missing)", !r.complete);
        } catch (e) {
          say(msg, " not verified: " + e.message, true);
        } finally {
          btn.disabled = false;
        }
      },
    },
    "Verify"
  );
  return [btn, msg];
}

/** "Enable" / "Disable" of one mailbox (`mailbox enable/disable`): the row follows the answer. */
function switchButton(base, m) {
  let enabled = m.enabled;
  const msg = h("span", { role: "status" });
  const btn = h(
    "button",
    {
      type: "button",
      class: "secondary switch",
      onclick: async () => {
        btn.disabled = true;
        try {
          const r = await api("POST", base + "/mailboxes/" + enc(m.address) + "/" + (enabled ? "disable" : "enable"));
          enabled = r.enabled;
          const row = btn.closest("tr");
          row.querySelector("td.enabled").textContent = enabled ? "yes" : "no";
          row.querySelector(".health").textContent = r.health;
          say(msg, enabled ? " enabled: synced from the next run" : " disabled: not synced; its stored mail stays");
        } catch (e) {
          say(msg, " not changed: " + e.message, true);
        } finally {
          btn.textContent = enabled ? "Disable" : "Enable";
          btn.setAttribute("aria-label", (enabled ? "Disable " : "Enable ") + m.address);
          btn.disabled = false;
        }
      },
    },
    enabled ? "Disable" : "Enable"
  );
  btn.setAttribute("aria-label", (enabled ? "Disable " : "Enable ") + m.address);
  return [btn, msg];
}

// The ages the runs and errors pages filter by: the API's `since`.
const AGES = [["", "any time"], ["24h", "in the last 24 hours"], ["7d", "in the last 7 days"], ["30d", "in the last 30 days"]];

async function errorsPage(org, tenant) {
  await page("Errors of " + org + "/" + tenant, async () => {
    const box = h("div", {});
    const load = async () => {
      let lines;
      try {
        lines = await api("GET", "/api/logs?errors_only=1&limit=200&org=" + enc(org) + "&tenant=" + enc(tenant) + (age.value ? "&since=" + age.value : ""));
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        box.replaceChildren(failure(e));
        return;
      }
      box.replaceChildren(
        lines.length
          ? table(
              ["When", "Run", "Mailbox", "Message"],
              lines.map((l) => h("tr", {}, h("td", {}, when(l.at_ms)), h("td", {}, h("a", { href: "#/run/" + l.run_id }, String(l.run_id))), h("td", {}, l.mailbox || "–"), h("td", {}, l.message))),
              { id: "errors" }
            )
          : h("p", {}, "No errors.")
      );
    };
    const age = h("select", { id: "errors-since", onchange: load }, AGES.map(([v, t]) => h("option", { value: v }, t)));
    await load();
    return [
      h("p", { class: "muted" }, "The newest 200 error lines of the tenant's runs."),
      h("div", { class: "filters" }, h("label", { for: "errors-since" }, "Logged ", age)),
      box,
    ];
  });
}

/** A tenant's calendar settings (C1-C5): what applies, where it comes from, and a form to change them. */
// Calendar settings of a tenant (`#/calendar/ORG/T`), or the org's defaults (`#/calendar/ORG`)
// that every tenant without its own inherits.
async function calendarPage(org, tenant) {
  const path = tenant
    ? "/api/orgs/" + enc(org) + "/tenants/" + enc(tenant) + "/calendar/settings"
    : "/api/orgs/" + enc(org) + "/calendar/settings";
  const level = tenant ? "this tenant" : "the org (tenants without their own inherit them)";
  await page("Calendar settings of " + org + (tenant ? "/" + tenant : ", the org's defaults"), async () => {
    const cur = await api("GET", path);
    const s = cur.settings;
    const msg = h("p", { id: "calendar-result", role: "status" });
    const check = (id, label) =>
      h("label", { class: "check", for: id }, h("input", { type: "checkbox", id, checked: s[id] }), label);
    const numberField = (id, label) => h("label", { for: id }, label, h("input", { id, type: "number", min: "0", value: s[id] }));
    const commencement = s.commencement_ms ? new Date(s.commencement_ms).toISOString().slice(0, 10) : "";
    const form = h(
      "form",
      {
        class: "inline",
        id: "calendar-form",
        onsubmit: async (ev) => {
          ev.preventDefault();
          const v = (id) => document.getElementById(id);
          const body = {
            direction: v("direction").value,
            sync_internal_events: v("sync_internal_events").checked,
            delete_from_microsoft: v("delete_from_microsoft").checked,
            delete_from_crm: v("delete_from_crm").checked,
            sync_private_events: v("sync_private_events").checked,
            sync_unmatched_events: v("sync_unmatched_events").checked,
            inbound_years: Number(v("inbound_years").value),
            outbound_months: Number(v("outbound_months").value),
          };
          if (v("commencement").value) body.commencement = v("commencement").value;
          try {
            const r = await api("PUT", path, body);
            say(msg, "Saved for " + level + "." + (r.warnings.length ? " " + r.warnings.join(" ") : ""));
          } catch (e) {
            say(msg, "Not saved: " + e.message, true);
          }
        },
      },
      h(
        "label",
        { for: "direction" },
        "Direction",
        h("select", { id: "direction" }, [["to_crm", "Microsoft to CRM"], ["to_microsoft", "CRM to Microsoft"], ["two_way", "both ways"]].map(([v, t]) => h("option", { value: v, selected: s.direction === v }, t)))
      ),
      check("sync_internal_events", "Internal events"),
      check("sync_private_events", "Private events"),
      check("sync_unmatched_events", "Events with no contact"),
      check("delete_from_microsoft", "Deleting in the CRM deletes in Microsoft"),
      check("delete_from_crm", "Deleting in Microsoft deletes in the CRM"),
      h("label", { for: "commencement" }, "Commencement", h("input", { id: "commencement", type: "date", value: commencement })),
      numberField("inbound_years", "Years back (inbound)"),
      numberField("outbound_months", "Months back (outbound)"),
      h("button", { type: "submit" }, "Save")
    );
    return [
      h(
        "p",
        { class: "muted" },
        tenant
          ? ["These apply from the " + cur.from + " level now; saving makes them this tenant's own. ",
             h("a", { href: "#/calendar/" + enc(org) }, "The org's defaults")]
          : "These apply from the " + cur.from + " level now; saving makes them the org's defaults, which tenants with settings of their own do not take."
      ),
      form,
      msg,
    ];
  });
}

// A tenant's mail sync settings (Practifi's "sync settings"): shown as stored, and a PATCH of
// only the fields the admin changed, so a save never resets what another admin set meanwhile.
// The API validates each change with the rest and answers why a value is refused.
async function settingsPage(org, tenant) {
  const path = "/api/tenants/" + enc(org) + "/" + enc(tenant) + "/settings";
  await page("Sync settings of " + org + "/" + tenant, async () => {
    const s = await api("GET", path);
    const msg = h("p", { id: "settings-result", role: "status" });
    const list = (v) => v.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
    // id, label, kind (number, check, list, date, mib), help.
    const fields = [
      ["cadence_minutes", "Minutes between runs", "number", "15 (recommended) to 10,080 (weekly); change notifications sync sooner"],
      ["notifications", "Change notifications (seconds-fast capture)", "check", "off: the cadence alone syncs"],
      ["commencement_ms", "Oldest mail to sync", "date", "empty: six months before activation"],
      ["folders", "Folders to sync", "list", "* for every folder, or well-known names (inbox, sentitems, archive) and paths (Inbox/Clients), with their subfolders"],
      ["excluded_folders", "Folders never synced", "list", "they win over the folders to sync"],
      ["internal_domains", "Internal domains", "list", "the firm's own domains (E7)"],
      ["skip_internal_only", "Skip mail whose every address is internal", "check", ""],
      ["attachment_cap_bytes", "Attachment cap (MB)", "mib", "larger files are not downloaded; at most 128 MB"],
      ["page_size", "Messages per Graph page", "number", "1 to 1,000"],
      ["max_concurrency", "Graph requests in flight per tenant", "number", ""],
      ["failure_attempts", "Attempts before a failing record is parked", "number", ""],
      ["mailbox_budget", "Graph requests per mailbox per window", "number", "Outlook allows 10,000 per 600 s per app; lower it when other tools share the app registration"],
      ["mailbox_budget_secs", "Budget window (seconds)", "number", ""],
    ];
    const MIB = 1024 * 1024;
    const shown = (id, kind) => {
      const v = s[id];
      if (kind === "list") return v.join(", ");
      if (kind === "date") return v ? new Date(v).toISOString().slice(0, 10) : "";
      if (kind === "mib") return String(Math.round((v / MIB) * 100) / 100);
      return v;
    };
    // What `read` gives for a field the admin did not touch (the shown value read back, so a
    // cap shown rounded to 0.01 MB is not a change).
    const asRead = (id, kind) => {
      const v = shown(id, kind);
      if (kind === "check") return s[id];
      if (kind === "list") return list(v);
      if (kind === "date") return v ? Date.parse(v + "T00:00:00Z") : null;
      if (kind === "mib") return Math.round(Number(v) * MIB);
      return Number(v);
    };
    const read = (id, kind) => {
      const e = document.getElementById("set-" + id);
      if (kind === "check") return e.checked;
      if (kind === "list") return list(e.value);
      if (kind === "date") return e.value ? Date.parse(e.value + "T00:00:00Z") : null;
      if (kind === "mib") return Math.round(Number(e.value) * MIB);
      return Number(e.value);
    };
    const form = h(
      "form",
      {
        class: "stacked",
        id: "settings-form",
        onsubmit: async (ev) => {
          ev.preventDefault();
          const change = {};
          for (const [id, , kind] of fields) {
            const v = read(id, kind);
            if (JSON.stringify(v) !== JSON.stringify(asRead(id, kind))) change[id] = v;
          }
          if (!Object.keys(change).length) {
            say(msg, "Nothing changed.");
            return;
          }
          try {
            const saved = await api("PATCH", path, change);
            Object.assign(s, saved);
            say(msg, "Saved: " + Object.keys(change).join(", ") + ".");
          } catch (e) {
            say(msg, "Not saved: " + e.message, true);
          }
        },
      },
      fields.map(([id, label, kind, help]) => {
        const input =
          kind === "check"
            ? h("input", { type: "checkbox", id: "set-" + id, checked: s[id] })
            : h("input", {
                id: "set-" + id,
                type: kind === "date" ? "date" : kind === "list" ? "text" : "number",
                value: shown(id, kind),
                step: kind === "mib" ? "0.01" : undefined,
              });
        const note = help ? h("span", { class: "help" }, help) : null;
        return kind === "check"
          ? h("label", { class: "check", for: "set-" + id }, input, label, note)
          : h("label", { for: "set-" + id }, label, input, note);
      }),
      h("button", { type: "submit" }, "Save")
    );
    return [h("p", { class: "muted" }, "The tenant's mail settings; the calendar has its own page. A change applies from the next page each worker reads."), form, msg];
  });
}

async function runPage(id) {
  await page("Run " + id, async () => {
    const [run, lines] = await Promise.all([
      api("GET", "/api/runs/" + enc(id)),
      api("GET", "/api/logs?run=" + enc(id) + "&limit=200"),
    ]);
    return [
      h("p", {}, "Status: " + run.status + "; " + run.processed + " processed, " + run.synced + " synced, " + run.errors + " errors."),
      lines.length
        ? table(
            ["When", "Level", "Tenant", "Mailbox", "Message"],
            lines.map((l) =>
              h("tr", {}, h("td", {}, when(l.at_ms)), h("td", {}, l.level), h("td", {}, l.org + "/" + l.tenant), h("td", {}, l.mailbox || "–"), h("td", {}, l.message))
            ),
            { id: "logs" }
          )
        : h("p", {}, "No log lines for this run."),
    ];
  });
}

async function failuresPage(org, tenant) {
  await page("Failed records of " + org + "/" + tenant, async () => {
    const items = await api("GET", "/api/tenants/" + enc(org) + "/" + enc(tenant) + "/failures?limit=200");
    const matches = await api("GET", "/api/tenants/" + enc(org) + "/" + enc(tenant) + "/match/failures?limit=200");
    return [
      h("p", { class: "muted" }, "Records a stage failed on (up to 200, newest first), with the plugin version that failed and its error. Runs retry them; parked ones only on request."),
      items.length
        ? table(
            ["Mailbox", "Folder", "Subject", "Stage", "Plugin", "Error", "Attempts", "Parked", "Last failed"],
            items.map((f) =>
              h("tr", {}, h("td", {}, f.mailbox), h("td", {}, f.folder_path), h("td", {}, f.subject), h("td", {}, f.stage), h("td", {}, f.plugin || "–"), h("td", {}, f.error), num(f.attempts), h("td", {}, f.parked ? "yes" : "no"), h("td", {}, when(f.last_ms)))
            ),
            { id: "failures" }
          )
        : h("p", {}, "No failed records."),
      h("h2", {}, "Matching failures"),
      matches.failures.length
        ? h(
            "div",
            {},
            h("p", { class: "muted" }, "Records the matching plugin failed on (" + matches.failures.length + " of " + matches.total.toLocaleString("en") + ", newest first). They stay out of review lists; every matching job retries them."),
            table(
              ["Kind", "Owner", "Subject", "Plugin", "Error", "Attempts", "Last failed"],
              matches.failures.map((f) =>
                h("tr", {}, h("td", {}, f.kind), h("td", {}, f.owner || "–"), h("td", {}, f.subject), h("td", {}, f.plugin || "–"), h("td", {}, f.error), num(f.attempts), h("td", {}, when(f.last_ms)))
              ),
              { id: "match-failures" }
            )
          )
        : h("p", { id: "no-match-failures" }, "The matching plugin fails on no record."),
    ];
  });
}

// Sizes as people read them: 6,000,000 bytes is "5.7 MB".
function size(bytes) {
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KB";
  return (bytes / 1024 / 1024).toFixed(1) + " MB";
}

async function attachmentsPage(org, tenant) {
  const base = "/api/tenants/" + enc(org) + "/" + enc(tenant) + "/attachments/skipped";
  await page("Attachments skipped in " + org + "/" + tenant, async () => {
    const trail = []; // `after` of each page shown so far, for Previous
    const body = h("div", {});
    const counts = h("p", { id: "skipped-counts" });
    const load = async (after) => {
      let answer;
      try {
        answer = await api("GET", base + "?limit=" + PAGE + (after ? "&after=" + enc(after) : ""));
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        body.replaceChildren(failure(e));
        return;
      }
      const words = {
        "over-cap": "over the size cap",
        reference: "links",
        unsupported: "of an unknown kind",
        "fetch-failed": "that Graph failed to give",
        other: "for another reason",
      };
      counts.textContent =
        Object.entries(answer.counts)
          .filter(([, n]) => n > 0)
          .map(([code, n]) => n.toLocaleString("en") + " " + (words[code] || code))
          .join(", ") || "None skipped.";
      const rows = answer.attachments.map((a) =>
        h(
          "tr",
          { dataset: { code: a.code } },
          h("td", {}, when(a.sent_ms)),
          h("td", {}, a.mailbox || "–"),
          h("td", {}, a.subject),
          h("td", {}, a.name),
          h("td", { class: "num" }, a.code === "reference" ? "–" : size(a.size)),
          h("td", {}, a.code),
          h("td", {}, a.reason)
        )
      );
      const prev = h("button", { type: "button", class: "secondary", disabled: trail.length === 0, onclick: () => load(trail.pop() || "") }, "Previous");
      const next = h(
        "button",
        {
          type: "button",
          class: "secondary",
          disabled: !answer.next,
          onclick: () => {
            trail.push(after || "");
            load(answer.next);
          },
        },
        "Next " + PAGE
      );
      body.replaceChildren(
        rows.length
          ? table(["Sent", "Mailbox", "Subject", "Attachment", "Size", "Code", "Why, and what to do"], rows, { id: "skipped" })
          : h("p", {}, "No attachment was skipped."),
        h("div", { class: "pager" }, prev, next)
      );
    };
    await load("");
    return [
      h(
        "p",
        { class: "muted" },
        "Attachments of stored emails that were not stored, the most recently stored email first. Files over the cap are fetched once the tenant's attachment cap allows them; failed fetches the next time their email is synced; links stay links."
      ),
      counts,
      body,
    ];
  });
}

/** A CRM listing of an org (contacts, entities): a search box and pages of PAGE by the API's
 * `after` cursor (the last id of the page before), with Previous and Next. `o` names the API
 * path, the ids, the columns, one row per record, and what the page links to. */
async function searchList(org, o) {
  let filter = "";
  const trail = []; // `after` of each page shown so far, for Previous
  const body = h("div", {});
  const load = async (after) => {
    const q = "?limit=" + PAGE + (filter ? "&filter=" + enc(filter) : "") + (after ? "&after=" + after : "");
    let items;
    try {
      items = await api("GET", "/api/orgs/" + enc(org) + "/" + o.path + q);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      body.replaceChildren(failure(e));
      return;
    }
    const prev = h("button", { type: "button", class: "secondary", disabled: trail.length === 0, onclick: () => load(trail.pop() || "") }, "Previous");
    const next = h(
      "button",
      {
        type: "button",
        class: "secondary",
        disabled: items.length < PAGE,
        onclick: () => {
          trail.push(after || "");
          load(items[items.length - 1].id);
        },
      },
      "Next " + PAGE
    );
    body.replaceChildren(
      items.length ? table(o.columns, items.map(o.row), { id: o.path }) : h("p", {}, o.none),
      h("div", { class: "pager" }, prev, next)
    );
  };
  const input = h("input", { id: o.searchId, type: "search", name: "filter" });
  const form = h(
    "form",
    {
      class: "inline",
      role: "search",
      onsubmit: (ev) => {
        ev.preventDefault();
        filter = input.value.trim();
        trail.length = 0;
        load("");
      },
    },
    h("label", { for: o.searchId }, o.searchLabel, input),
    h("button", { type: "submit" }, "Search")
  );
  show(o.title, h("p", {}, o.link), form, body);
  await load("");
}

async function contactsPage(org) {
  await searchList(org, {
    path: "contacts",
    title: "Contacts of " + org,
    link: h("a", { href: "#/entities/" + enc(org) }, "Entities of " + org),
    searchId: "contact-search",
    searchLabel: "Name or address contains",
    columns: ["Name", "Email", "Other addresses", "Company"],
    none: "No contacts match.",
    row: (c) =>
      h(
        "tr",
        {},
        h("td", {}, h("a", { href: "#/contact/" + enc(org) + "/" + c.id }, c.name)),
        h("td", {}, c.email || "–"),
        h("td", {}, [c.alt_email, ...(c.contact_points || [])].filter(Boolean).join(", ") || "–"),
        h("td", {}, c.entity_name || "–")
      ),
  });
}

// An org's entities (companies, households): search by name or domain, paged as contacts.
async function entitiesPage(org) {
  await searchList(org, {
    path: "entities",
    title: "Entities of " + org,
    link: h("a", { href: "#/contacts/" + enc(org) }, "Contacts of " + org),
    searchId: "entity-search",
    searchLabel: "Name or domain contains",
    columns: ["Name", "Kind", "Domains", "CRM id"],
    none: "No entities match.",
    row: (e) =>
      h("tr", { dataset: { entity: String(e.id) } }, h("td", {}, e.name), h("td", {}, String(e.kind)), h("td", {}, (e.domains || []).join(", ") || "–"), h("td", {}, e.external_id || "–")),
  });
}

async function contactPage(org, id) {
  const base = "/api/orgs/" + enc(org) + "/contacts/" + enc(id);
  let contact;
  try {
    contact = await api("GET", base);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    show("Contact " + id, failure(e));
    return;
  }
  const body = h("div", {});
  const load = async (before) => {
    let page;
    try {
      page = await api("GET", base + "/timeline?limit=" + PAGE + (before ? "&before=" + enc(before) : ""));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      body.replaceChildren(failure(e));
      return;
    }
    const rows = page.items.map((i) =>
      h(
        "tr",
        { dataset: { kind: i.kind } },
        h("td", {}, i.kind),
        h("td", {}, when(i.occurred_ms)),
        h("td", { class: "subject" }, i.subject),
        h("td", {}, i.from),
        h("td", {}, i.field === i.source ? i.field : i.field + " (" + i.source + ")"),
        h("td", {}, i.reason),
        h("td", {}, i.seen_in.map((s) => s.tenant + ": " + s.mailbox).join(", "))
      )
    );
    body.replaceChildren(
      page.items.length
        ? table(["Kind", "When", "Subject", "From / organizer", "Linked by", "Why", "Seen in"], rows, { id: "timeline" })
        : h("p", {}, "Nothing on this contact's timeline yet."),
      h(
        "div",
        { class: "pager" },
        before ? h("button", { type: "button", class: "secondary", onclick: () => load("") }, "Newest") : null,
        h("button", { type: "button", class: "secondary", disabled: !page.next || page.items.length < PAGE, onclick: () => load(page.next) }, "Older " + PAGE)
      )
    );
  };
  const addrs = [contact.email, contact.alt_email, ...(contact.contact_points || [])].filter(Boolean);
  show(
    contact.name,
    h("p", {}, (addrs.join(", ") || "no address") + (contact.entity_name ? " · " + contact.entity_name : "")),
    h("h2", {}, "Timeline (emails and events)"),
    body
  );
  await load("");
}

// ---- user pages ----------------------------------------------------------------------------

async function reviewPage() {
  const state = { since: "", until: "", domain: "", trail: [], before: "" };
  const list = h("div", {});
  const result = h("p", { id: "map-result", role: "status" });
  const load = async () => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (state.since) q.set("since", state.since);
    if (state.until) q.set("until", state.until);
    if (state.domain) q.set("domain", state.domain);
    if (state.before) q.set("before", state.before);
    let page;
    try {
      page = await api("GET", "/api/me/review?" + q);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      list.replaceChildren(failure(e));
      return;
    }
    const all = h("input", {
      type: "checkbox",
      id: "pick-all",
      "aria-label": "Select every email on this page",
      onchange: (ev) => list.querySelectorAll("input.pick").forEach((c) => (c.checked = ev.target.checked)),
    });
    const rows = page.items.map((i) =>
      h(
        "tr",
        {},
        h("td", {}, h("input", { type: "checkbox", class: "pick", id: "pick-" + i.email_id, value: i.email_id, "aria-label": "Select: " + i.subject })),
        h("td", {}, when(i.sent_ms)),
        h("td", {}, i.sender),
        h("td", { class: "subject" }, h("label", { for: "pick-" + i.email_id }, i.subject)),
        h("td", {}, i.mailbox)
      )
    );
    const headRow = h("tr", {}, h("th", { scope: "col" }, all), ...["Sent", "From", "Subject", "Mailbox"].map((t) => h("th", { scope: "col" }, t)));
    list.replaceChildren(
      page.items.length
        ? h("div", { class: "table-wrap" }, h("table", { id: "review" }, h("thead", {}, headRow), h("tbody", {}, rows)))
        : h("p", {}, "No unmatched emails" + (state.since || state.until || state.domain ? " match these filters." : ": everything is linked.")),
      h(
        "div",
        { class: "pager" },
        h("button", { type: "button", class: "secondary", disabled: !state.trail.length, onclick: () => { state.before = state.trail.pop(); load(); } }, "Newer"),
        h("button", { type: "button", class: "secondary", disabled: page.items.length < PAGE, onclick: () => { state.trail.push(state.before); state.before = page.next; load(); } }, "Older " + PAGE)
      )
    );
  };
  const field = (id, label, type) => h("label", { for: id }, label, h("input", { id, type, name: id }));
  const filters = h(
    "form",
    {
      class: "inline",
      id: "review-filters",
      onsubmit: (ev) => {
        ev.preventDefault();
        state.since = document.getElementById("since").value;
        state.until = document.getElementById("until").value;
        state.domain = document.getElementById("domain").value.trim();
        state.before = "";
        state.trail = [];
        load();
      },
    },
    field("since", "Sent from", "date"),
    field("until", "Sent before", "date"),
    field("domain", "Sender's domain", "text"),
    h("button", { type: "submit" }, "Filter")
  );
  // The contact to map to: searched among the org's contacts (read-only for a user).
  const pick = h("select", { id: "contact-select", name: "contact" }, h("option", { value: "" }, "Search for a contact first"));
  const cfilter = h("input", { id: "contact-filter", type: "search" });
  const findMsg = h("span", { class: "muted", role: "status" });
  const find = async () => {
    try {
      const found = await api("GET", "/api/me/contacts?limit=" + PAGE + "&filter=" + enc(cfilter.value.trim()));
      pick.replaceChildren(
        ...(found.length
          ? found.map((c) => h("option", { value: c.id }, c.name + (c.email ? " <" + c.email + ">" : "")))
          : [h("option", { value: "" }, "No contact matches")])
      );
      say(findMsg, found.length + " found" + (found.length === PAGE ? " (first " + PAGE + "; narrow the search)" : ""));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      say(findMsg, e.message, true);
    }
  };
  const learn = h("input", { type: "checkbox", id: "learn" });
  const mapForm = h(
    "form",
    {
      class: "inline",
      id: "map-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const emails = [...list.querySelectorAll("input.pick:checked")].map((c) => Number(c.value));
        const contact = Number(pick.value);
        if (!emails.length) return say(result, "Select the emails to map first.", true);
        if (!contact) return say(result, "Choose the contact to map them to.", true);
        try {
          const r = await api("POST", "/api/me/review/map", { emails, contact, add_address: learn.checked });
          let text = "Mapped " + r.mapped + " email(s) to " + pick.selectedOptions[0].textContent + (r.already ? " (" + r.already + " already were)" : "") + ".";
          if (r.added_addresses.length) text += " Learned: " + r.added_addresses.join(", ") + ".";
          if (r.refused_addresses.length) text += " Not learned: " + r.refused_addresses.map((a) => a[0] + " (" + a[1] + ")").join(", ") + ".";
          await load();
          say(result, text);
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          say(result, "Not mapped: " + e.message, true);
        }
      },
    },
    h("label", { for: "contact-filter" }, "Contact name or address", cfilter),
    h("button", { type: "button", id: "contact-find", class: "secondary", onclick: find }, "Find"),
    findMsg,
    h("label", { for: "contact-select" }, "Map to", pick),
    h("label", { class: "check", for: "learn" }, learn, "Learn the senders' addresses for this contact"),
    h("button", { type: "submit", id: "map" }, "Map selected")
  );
  show("My review list", h("p", { class: "muted" }, "Your emails no contact was found for. Select some, choose a contact, and map them."), filters, mapForm, result, list);
  await load();
}

/** A list of exclusion rules at one level (`path`: /api/me/rules, an org's or a tenant's) with
 * "Add rule" and "Delete" per rule; `prefix` keeps its element ids apart from another level's on
 * the same page. Answers the parts to show and a loader. */
function rulesEditor(path, prefix, none, onChange) {
  const id = (name) => prefix + name;
  const msg = h("p", { role: "status", id: id("rules-result") });
  const list = h("div", {});
  const load = async () => {
    let rules;
    try {
      rules = await api("GET", path);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      list.replaceChildren(failure(e));
      return [];
    }
    list.replaceChildren(
      rules.length
        ? table(
            ["Effect", "Applies to", "Pattern", ""],
            rules.map((r) =>
              h(
                "tr",
                { dataset: { rule: r.id } },
                h("td", {}, r.spec.effect),
                h("td", {}, r.spec.target.replace("_", " ")),
                h("td", {}, r.spec.pattern),
                h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": "Delete the rule " + r.spec.pattern, onclick: async () => {
                  try {
                    await api("DELETE", path + "/" + r.id);
                    say(msg, "Deleted the rule " + r.spec.pattern + ".");
                    await load();
                  } catch (e) {
                    say(msg, "Not deleted: " + e.message, true);
                  }
                } }, "Delete"))
              )
            ),
            { id: id("rules") }
          )
        : h("p", {}, none)
    );
    if (onChange) onChange(rules);
    return rules;
  };
  const sel = (name, opts) => h("select", { id: id(name), name }, opts.map(([v, t]) => h("option", { value: v }, t)));
  const pattern = h("input", { id: id("pattern"), name: "pattern", required: true });
  const form = h(
    "form",
    {
      class: "inline",
      id: id("rule-form"),
      onsubmit: async (ev) => {
        ev.preventDefault();
        const spec = {
          effect: document.getElementById(id("effect")).value,
          target: document.getElementById(id("target")).value,
          pattern: pattern.value.trim(),
        };
        try {
          await api("POST", path, spec);
          say(msg, "Added: " + spec.effect + " " + spec.pattern + ". It applies to mail synced from now on.");
          pattern.value = "";
          await load();
        } catch (e) {
          say(msg, "Not added: " + e.message, true);
        }
      },
    },
    h("label", { for: id("effect") }, "Effect", sel("effect", [["exclude", "exclude"], ["include", "include"]])),
    h("label", { for: id("target") }, "Compared with", sel("target", [["any_address", "any address"], ["sender", "sender"], ["recipient", "recipient"], ["subject", "subject"]])),
    h("label", { for: id("pattern") }, "Pattern (an address, *@domain, or subject text)", pattern),
    h("button", { type: "submit" }, "Add rule")
  );
  return { parts: [form, msg, list], load };
}

async function rulesPage() {
  const editor = rulesEditor("/api/me/rules", "", "You have no personal rules.");
  show("My exclusion rules", ...editor.parts);
  await editor.load();
}

async function eventsPage() {
  const trail = [];
  const list = h("div", {});
  const load = async (after) => {
    let page;
    try {
      page = await api("GET", "/api/me/events?limit=" + PAGE + (after ? "&after=" + enc(after) : ""));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      list.replaceChildren(failure(e));
      return;
    }
    list.replaceChildren(
      page.items.length
        ? table(
            ["Start", "End", "Subject", "Origin", "Sync"],
            page.items.map((e) =>
              h("tr", {}, h("td", {}, String(e.start).replace("T", " ")), h("td", {}, String(e.end).replace("T", " ")), h("td", {}, e.subject), h("td", {}, e.origin), h("td", {}, e.sync_status + (e.queued ? " (push queued)" : "")))
            ),
            { id: "events" }
          )
        : h("p", {}, "No events."),
      h(
        "div",
        { class: "pager" },
        h("button", { type: "button", class: "secondary", disabled: !trail.length, onclick: () => load(trail.pop()) }, "Earlier"),
        h("button", { type: "button", class: "secondary", disabled: !page.next, onclick: () => { trail.push(after || ""); load(page.next); } }, "Later " + PAGE)
      )
    );
  };
  show("My events", list);
  await load("");
}

// ---- plugins -------------------------------------------------------------------------------

/** The first 16 hex digits of a digest, as the CLI prints it. */
function shortDigest(d) {
  return (d || "").replace(/^sha256:/, "").slice(0, 16);
}

/** The query naming a row's level: "?tenant=T" for a tenant's row, "" for the org default. */
function levelQuery(row) {
  return row.tenant ? "?tenant=" + enc(row.tenant) : "";
}

/** The Plugins page of `org`; `done` is the sentence of an action just taken, shown on top. */
/** A file's bytes as base64, read in the browser (chunks, so a 12 MB component does not
 * overflow the call stack of `String.fromCharCode`). */
async function base64Of(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** The install form of the Plugins page: a component and the cases it must pass (or, asked
 * for, none), at the org's level or a tenant's, checked by the service before anything is
 * written; the case report is shown either way. */
function installForm(org, base, tenants) {
  const msg = h("div", { id: "install-result", role: "status" });
  const field = (id, label, input) => h("label", { for: id }, label, input);
  const level = h("select", { id: "install-level" },
    h("option", { value: "" }, "org default"),
    tenants.map((t) => h("option", { value: t }, "tenant " + t)));
  const slot = h("select", { id: "install-slot" }, ["exclusion", "mapping", "matching"].map((k) => h("option", { value: k }, k)));
  const wasm = h("input", { id: "install-wasm", type: "file", accept: ".wasm,application/wasm", required: true });
  const cases = h("input", { id: "install-cases", type: "file", accept: ".toml,text/plain" });
  const noCases = h("input", { id: "install-no-cases", type: "checkbox" });
  const submit = h("button", { type: "submit" }, "Install");
  const form = h(
    "form",
    {
      class: "inline",
      id: "install-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const file = wasm.files[0];
        const caseFile = cases.files[0];
        if (!file) return say(msg, "Choose the component (.wasm) first.", true);
        if (!caseFile && !noCases.checked) {
          return say(msg, "Choose its cases (cases.toml), or tick “without cases” to install it untested.", true);
        }
        submit.disabled = true;
        say(msg, "Checking " + file.name + " in the sandbox…");
        try {
          const body = {
            wasm_base64: await base64Of(file),
            file_name: file.name,
            cases: caseFile ? await caseFile.text() : null,
            cases_name: caseFile ? caseFile.name : null,
            no_cases: !caseFile && noCases.checked,
          };
          const q = level.value ? "?tenant=" + enc(level.value) : "";
          const r = await api("POST", base + "/" + enc(slot.value) + "/install" + q, body);
          return pluginsPage(org, r.summary, r.report);
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          msg.replaceChildren(
            h("p", { class: "error" }, "Not installed: " + e.message),
            e.data && e.data.report ? h("pre", { id: "install-report" }, e.data.report) : null
          );
        } finally {
          submit.disabled = false;
        }
      },
    },
    field("install-level", "Level", level),
    field("install-slot", "Slot", slot),
    field("install-wasm", "Component (.wasm)", wasm),
    field("install-cases", "Its cases (cases.toml)", cases),
    h("label", { class: "check", for: "install-no-cases" }, noCases, "without cases (the history records it)"),
    submit
  );
  return [h("h2", {}, "Install a component"), form, msg];
}

/** What a version decided, in its slot's words (kept/dropped, mapped, matched), and what of it
 *  is still failing. Counted by the service as records are stored, never over the mail. */
function decidedText(slot, d) {
  if (!d) return "–";
  const words = slot === "exclusion"
    ? d.kept + " kept, " + d.dropped + " dropped"
    : slot === "mapping"
      ? d.mapped + " mapped"
      : d.matched + " matched, " + d.linked + " contact links";
  return words + (d.failed ? ", " + d.failed + " failing" : "");
}

async function pluginsPage(org, done, report) {
  const base = "/api/orgs/" + enc(org) + "/plugins";
  await page("Plugins of " + org, async () => {
    const inForce = await api("GET", base);
    const detail = h("section", { id: "plugin-detail", "aria-live": "polite" });
    const history = async (row) => {
      detail.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      try {
        const r = await api("GET", base + "/" + enc(row.slot) + "/history" + levelQuery(row));
        // The built-in first: it decided everything before the first install.
        const b = r.builtin;
        const builtinRow = h("tr", { dataset: { digest: b.digest } }, h("td", {}, "–"), h("td", {}, "built-in"), h("td", {}, b.name), h("td", {}, "-"), h("td", {}, h("code", {}, shortDigest(b.digest))), h("td", {}, "–"), h("td", { class: "decided" }, decidedText(row.slot, b.decided)));
        detail.replaceChildren(
          h("h2", {}, "History of the " + row.slot + " slot, " + row.level),
          h("p", { class: "muted" }, "Decided: what each version decided " + (row.tenant ? "in this tenant" : "in the org's tenants") + " since it was first used, counted as records are stored (a record decided again counts again); failing: its records failing now."),
          table(
            ["When", "Action", "Name", "Version", "SHA-256", "Checked against", "Decided"],
            [builtinRow].concat(r.history.map((e) =>
              h("tr", { dataset: { digest: e.digest } }, h("td", {}, when(e.at_ms)), h("td", {}, e.action), h("td", {}, e.name), h("td", {}, e.version), h("td", {}, h("code", {}, shortDigest(e.digest))), h("td", {}, e.cases || "–"), h("td", { class: "decided" }, decidedText(row.slot, e.decided)))
            )),
            { id: "plugin-history" }
          ),
          r.history.length ? null : h("p", {}, "Nothing was ever installed in this slot at this level: " + (row.tenant ? "it follows the org's default." : "the built-in plugin runs."))
        );
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        detail.replaceChildren(failure(e));
      }
    };
    const shadowDiff = async (row) => {
      detail.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      try {
        const d = await api("GET", base + "/" + enc(row.slot) + "/shadow" + (row.tenant ? "?tenant=" + enc(row.tenant) + "&" : "?") + "limit=" + PAGE);
        detail.replaceChildren(
          h("h2", {}, "Shadow of the " + row.slot + " slot, " + row.level + ": " + d.shadow.name + " " + d.shadow.version),
          h("p", {}, d.agreed + " agreed, " + d.disagreed + " disagreed, " + d.failed + " failed since " + when(d.shadow.started_ms) + ". The shadow decides nothing; `m365sync plugin promote` makes it the version in force."),
          d.records.length
            ? table(
                ["When", "Tenant", "Record", "Subject", "Outcome", "Live", "Shadow"],
                d.records.map((r) =>
                  h("tr", {}, h("td", {}, when(r.at_ms)), h("td", {}, r.tenant), h("td", {}, r.record_kind), h("td", {}, r.subject), h("td", {}, r.outcome), h("td", {}, r.live + (r.live_rule ? " (" + r.live_rule + ")" : "")), h("td", {}, r.shadow + (r.shadow_rule ? " (" + r.shadow_rule + ")" : "")))
                ),
                { id: "shadow-diff" }
              )
            : h("p", {}, "No record decided otherwise so far.")
        );
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        detail.replaceChildren(failure(e));
      }
    };
    // Rollback asks first, in the page (no browser dialog), and says the API's answer.
    const rollback = (row, cell) => {
      const msg = h("span", { role: "status" });
      const ask = h("span", { class: "confirm" },
        "Roll the " + row.slot + " slot of " + row.level + " back to the version installed there before the current one? ",
        h("button", { type: "button", class: "danger", onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            const r = await api("POST", base + "/" + enc(row.slot) + "/rollback" + levelQuery(row));
            // Redrawn from the API, so the table shows what is in force now.
            return pluginsPage(org, r.summary);
          } catch (e) {
            ask.replaceWith(msg);
            say(msg, " Not rolled back: " + e.message, true);
          }
        } }, "Roll back"),
        " ",
        h("button", { type: "button", class: "secondary", onclick: () => ask.replaceWith(msg) }, "Cancel"));
      cell.append(ask);
      ask.querySelector("button").focus();
    };
    const rows = inForce.slots.map((r) => {
      const actions = h("td", {});
      actions.append(
        h("button", { type: "button", class: "secondary", "aria-label": "History of " + r.slot + ", " + r.level, onclick: () => history(r) }, "History"),
        " ",
        h("button", { type: "button", class: "secondary", "aria-label": "Roll back " + r.slot + ", " + r.level, onclick: () => rollback(r, actions) }, "Roll back…")
      );
      const shadow = r.shadow
        ? h("td", {},
            r.shadow.name + " " + r.shadow.version + " (" + r.shadow.source + "): " + r.shadow.agreed + " agreed, " + r.shadow.disagreed + " disagreed, " + r.shadow.failed + " failed ",
            r.slot !== "matching" ? h("button", { type: "button", class: "secondary", onclick: () => shadowDiff(r) }, "Diff") : null)
        : h("td", {}, "–");
      return h(
        "tr",
        { dataset: { level: r.level, slot: r.slot } },
        h("td", {}, r.level),
        h("td", {}, r.slot),
        h("td", {}, r.name),
        h("td", {}, r.version),
        h("td", {}, r.source),
        h("td", {}, h("code", {}, shortDigest(r.digest))),
        h("td", {}, r.installed_ms ? when(r.installed_ms) : "with this binary"),
        h("td", { class: "decided" }, decidedText(r.slot, r.decided)),
        shadow,
        actions
      );
    });
    const tenants = [...new Set(inForce.slots.map((r) => r.tenant).filter(Boolean))];
    return [
      done ? h("p", { id: "plugin-result", role: "status" }, done) : null,
      report ? h("pre", { id: "install-report" }, report) : null,
      h("p", { class: "muted" }, "What decides each slot, for the org's default and each tenant: installed at that level, inherited from the org's default, or the built-in plugin. A shadow is set with `m365sync plugin shadow`."),
      table(["Level", "Slot", "Name", "Version", "Why", "SHA-256", "Installed", "Decided", "Shadow", ""], rows, { id: "plugins" }),
      detail,
      ...installForm(org, base, tenants),
    ];
  });
}

// ---- setup assistant -----------------------------------------------------------------------

/** What the last setup action said, shown once on the page it navigated to. */
let setupFlash = null;

/** One numbered step: a section with its heading, its state line and its content. */
function setupStep(n, key, title, state, ...content) {
  return h(
    "section",
    { class: "step", id: "step-" + key, "aria-labelledby": "title-" + key },
    h("h2", { id: "title-" + key }, n + ". " + title),
    state,
    ...content
  );
}

/** A step's state line: `kind` is "done", "todo" or "bad". */
function stepState(key) {
  return h("p", { class: "state", id: "state-" + key, role: "status" }, "…");
}

function setState(el, text, kind) {
  el.textContent = text;
  el.className = "state state-" + (kind || "todo");
}

/** Step 1: the app registration and its client secret (`tenant add`). The secret is a
 * password field, sent once and never shown again: the API stores it sealed and answers
 * without it. */
function credentialsStep(org, t) {
  const state = stepState("credentials");
  if (t) {
    setState(state, "Done: " + t.org + "/" + t.name + " is declared (" + (t.auth_mode === "delegated" ? "delegated" : "app-only") + "), Microsoft tenant " + t.ms_tenant + ", app (client) id " + t.client_id + ". Its client secret is stored sealed and is never shown.", "done");
    const flash = setupFlash;
    setupFlash = null;
    return setupStep(1, "credentials", "Credentials", state,
      flash ? h("p", { id: "declare-result" }, flash) : null,
      t.auth_mode === "delegated" ? signInWithMicrosoft(org, t) : null,
      h("p", { class: "muted" }, "A secret is rotated with `m365sync tenant secret add` (a new one is tried first), and a declaration changed with `m365sync apply`. "),
      h("p", {}, h("a", { href: "#/setup/" + enc(org) }, "Set up another tenant in " + org)));
  }
  setState(state, "To do: declare the tenant with its app registration's credentials (Entra admin center > App registrations).", "todo");
  const field = (id, label, attrs) => h("label", { for: id }, label, h("input", Object.assign({ id, name: id, autocomplete: "off" }, attrs || {})));
  const msg = h("p", { id: "declare-result", role: "status" });
  const form = h(
    "form",
    {
      class: "inline",
      id: "declare-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const v = (id) => document.getElementById(id).value.trim();
        const body = {
          name: v("setup-name"),
          ms_tenant: v("setup-ms-tenant"),
          client_id: v("setup-client-id"),
          secret: document.getElementById("setup-secret").value,
          secret_label: v("setup-secret-label") || "initial",
        };
        if (document.getElementById("setup-delegated").checked) body.delegated = true;
        if (v("setup-authority")) body.authority = v("setup-authority");
        if (v("setup-graph-url")) body.graph_url = v("setup-graph-url");
        const submit = form.querySelector("button[type=submit]");
        submit.disabled = true;
        try {
          const r = await api("POST", "/api/orgs/" + enc(org) + "/tenants", body);
          document.getElementById("setup-secret").value = "";
          setupFlash =
            "Declared tenant " + r.tenant.org + "/" + r.tenant.name + "; its client secret is stored sealed as '" + r.secret_label + "'. " +
            (r.internal_domains ? "Internal domains set from its verified domains: " + r.internal_domains.join(", ") + ". " : "") +
            (r.internal_domains_note ? "Note: " + r.internal_domains_note + ". " : "") +
            (r.tenant.auth_mode === "delegated" ? "Next: sign in with Microsoft." : "Next: test its connectivity.");
          location.hash = "#/setup/" + enc(org) + "/" + enc(r.tenant.name);
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          say(msg, "Not declared: " + e.message, true);
        } finally {
          submit.disabled = false;
        }
      },
    },
    field("setup-name", "Tenant name (ours, unique in " + org + ")", { required: true }),
    field("setup-ms-tenant", "Microsoft tenant id or verified domain", { required: true }),
    field("setup-client-id", "Application (client) id", { required: true }),
    field("setup-secret", "Client secret value", { type: "password", required: true, autocomplete: "new-password" }),
    field("setup-secret-label", "Secret label", { value: "initial" }),
    h("label", { class: "check", for: "setup-delegated" }, h("input", { type: "checkbox", id: "setup-delegated" }), "Delegated: an admin of the tenant signs in with Microsoft (delegated permissions) instead of app-only"),
    h(
      "details",
      { class: "advanced" },
      h("summary", {}, "Another cloud (optional)"),
      h("div", { class: "inline" },
        field("setup-authority", "Authority", { placeholder: "https://login.microsoftonline.com" }),
        field("setup-graph-url", "Graph URL", { placeholder: "https://graph.microsoft.com/v1.0" }))
    ),
    h("button", { type: "submit" }, "Declare tenant")
  );
  return setupStep(1, "credentials", "Credentials", state,
    h("p", { class: "muted" }, "The app needs the application permissions Mail.Read (or Mail.ReadWrite), User.Read.All and Calendars.ReadWrite, with admin consent. Nothing syncs until the last step."),
    form, msg);
}

/** A delegated tenant's "Sign in with Microsoft": the service starts the authorization (its
 * state and PKCE verifier kept server-side, bound to this browser by a cookie) and answers the
 * identity platform's address; the browser goes there, and the service's /oauth/callback
 * brings it back here with the tenant authorized. */
function signInWithMicrosoft(org, t) {
  const msg = h("span", { id: "authorize-result", role: "status" });
  const btn = h("button", { type: "button", id: "setup-authorize", onclick: async () => {
    btn.disabled = true;
    try {
      const r = await api("POST", "/api/orgs/" + enc(org) + "/tenants/" + enc(t.name) + "/authorize");
      say(msg, "Going to Microsoft's sign-in; it comes back to " + r.redirect_uri + "…");
      location.assign(r.url);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      say(msg, "Not started: " + e.message, true);
      btn.disabled = false;
    }
  } }, "Sign in with Microsoft");
  return h("div", { class: "actions" },
    h("p", { class: "muted" }, "Delegated: an admin of the tenant signs in once and consents; the refresh token is stored sealed (as `m365sync tenant authorize` does). Sign in again to replace it."),
    btn, msg);
}

/** Step 2: the connectivity checklist (`tenant test`), each step with its fix. */
function testStep(base) {
  const state = stepState("test");
  setState(state, "Not run on this page yet: run it after declaring, and after each fix in Entra.", "todo");
  const out = h("div", { id: "test-result", "aria-live": "polite" });
  const btn = h("button", { type: "button", id: "setup-test", onclick: async () => {
    btn.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, "Asking Microsoft…"));
    try {
      const r = await api("POST", base + "/test");
      setState(state, r.ok ? "Passed: every step (" + r.auth_mode + " token)." : "Failed: fix the step below and test again.", r.ok ? "done" : "bad");
      out.replaceChildren(checklist(r));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      out.replaceChildren(failure(e));
    } finally {
      btn.disabled = false;
    }
  } }, "Test connectivity");
  return setupStep(2, "test", "Test connectivity", state, h("div", { class: "actions" }, btn), out);
}

/** Step 3: users and their mailboxes from Entra's "Download users" CSV, read in the browser and
 * sent as is; each line's result shown. */
function importStep(org, t, mailboxesPath) {
  const base = "/api/orgs/" + enc(org) + "/tenants/" + enc(t.name);
  const state = stepState("import");
  const count = async () => {
    try {
      const boxes = await api("GET", mailboxesPath);
      setState(state, boxes.length ? "Done: " + boxes.length + " mailbox(es) so far (" + boxes.filter((m) => m.enabled).length + " enabled). Import again after a change in Entra: nothing changes twice." : "To do: no mailboxes yet.", boxes.length ? "done" : "todo");
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      setState(state, "Unknown: " + e.message, "bad");
    }
  };
  count();
  const file = h("input", { type: "file", id: "setup-csv", accept: ".csv,text/csv" });
  const out = h("div", { id: "import-result", "aria-live": "polite" });
  const btn = h("button", { type: "button", id: "setup-import", onclick: async () => {
    const f = file.files[0];
    if (!f) {
      out.replaceChildren(h("p", { class: "error" }, "Choose the CSV file first."));
      return;
    }
    btn.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, "Importing " + f.name + "…"));
    try {
      const text = await f.text();
      const r = await api("POST", base + "/users/import?file=" + enc(f.name), text, "text/csv");
      out.replaceChildren(
        h("p", { class: r.errors.length ? "error" : "", id: "import-summary" }, "Imported " + r.file + ": " + r.created.length + " new, " + r.updated.length + " updated, " + r.unchanged.length + " unchanged, " + r.skipped.length + " skipped, " + r.errors.length + " error(s)." + (r.errors.length ? " Fix those lines and import again: the other rows are stored and will not change." : "")),
        r.directory_note ? h("p", { class: "muted" }, "Note: " + r.directory_note) : null,
        table(
          ["Line", "Address", "Outcome", "Problem and fix"],
          r.lines.map((l) => h("tr", { dataset: { line: l.line } }, num(l.line), h("td", {}, l.address || "–"), h("td", { class: "outcome-" + l.outcome }, l.outcome), h("td", {}, l.problem || "–"))),
          { id: "import-lines" }
        )
      );
      await count();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      out.replaceChildren(h("p", { class: "error", role: "alert" }, "Not imported: " + e.message));
    } finally {
      btn.disabled = false;
    }
  } }, "Import");
  return setupStep(3, "import", "Import users", state,
    h("p", { class: "muted" }, "In the Microsoft Entra admin center: Users > All users > Download users, then choose that file here. Each user's own mailbox is added and linked to them; disabled accounts and guests are skipped with a note; a shared mailbox is added with `m365sync mailbox add --shared --user NOMINATED`."),
    h("div", { class: "actions" }, h("label", { for: "setup-csv" }, "Entra users CSV "), file, btn),
    out);
}

/** Step 4: exclusion rules at the org's, the tenant's and a user's level. */
function rulesStep(org, t) {
  const state = stepState("rules");
  const counts = { org: null, tenant: null };
  const update = () => {
    if (counts.org === null || counts.tenant === null) return;
    const n = counts.org + counts.tenant;
    setState(state, (n ? "Done: " : "Optional: ") + counts.org + " rule(s) for all of " + org + ", " + counts.tenant + " for " + t.name + " alone. Rules act on mail synced after they are added, so add them before activating.", n ? "done" : "todo");
  };
  const orgRules = rulesEditor("/api/orgs/" + enc(org) + "/rules", "org-", "No rules for the whole org.", (r) => { counts.org = r.length; update(); });
  const tenantRules = rulesEditor("/api/orgs/" + enc(org) + "/tenants/" + enc(t.name) + "/rules", "tenant-", "No rules for this tenant alone.", (r) => { counts.tenant = r.length; update(); });
  orgRules.load();
  tenantRules.load();
  return setupStep(4, "rules", "Exclusion rules", state,
    h("h3", {}, "For every tenant of " + org),
    ...orgRules.parts,
    h("h3", {}, "For " + t.name + " only"),
    ...tenantRules.parts,
    h("h3", {}, "For one user of " + t.name),
    userRules(org, t),
    h("p", { class: "muted" }, "Users also add their own under My exclusion rules; the most specific level wins: a user's rules over the tenant's over the org's."));
}

/** A user's exclusion rules as the org's admin sets them: the user named by address, then the
 * same editor as the other levels over /api/orgs/ORG/tenants/T/users/USER/rules. */
function userRules(org, t) {
  const user = h("input", { id: "user-rules-user", name: "user", type: "email", required: true, placeholder: "alice@firm.com" });
  const box = h("div", { id: "user-rules-box" });
  const form = h(
    "form",
    {
      class: "inline",
      id: "user-rules-pick",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const who = user.value.trim().toLowerCase();
        const editor = rulesEditor("/api/orgs/" + enc(org) + "/tenants/" + enc(t.name) + "/users/" + enc(who) + "/rules", "user-", "No rules for " + who + " yet.");
        box.replaceChildren(h("p", {}, "Rules of " + who + ":"), ...editor.parts);
        await editor.load();
      },
    },
    h("label", { for: "user-rules-user" }, "User (mailbox address)", user),
    h("button", { type: "submit", class: "secondary" }, "Show the user's rules")
  );
  return h("div", {}, form, box);
}

/** Step 5: the plugins in force for the org's default and this tenant. */
function pluginsStep(org, t) {
  const state = stepState("plugins");
  const out = h("div", {});
  (async () => {
    try {
      const r = await api("GET", "/api/orgs/" + enc(org) + "/plugins");
      const rows = r.slots.filter((p) => p.level === "org default" || p.level === "tenant " + t.name);
      const own = rows.filter((p) => p.level !== "org default" && p.source === "installed").length;
      setState(state, "In force for " + t.name + ": " + rows.filter((p) => p.level !== "org default").map((p) => p.slot + " " + p.name + " " + p.version + " (" + p.source + ")").join(", ") + (own ? "" : ". The built-in or org's plugins decide; nothing to do unless the firm has its own."), "done");
      out.replaceChildren(table(["Level", "Slot", "Name", "Version", "Why"], rows.map((p) => h("tr", { dataset: { level: p.level, slot: p.slot } }, h("td", {}, p.level), h("td", {}, p.slot), h("td", {}, p.name), h("td", {}, p.version), h("td", {}, p.source))), { id: "setup-plugins" }));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      setState(state, "Unknown: " + e.message, "bad");
    }
  })();
  return setupStep(5, "plugins", "Plugins", state, out,
    h("p", {}, h("a", { href: "#/plugins/" + enc(org) }, "Open the Plugins page of " + org), " (history, rollback; install with `m365sync plugin install`)."));
}

/** Step 6: the calendar settings that apply, and the page changing them. */
function calendarStep(org, t) {
  const state = stepState("calendar");
  (async () => {
    try {
      const c = await api("GET", "/api/orgs/" + enc(org) + "/tenants/" + enc(t.name) + "/calendar/settings");
      const s = c.settings;
      setState(state, "In force (from the " + c.from + " level): direction " + s.direction + ", internal events " + (s.sync_internal_events ? "on" : "off") + ", private events " + (s.sync_private_events ? "on" : "off") + ", " + s.inbound_years + " year(s) back." + (s.direction === "to_crm" ? "" : " Events are written to Microsoft, which can email invitations to clients (C9)."), "done");
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      setState(state, "Unknown: " + e.message, "bad");
    }
  })();
  return setupStep(6, "calendar", "Calendar settings", state,
    h("p", {}, h("a", { href: "#/calendar/" + enc(org) + "/" + enc(t.name), id: "setup-calendar-link" }, "Change the calendar settings of " + t.name)));
}

/** Step 7: activation (`activate`), its warnings shown (C9's invitation warning among them);
 * a refusal shown with the checklist, and "Activate anyway" offered after a failed test. */
function activateStep(base, org, t) {
  const state = stepState("activate");
  if (t.activated_ms) setState(state, "Done: activated " + when(t.activated_ms) + ". Activating again changes nothing.", "done");
  else setState(state, "To do: nothing of " + t.name + " syncs until it is activated.", "todo");
  const out = h("div", { id: "activate-result", "aria-live": "polite" });
  const go = async (btn, force) => {
    btn.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, "Checking and activating…"));
    try {
      let r;
      try {
        r = await api("POST", base + "/activate" + (force ? "?force=true" : ""));
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 409) throw e;
        const anyway = h("button", { type: "button", class: "danger", id: "setup-activate-anyway", onclick: () => go(anyway, true) }, "Activate anyway");
        out.replaceChildren(
          h("p", { class: "error", role: "alert" }, "Not activated: " + e.message.replace(/ \(through the API: .*\)$/, "")),
          e.data && e.data.report ? checklist(e.data.report) : null,
          /--force/.test(e.message) ? h("div", { class: "actions" }, anyway) : null
        );
        return;
      }
      setState(state, "Done: activated " + when(r.activated_ms) + ".", "done");
      out.replaceChildren(
        h("p", { id: "activate-summary" }, (r.newly_activated ? "Activated: " : "Already activated: ") + r.mailboxes + " mailbox(es), mail from " + when(r.commencement_ms) + ", every " + r.cadence_minutes + " min, " + r.rules + " rule(s) at org and tenant level."),
        r.warnings.length ? h("div", {}, h("p", {}, "Warnings:"), h("ul", { id: "activate-warnings" }, r.warnings.map((w) => h("li", {}, w)))) : null,
        h("p", {}, h("a", { href: "#/tenant/" + enc(org) + "/" + enc(t.name), id: "to-tenant" }, "See its mailboxes and first run on the tenant page"))
      );
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      out.replaceChildren(failure(e));
    } finally {
      btn.disabled = false;
    }
  };
  const btn = h("button", { type: "button", id: "setup-activate", onclick: () => go(btn, false) }, "Activate");
  return setupStep(7, "activate", "Activate", state, h("div", { class: "actions" }, btn), out);
}

/** `#/setup`: a new org (the service admin only; an org admin's token belongs to its org
 * already), then on to declaring its first tenant. Refusals are the API's words. */
async function newOrgPage() {
  await page("Set up a new org", async () => {
    if (me.role !== "admin") throw new ApiError(403, "creating an org needs the service's admin token");
    const msg = h("p", { id: "org-result", role: "status" });
    const input = h("input", { id: "org-name", name: "org-name", autocomplete: "off", required: true });
    const form = h(
      "form",
      {
        class: "inline",
        id: "org-form",
        onsubmit: async (ev) => {
          ev.preventDefault();
          const submit = form.querySelector("button[type=submit]");
          submit.disabled = true;
          try {
            const r = await api("POST", "/api/orgs", { name: input.value });
            setupFlash = "Created org " + r.name + ". Next: declare its first tenant.";
            location.hash = "#/setup/" + enc(r.name);
          } catch (e) {
            if (!(e instanceof ApiError)) throw e;
            say(msg, "Not created: " + e.message, true);
          } finally {
            submit.disabled = false;
          }
        },
      },
      h("label", { for: "org-name" }, "Org name (the firm; one word of letters, digits, '-', '_' or '.')", input),
      h("button", { type: "submit" }, "Create the org")
    );
    return [
      h("p", { class: "muted" }, "An org is a firm: its tenants, CRM, plugins and rules are its own. Then declare its first tenant."),
      h("section", { class: "step", id: "step-org", "aria-labelledby": "title-org" },
        h("h2", { id: "title-org" }, "New org"),
        h("p", { class: "state state-todo", id: "state-org", role: "status" }, "To do: name the org."),
        form, msg),
    ];
  });
}

/** `#/setup/ORG[/T]`: Practifi's setup in its order. Without a tenant only the credentials
 * step shows (the rest needs a declared tenant); each step shows its state and can be redone. */
async function setupPage(org, tenant) {
  await page(tenant ? "Set up " + org + "/" + tenant : "Set up a new tenant in " + org, async () => {
    // Scoped as the API is: another org's admin gets its 404, a user its 403.
    const tenants = await api("GET", "/api/tenants?org=" + enc(org));
    const t = tenant ? tenants.find((x) => x.name === tenant) : null;
    if (tenant && !t) throw new ApiError(404, "no tenant '" + tenant + "' in org '" + org + "'");
    const intro = h("p", { class: "muted" }, "The steps in Practifi's order. Each shows its state and can be done again.");
    if (!t) {
      const flash = setupFlash;
      setupFlash = null;
      return [flash ? h("p", { id: "org-result", role: "status" }, flash) : null, intro, credentialsStep(org, null), h("p", { class: "muted" }, "Then: test connectivity, import users, exclusion rules, plugins, calendar settings, activate.")];
    }
    const base = "/api/orgs/" + enc(org) + "/tenants/" + enc(t.name);
    const mailboxes = "/api/tenants/" + enc(org) + "/" + enc(t.name) + "/mailboxes";
    return [
      intro,
      credentialsStep(org, t),
      testStep(base),
      importStep(org, t, mailboxes),
      rulesStep(org, t),
      pluginsStep(org, t),
      calendarStep(org, t),
      activateStep(base, org, t),
    ];
  });
}

// ---- routing -------------------------------------------------------------------------------

async function route() {
  if (!me) return;
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === location.hash) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const [name, a, b] = parts;
  switch (name) {
    case undefined:
      location.hash = me.role === "user" ? "#/review" : "#/tenants";
      return;
    case "tenants":
      return tenantsPage();
    case "tenant":
      return tenantPage(a, b);
    case "run":
      return runPage(a);
    case "failures":
      return failuresPage(a, b);
    case "attachments":
      return attachmentsPage(a, b);
    case "settings":
      return settingsPage(a, b);
    case "errors":
      return errorsPage(a, b);
    case "calendar":
      return calendarPage(a, b);
    case "contacts":
      return contactsPage(a);
    case "entities":
      return entitiesPage(a);
    case "plugins":
      return pluginsPage(a);
    case "setup":
      return a ? setupPage(a, b) : newOrgPage();
    case "contact":
      return contactPage(a, b);
    case "review":
      return reviewPage();
    case "rules":
      return rulesPage();
    case "events":
      return eventsPage();
    default:
      show("Not found", h("p", {}, "The console has no page " + location.hash + "."));
  }
}

async function start() {
  document.getElementById("signin-form").addEventListener("submit", signIn);
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  const params = new URLSearchParams(location.search);
  const refused = params.get("signin") === "refused";
  // Back from "Sign in with Microsoft" (the service's callback): said once on the setup page.
  if (params.get("oauth") === "authorized") {
    setupFlash = "Signed in with Microsoft: the tenant is authorized and its refresh token is stored sealed. Next: test its connectivity.";
    history.replaceState(null, "", "/" + location.hash);
  }
  try {
    const r = await fetch("/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.ok) return signedIn(await r.json());
  } catch (_) {
    // shown as signed out below
  }
  signedOut(refused ? "This token is not valid; paste the whole token." : "");
}

document.addEventListener("DOMContentLoaded", start);
