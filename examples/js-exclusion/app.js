// The exclusion plugin in JavaScript: the same policy as the default Rust plugin
// (`plugins/exclusion-rules`), built with componentize-js and passing the same case file.
//
// It exists to show that the contract is language-neutral: a firm can write its policy in
// JavaScript and install it like any other component. Build and test: see README.md.

import { config, internalDomains, rules as hostRules } from 'm365sync:plugin/host@0.1.0';
import { Compiled, OTHER, RECIPIENT, RecordView, SENDER, asciiLower, verdict } from './rules.js';

const SIDE = {
  from: SENDER,
  sender: SENDER,
  to: RECIPIENT,
  cc: RECIPIENT,
  bcc: RECIPIENT,
  'reply-to': OTHER,
};

// What one batch asks the host once: the configuration, the internal domains and each user's
// rules (a delta page usually has one user).
class Batch {
  constructor() {
    this.internalOnly = config('internal-only') !== 'false';
    this.internal = this.internalOnly
      ? internalDomains().map((d) => asciiLower(d.replace(/^@+/, '')))
      : [];
    this.sets = new Map();
  }

  decide(user, view) {
    const key = user ?? null;
    let compiled = this.sets.get(key);
    if (compiled === undefined) {
      compiled = new Compiled(hostRules(user));
      this.sets.set(key, compiled);
    }
    const internal = this.internalOnly && view.allInternal(this.internal);
    const v = verdict(compiled.decide(view), internal);
    return {
      tag: 'ok',
      val: { decision: v.drop ? 'drop' : 'keep', rule: v.rule, reason: v.reason },
    };
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

export const exclusionPlugin = {
  // The same name as the Rust plugin: it is the same plugin, and the shared case file checks
  // the name. The version's build metadata says which implementation it is.
  describe() {
    return {
      name: 'exclusion-rules',
      version: '0.1.0+js',
      kind: 'exclusion',
      config: [
        {
          key: 'internal-only',
          description: 'drop records whose every address is in the internal domains (E7)',
          default: 'true',
        },
      ],
    };
  },

  excludeEmails(batch) {
    return each(
      batch,
      () => new Batch(),
      (b, e) =>
        b.decide(e.user, new RecordView(e.subject, e.addresses.map((a) => [SIDE[a.role], a.email]))),
    );
  },

  excludeEvents(batch) {
    return each(
      batch,
      () => new Batch(),
      (b, e) => {
        const addresses = e.organizer != null ? [[SENDER, e.organizer.email]] : [];
        for (const a of e.attendees) addresses.push([RECIPIENT, a.email]);
        return b.decide(e.user, new RecordView(e.subject, addresses));
      },
    );
  },
};
