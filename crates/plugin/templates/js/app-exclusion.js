// {{name}}: an exclusion plugin. It keeps or drops each email and event, and names the rule
// that decided.
//
// What it does (change it to your policy):
// - drops a record whose every address is in the org's internal domains (`internal-only`);
// - drops a record whose subject contains the configured `drop-subject` text, if set.
//
// The plugin runs in a sandbox with no files, network or console: `console.log` writes nowhere,
// so log through `log('info', '...')`, which goes to the tenant's log.

import { config, internalDomains } from 'm365sync:plugin/host@0.2.0';

const NAME = '{{name}}';
const VERSION = '0.1.0';

const ok = (decision, rule, reason) => ({ tag: 'ok', val: { decision, rule, reason } });

// What one batch asks the host once.
class Policy {
  constructor() {
    this.internalDomains = internalDomains().map((d) => d.toLowerCase());
    const text = (config('drop-subject') ?? '').trim().toLowerCase();
    this.dropSubject = text === '' ? undefined : text;
  }

  decide(subject, addresses) {
    if (this.dropSubject !== undefined && subject.toLowerCase().includes(this.dropSubject)) {
      return ok('drop', 'drop-subject', 'the subject matches');
    }
    const internal = (a) => this.internalDomains.includes(a.slice(a.lastIndexOf('@') + 1).toLowerCase());
    if (addresses.length > 0 && addresses.every(internal)) {
      return ok('drop', 'internal-only', 'every address is in the internal domains');
    }
    return ok('keep', undefined, 'no rule matched');
  }
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

// The exported interface `exclusion-plugin`, in camelCase.
export const exclusionPlugin = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      kind: 'exclusion',
      config: [
        {
          key: 'drop-subject',
          description: 'drop records whose subject contains this text',
          default: undefined,
        },
      ],
      // The parts of a record this plugin reads; the host hands over only these (any other
      // field arrives as undefined). Add a part here before reading it.
      fields: { subject: true, addresses: true },
    };
  },

  // One answer per record, in order: { tag: 'ok', val: verdict } or { tag: 'err', val: 'why' }
  // (an error fails that record only).
  excludeEmails(batch) {
    return each(
      batch,
      () => new Policy(),
      (policy, e) => policy.decide(e.subject ?? '', (e.addresses ?? []).map((a) => a.email)),
    );
  },

  excludeEvents(batch) {
    return each(
      batch,
      () => new Policy(),
      (policy, e) => {
        const addresses = e.organizer != null ? [e.organizer.email] : [];
        for (const a of e.attendees ?? []) addresses.push(a.email);
        return policy.decide(e.subject ?? '', addresses);
      },
    );
  },
};
