// {{name}}: a mapping plugin. It turns each Graph email and event into the CRM's record.
//
// A starting point, not the full C8 table (m365sync's default `field-mapping` plugin has it):
// an HTML body is replaced by Graph's plain-text preview rather than converted, and the
// reminder's date is left for you to compute from `start` and the minutes.
//
// The plugin runs in a sandbox with no files, network or console: `console.log` writes nowhere,
// so log through `log('info', '...')` from 'm365sync:plugin/host@0.2.0', which goes to the
// tenant's log. 64-bit numbers of the contract (`u64`: attachment sizes) are BigInts.

const NAME = '{{name}}';
const VERSION = '0.1.0';

// The parts of a record this plugin reads; the host hands over only these (any other field
// arrives as undefined). A part left out here costs nothing per record.
const FIELDS = {
  mailbox: true,
  addresses: true,
  names: true,
  subject: true,
  body: true,
  preview: true,
  dates: true,
  categories: true,
  attachments: true,
  thread: true,
  location: true,
  recurrence: true,
  onlineMeeting: true,
};

function text(body, preview) {
  return (body?.contentType === 'text' ? body.content : preview).trim();
}

function status(response) {
  if (response === 'accepted' || response === 'organizer') return 'accepted';
  if (response === 'declined') return 'declined';
  return 'new';
}

function mapEmail(e) {
  const withRole = (...roles) =>
    (e.addresses ?? []).filter((a) => roles.includes(a.role)).map((a) => a.email);
  const senders = [...withRole('from'), ...withRole('sender')];
  return {
    externalId: e.id,
    internetMessageId: e.internetMessageId,
    conversationId: e.conversationId,
    mailbox: e.mailbox ?? '',
    direction: e.direction,
    from: senders[0],
    to: withRole('to'),
    cc: withRole('cc'),
    bcc: withRole('bcc'),
    subject: e.subject ?? '',
    description: text(e.body, e.preview ?? ''),
    sent: e.sent,
    received: e.received,
    importance: e.importance,
    categories: [...(e.categories ?? [])],
    attachmentCount: (e.attachments ?? []).length,
    attachmentBytes: (e.attachments ?? []).reduce((sum, a) => sum + BigInt(a.size), 0n),
  };
}

function mapEvent(e) {
  const show = e.showAs === 'free' ? 'free' : e.showAs === 'oof' ? 'out-of-office' : 'busy';
  return {
    externalId: e.id,
    subject: e.subject ?? '',
    description: text(e.body, ''),
    allDay: e.isAllDay,
    start: e.start ?? '',
    end: e.end ?? '',
    assignedTo: e.organizer?.email,
    attendees: (e.attendees ?? []).map((a) => ({
      email: a.email,
      name: a.name ?? '',
      status: status(a.response),
      optional: a.kind === 'optional',
    })),
    location: e.location ?? '',
    resources: (e.locations ?? []).filter((l) => l.email != null).map((l) => l.email),
    recurring: e.recurrence,
    private: e.sensitivity === 'private' || e.sensitivity === 'confidential',
    reminderSet: e.reminderMinutesBeforeStart != null,
    reminderAt: undefined,
    showTimeAs: show,
    status: status(e.responseStatus),
    teamsMeeting: e.isOnlineMeeting && e.onlineMeetingProvider === 'teamsForBusiness',
    teamsUrl: e.onlineMeetingUrl,
  };
}

// An exception thrown out of an exported function traps the whole call, and its message is
// lost (the sandbox has no console to print it to): every record of the batch would fail with
// only "the plugin trapped". `each` answers each record on its own instead, a thrown
// exception becoming that record's error with its message, and `setup` runs what the whole
// batch needs once, its exception failing every record with its message.
const why = (e) => (e instanceof Error ? `${e.name}: ${e.message}` : `thrown: ${String(e)}`);

function each(batch, setup, answer) {
  let ctx;
  try {
    ctx = setup();
  } catch (e) {
    const err = { tag: 'err', val: why(e) };
    return batch.map(() => err);
  }
  return batch.map((record) => {
    try {
      return answer(ctx, record);
    } catch (e) {
      return { tag: 'err', val: why(e) };
    }
  });
}

// The exported interface `mapping-plugin`, in camelCase. One answer per record, in order:
// { tag: 'ok', val: record } or { tag: 'err', val: 'why' } (an error fails that record only).
export const mappingPlugin = {
  describe() {
    return { name: NAME, version: VERSION, kind: 'mapping', config: [], fields: FIELDS };
  },

  mapEmails(batch) {
    return each(batch, () => null, (_, e) => ({ tag: 'ok', val: mapEmail(e) }));
  },

  mapEvents(batch) {
    return each(batch, () => null, (_, e) => ({ tag: 'ok', val: mapEvent(e) }));
  },
};
