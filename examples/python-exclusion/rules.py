"""Rule matching of the exclusion plugin, in plain Python.

This module imports nothing from the generated bindings, so the same code runs under CPython
for quick checks and inside the component. `app.py` converts the contract's records into the
plain values used here (roles as strings, rules as tuples) and back into verdicts.

The semantics are those of the default Rust plugin (`plugins/exclusion-rules/src/rules.rs`):
the most specific level with a matching rule decides (user, then tenant, then org); within that
level an include beats an exclude; when no rule matches and every address is internal, the
record is dropped by `internal-only` (E7).
"""

from typing import Iterable, List, Optional, Sequence, Tuple

# Which side of a record an address is on.
SENDER = "sender"
RECIPIENT = "recipient"
OTHER = "other"  # reply-to: counts for any-address rules only

# Rule targets, levels and effects as the contract spells them.
ANY_ADDRESS, TARGET_SENDER, TARGET_RECIPIENT, SUBJECT = "any-address", "sender", "recipient", "subject"
ORG, TENANT, USER = "org", "tenant", "user"
EXCLUDE, INCLUDE = "exclude", "include"

_RANK = {USER: 0, TENANT: 1, ORG: 2}

# Addresses are lower-cased in ASCII only, as the Rust plugin does (a non-ASCII local part is
# compared as written).
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


class RecordView:
    """What the rules look at: the lower-cased subject and each address with its side."""

    __slots__ = ("subject", "addresses")

    def __init__(self, subject: str, addresses: Iterable[Tuple[str, str]]) -> None:
        self.subject = subject.lower()
        self.addresses = [(side, ascii_lower(a.strip())) for side, a in addresses]

    def all_internal(self, domains: Sequence[str]) -> bool:
        """E7: at least one address, and every one in `domains`."""
        if not self.addresses:
            return False
        for _, a in self.addresses:
            at = a.rfind("@")
            domain = a[at + 1 :] if at >= 0 else ""
            if domain not in domains:
                return False
        return True


def _glob(parts: List[str], text: str) -> bool:
    """`*`-glob over a whole address; `parts` is the pattern split at `*`."""
    if len(parts) == 1:
        return parts[0] == text
    first, middle, last = parts[0], parts[1:-1], parts[-1]
    if len(text) < len(first) + len(last) or not text.startswith(first) or not text.endswith(last):
        return False
    rest = text[len(first) : len(text) - len(last)]
    for part in middle:
        i = rest.find(part)
        if i < 0:
            return False
        rest = rest[i + len(part) :]
    return True


class CompiledRule:
    """One rule with its pattern prepared: a subject substring, a domain or an address glob."""

    __slots__ = ("id", "level", "effect", "target", "shape", "value")

    def __init__(self, rule_id: str, level: str, effect: str, target: str, pattern: str) -> None:
        self.id, self.level, self.effect, self.target = rule_id, level, effect, target
        p = pattern.strip().lower()
        if target == SUBJECT:
            self.shape, self.value = "contains", p
        elif "@" not in p:
            self.shape, self.value = "domain", p
        elif p.startswith("@") and "*" not in p:
            self.shape, self.value = "domain", p[1:]
        else:
            self.shape, self.value = "address", p.split("*")

    def _wanted(self, side: str) -> bool:
        if self.target == ANY_ADDRESS:
            return True
        if self.target == TARGET_SENDER:
            return side == SENDER
        if self.target == TARGET_RECIPIENT:
            return side == RECIPIENT
        return False

    def matches(self, view: RecordView) -> bool:
        if self.shape == "contains":
            return bool(self.value) and self.value in view.subject
        if self.shape == "domain":
            domain = self.value
            for side, a in view.addresses:
                at = a.rfind("@")
                if at < 0 or not self._wanted(side):
                    continue
                d = a[at + 1 :]
                if d == domain or (d.endswith(domain) and d[len(d) - len(domain) - 1] == "."):
                    return True
            return False
        return any(self._wanted(side) and _glob(self.value, a) for side, a in view.addresses)


class Compiled:
    """The rules of one user, most specific level first (a stable sort keeps the given order)."""

    def __init__(self, rules: Iterable[Tuple[str, str, str, str, str]]) -> None:
        self.rules = sorted((CompiledRule(*r) for r in rules), key=lambda r: _RANK[r.level])

    def decide(self, view: RecordView) -> Optional[CompiledRule]:
        """The deciding rule, or None: the most specific level with a match decides, and
        within it an include wins."""
        decided = None
        for rule in self.rules:
            if decided is not None:
                if _RANK[rule.level] > _RANK[decided.level]:
                    break
                if decided.effect == INCLUDE:
                    continue
            if rule.matches(view):
                decided = rule
        return decided


# A verdict in plain values: (drop?, rule id or None, reason).
Outcome = Tuple[bool, Optional[str], str]


def verdict(rule: Optional[CompiledRule], all_internal: bool) -> Outcome:
    if rule is not None:
        word = "include" if rule.effect == INCLUDE else "exclude"
        return (rule.effect == EXCLUDE, rule.id, f"{rule.level} {word} rule {rule.id} matched")
    if all_internal:
        return (True, "internal-only", "every address is in the internal domains")
    return (False, None, "no rule matched")
