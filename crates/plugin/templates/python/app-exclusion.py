"""{{name}}: an exclusion plugin. It keeps or drops each email and event, and names the rule
that decided.

What it does (change it to your policy):
- drops a record whose every address is in the org's internal domains (`internal-only`);
- drops a record whose subject contains the configured `drop-subject` text, if set.

The plugin runs in a sandbox with no files, network or clocks: `print()` fails the record, so
log through `host.log(LogLevel.INFO, "...")`, which goes to the tenant's log; and import modules
at the top of a file (they are loaded when the component is built: an import while a batch runs
looks for files and fails the record).
"""

from typing import Iterable, List, Optional

from componentize_py_types import Ok, Result
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    ConfigOption,
    Decision,
    Descriptor,
    Email,
    Event,
    Fields,
    PluginKind,
    Verdict,
)

NAME = "{{name}}"
VERSION = "0.1.0"


class _Policy:
    """What one batch asks the host once."""

    def __init__(self) -> None:
        self.internal_domains = [d.lower() for d in host.internal_domains()]
        text = (host.config("drop-subject") or "").strip().lower()
        self.drop_subject: Optional[str] = text or None

    def decide(self, subject: str, addresses: Iterable[str]) -> Result[Verdict, str]:
        if self.drop_subject is not None and self.drop_subject in subject.lower():
            return Ok(Verdict(Decision.DROP, "drop-subject", "the subject matches"))
        addresses = list(addresses)
        if addresses and all(
            a.rpartition("@")[2].lower() in self.internal_domains for a in addresses
        ):
            return Ok(
                Verdict(Decision.DROP, "internal-only", "every address is in the internal domains")
            )
        return Ok(Verdict(Decision.KEEP, None, "no rule matched"))


class ExclusionPlugin(exports.ExclusionPlugin):
    def describe(self) -> Descriptor:
        return Descriptor(
            name=NAME,
            version=VERSION,
            kind=PluginKind.EXCLUSION,
            config=[
                ConfigOption(
                    key="drop-subject",
                    description="drop records whose subject contains this text",
                    default=None,
                )
            ],
            # The parts of a record this plugin reads; the host hands over only these (any
            # other field arrives as None). Add a part here before reading it.
            fields=Fields.SUBJECT | Fields.ADDRESSES,
        )

    def exclude_emails(self, batch: List[Email]) -> List[Result[Verdict, str]]:
        policy = _Policy()
        return [policy.decide(e.subject or "", (a.email for a in e.addresses or [])) for e in batch]

    def exclude_events(self, batch: List[Event]) -> List[Result[Verdict, str]]:
        policy = _Policy()
        out = []
        for e in batch:
            addresses = [e.organizer.email] if e.organizer is not None else []
            addresses += [a.email for a in e.attendees or []]
            out.append(policy.decide(e.subject or "", addresses))
        return out
