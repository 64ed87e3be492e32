// {{name}}: a matching plugin. It links each stored email or event to the CRM contacts whose
// Email, Alternate Email or contact-point email is one of its addresses. A sync user's own
// address never matches, and each contact is matched once, through its first address.
//
// The plugin runs in a sandbox with no files, network or console: `console.log` writes nowhere,
// so log through `log('info', '...')`, which goes to the tenant's log.

import { contactsByEmail, syncUsers } from 'm365sync:plugin/host@0.2.0';

const NAME = '{{name}}';
const VERSION = '0.1.0';

// Which field of `contact` carries `address` (lower-case), if any: [field, label].
function field(contact, address) {
  if (contact.email?.toLowerCase() === address) return ['email', 'Email'];
  if (contact.alternateEmail?.toLowerCase() === address) return ['alternate-email', 'Alternate Email'];
  if (contact.contactPoints.some((p) => p.toLowerCase() === address)) {
    return ['contact-point', 'contact-point email'];
  }
  return undefined;
}

function match(record) {
  let addresses = [];
  for (const a of record.addresses) {
    const email = a.email.trim().toLowerCase();
    if (!addresses.includes(email)) addresses.push(email);
  }
  // A sync user's own address is the firm's, never a client's.
  const own = syncUsers(addresses);
  addresses = addresses.filter((_, i) => !own[i]);
  if (addresses.length === 0) return [];
  const contacts = contactsByEmail(addresses);
  const matches = [];
  for (const address of addresses) {
    for (const contact of contacts) {
      if (matches.some((m) => m.contact === contact.id)) continue;
      const found = field(contact, address);
      if (found !== undefined) {
        matches.push({
          contact: contact.id,
          entity: contact.entity,
          address,
          field: found[0],
          reason: `${address} is the contact's ${found[1]}`,
        });
      }
    }
  }
  return matches;
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

// The exported interface `matching-plugin`, in camelCase. One answer per record, in order:
// { tag: 'ok', val: matches } or { tag: 'err', val: 'why' } (an error fails that record only).
export const matchingPlugin = {
  describe() {
    // A match input is always whole; `names: true` would add display names.
    return { name: NAME, version: VERSION, kind: 'matching', config: [], fields: {} };
  },

  matchRecords(batch) {
    return each(batch, () => null, (_, r) => ({ tag: 'ok', val: match(r) }));
  },
};
