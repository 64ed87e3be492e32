"""The exclusion plugin in Python: the same policy as the default Rust plugin
(`plugins/exclusion-rules`), built with componentize-py and passing the same case file.

It exists to show that the contract is language-neutral: a firm can write its policy in Python
and install it like any other component. Build and test: see README.md.
"""

from typing import Dict, List, Optional

from componentize_py_types import Ok, Result
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    AddressRole,
    ConfigOption,
    Decision,
    Descriptor,
    Effect,
    Email,
    Event,
    Level,
    PluginKind,
    Rule,
    RuleTarget,
    Verdict,
)

import rules

_SIDE = {
    AddressRole.FROM: rules.SENDER,
    AddressRole.SENDER: rules.SENDER,
    AddressRole.TO: rules.RECIPIENT,
    AddressRole.CC: rules.RECIPIENT,
    AddressRole.BCC: rules.RECIPIENT,
    AddressRole.REPLY_TO: rules.OTHER,
}
_LEVEL = {Level.ORG: rules.ORG, Level.TENANT: rules.TENANT, Level.USER: rules.USER}
_EFFECT = {Effect.EXCLUDE: rules.EXCLUDE, Effect.INCLUDE: rules.INCLUDE}
_TARGET = {
    RuleTarget.ANY_ADDRESS: rules.ANY_ADDRESS,
    RuleTarget.SENDER: rules.TARGET_SENDER,
    RuleTarget.RECIPIENT: rules.TARGET_RECIPIENT,
    RuleTarget.SUBJECT: rules.SUBJECT,
}


def _plain(rule: Rule):
    return (rule.id, _LEVEL[rule.level], _EFFECT[rule.effect], _TARGET[rule.target], rule.pattern)


class _Batch:
    """What one batch asks the host once: the configuration, the internal domains and each
    user's rules (a delta page usually has one user)."""

    def __init__(self) -> None:
        self.internal_only = host.config("internal-only") != "false"
        self.internal = (
            [rules.ascii_lower(d.lstrip("@")) for d in host.internal_domains()]
            if self.internal_only
            else []
        )
        self.sets: Dict[Optional[str], rules.Compiled] = {}

    def decide(self, user: Optional[str], view: rules.RecordView) -> Result[Verdict, str]:
        compiled = self.sets.get(user)
        if compiled is None:
            compiled = rules.Compiled(_plain(r) for r in host.rules(user))
            self.sets[user] = compiled
        internal = self.internal_only and view.all_internal(self.internal)
        drop, rule_id, reason = rules.verdict(compiled.decide(view), internal)
        return Ok(Verdict(Decision.DROP if drop else Decision.KEEP, rule_id, reason))


class ExclusionPlugin(exports.ExclusionPlugin):
    def describe(self) -> Descriptor:
        # The same name as the Rust plugin: it is the same plugin, and the shared case file
        # checks the name. The version's build metadata says which implementation it is.
        return Descriptor(
            name="exclusion-rules",
            version="0.1.0+python",
            kind=PluginKind.EXCLUSION,
            config=[
                ConfigOption(
                    key="internal-only",
                    description="drop records whose every address is in the internal domains (E7)",
                    default="true",
                )
            ],
        )

    def exclude_emails(self, batch: List[Email]) -> List[Result[Verdict, str]]:
        b = _Batch()
        return [
            b.decide(
                e.user,
                rules.RecordView(e.subject, ((_SIDE[a.role], a.email) for a in e.addresses)),
            )
            for e in batch
        ]

    def exclude_events(self, batch: List[Event]) -> List[Result[Verdict, str]]:
        b = _Batch()
        out = []
        for e in batch:
            addresses = [(rules.SENDER, e.organizer.email)] if e.organizer is not None else []
            addresses += [(rules.RECIPIENT, a.email) for a in e.attendees]
            out.append(b.decide(e.user, rules.RecordView(e.subject, addresses)))
        return out
