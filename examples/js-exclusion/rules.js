// Rule matching of the exclusion plugin, in plain JavaScript.
//
// This module imports nothing from the contract, so the same code runs under Node for quick
// checks and inside the component. `app.js` converts the contract's records into the plain
// values used here and back into verdicts.
//
// The semantics are those of the default Rust plugin (`plugins/exclusion-rules/src/rules.rs`):
// the most specific level with a matching rule decides (user, then tenant, then org); within
// that level an include beats an exclude; when no rule matches and every address is internal,
// the record is dropped by `internal-only` (E7).

// Which side of a record an address is on; reply-to counts for any-address rules only.
export const SENDER = 'sender';
export const RECIPIENT = 'recipient';
export const OTHER = 'other';

const RANK = { user: 0, tenant: 1, org: 2 };

// Addresses are lower-cased in ASCII only, as the Rust plugin does (a non-ASCII local part is
// compared as written).
export function asciiLower(text) {
  return text.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

function domainOf(address) {
  const at = address.lastIndexOf('@');
  return at >= 0 ? address.slice(at + 1) : '';
}

// What the rules look at: the lower-cased subject and each address with its side.
export class RecordView {
  constructor(subject, addresses) {
    this.subject = subject.toLowerCase();
    this.addresses = addresses.map(([side, a]) => [side, asciiLower(a.trim())]);
  }

  // E7: at least one address, and every one in `domains`.
  allInternal(domains) {
    if (this.addresses.length === 0) return false;
    return this.addresses.every(([, a]) => domains.includes(domainOf(a)));
  }
}

// `*`-glob over a whole address; `parts` is the pattern split at `*`.
function glob(parts, text) {
  if (parts.length === 1) return parts[0] === text;
  const first = parts[0];
  const last = parts[parts.length - 1];
  if (text.length < first.length + last.length || !text.startsWith(first) || !text.endsWith(last)) {
    return false;
  }
  let rest = text.slice(first.length, text.length - last.length);
  for (const part of parts.slice(1, -1)) {
    const i = rest.indexOf(part);
    if (i < 0) return false;
    rest = rest.slice(i + part.length);
  }
  return true;
}

// One rule with its pattern prepared: a subject substring, a domain or an address glob.
class CompiledRule {
  constructor({ id, level, effect, target, pattern }) {
    Object.assign(this, { id, level, effect, target });
    const p = pattern.trim().toLowerCase();
    if (target === 'subject') {
      this.shape = 'contains';
      this.value = p;
    } else if (!p.includes('@')) {
      this.shape = 'domain';
      this.value = p;
    } else if (p.startsWith('@') && !p.includes('*')) {
      this.shape = 'domain';
      this.value = p.slice(1);
    } else {
      this.shape = 'address';
      this.value = p.split('*');
    }
  }

  wanted(side) {
    switch (this.target) {
      case 'any-address':
        return true;
      case 'sender':
        return side === SENDER;
      case 'recipient':
        return side === RECIPIENT;
      default:
        return false;
    }
  }

  matches(view) {
    if (this.shape === 'contains') return this.value !== '' && view.subject.includes(this.value);
    if (this.shape === 'domain') {
      const domain = this.value;
      return view.addresses.some(([side, a]) => {
        if (!a.includes('@') || !this.wanted(side)) return false;
        const d = domainOf(a);
        return d === domain || (d.endsWith(domain) && d[d.length - domain.length - 1] === '.');
      });
    }
    return view.addresses.some(([side, a]) => this.wanted(side) && glob(this.value, a));
  }
}

// The rules of one user, most specific level first (a stable sort keeps the given order).
export class Compiled {
  constructor(rules) {
    this.rules = rules.map((r) => new CompiledRule(r)).sort((x, y) => RANK[x.level] - RANK[y.level]);
  }

  // The deciding rule, or null: the most specific level with a match decides, and within it an
  // include wins.
  decide(view) {
    let decided = null;
    for (const rule of this.rules) {
      if (decided !== null) {
        if (RANK[rule.level] > RANK[decided.level]) break;
        if (decided.effect === 'include') continue;
      }
      if (rule.matches(view)) decided = rule;
    }
    return decided;
  }
}

// A verdict in plain values: { drop, rule, reason }.
export function verdict(rule, allInternal) {
  if (rule !== null) {
    return {
      drop: rule.effect === 'exclude',
      rule: rule.id,
      reason: `${rule.level} ${rule.effect} rule ${rule.id} matched`,
    };
  }
  if (allInternal) {
    return { drop: true, rule: 'internal-only', reason: 'every address is in the internal domains' };
  }
  return { drop: false, rule: undefined, reason: 'no rule matched' };
}
