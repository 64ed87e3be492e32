"""{{name}}: a matching plugin. It links each stored email or event to the CRM contacts whose
Email, Alternate Email or contact-point email is one of its addresses. A sync user's own address
never matches, and each contact is matched once, through its first address.

The plugin runs in a sandbox with no files, network or clocks: `print()` fails the record, so
log through `host.log(LogLevel.INFO, "...")`, which goes to the tenant's log; and import modules
at the top of a file (they are loaded when the component is built: an import while a batch runs
looks for files and fails the record).
"""

from typing import List, Optional, Tuple

from componentize_py_types import Ok, Result
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    Contact,
    ContactMatch,
    Descriptor,
    Fields,
    MatchField,
    MatchInput,
    PluginKind,
)

NAME = "{{name}}"
VERSION = "0.1.0"


def _field(contact: Contact, address: str) -> Optional[Tuple[MatchField, str]]:
    """Which field of `contact` carries `address` (lower-case), if any."""
    if contact.email is not None and contact.email.lower() == address:
        return (MatchField.EMAIL, "Email")
    if contact.alternate_email is not None and contact.alternate_email.lower() == address:
        return (MatchField.ALTERNATE_EMAIL, "Alternate Email")
    if any(p.lower() == address for p in contact.contact_points):
        return (MatchField.CONTACT_POINT, "contact-point email")
    return None


def _match(record: MatchInput) -> List[ContactMatch]:
    addresses: List[str] = []
    for a in record.addresses:
        email = a.email.strip().lower()
        if email not in addresses:
            addresses.append(email)
    # A sync user's own address is the firm's, never a client's.
    own = host.sync_users(addresses)
    addresses = [a for a, is_own in zip(addresses, own) if not is_own]
    if not addresses:
        return []
    contacts = host.contacts_by_email(addresses)
    matches: List[ContactMatch] = []
    for address in addresses:
        for contact in contacts:
            if any(m.contact == contact.id for m in matches):
                continue
            found = _field(contact, address)
            if found is not None:
                field, label = found
                matches.append(
                    ContactMatch(
                        contact=contact.id,
                        entity=contact.entity,
                        address=address,
                        field=field,
                        reason=f"{address} is the contact's {label}",
                    )
                )
    return matches


class MatchingPlugin(exports.MatchingPlugin):
    def describe(self) -> Descriptor:
        # A match input is always whole; Fields.NAMES would add display names.
        return Descriptor(
            name=NAME, version=VERSION, kind=PluginKind.MATCHING, config=[], fields=Fields(0)
        )

    def match_records(self, batch: List[MatchInput]) -> List[Result[List[ContactMatch], str]]:
        return [Ok(_match(r)) for r in batch]
