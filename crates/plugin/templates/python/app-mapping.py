"""{{name}}: a mapping plugin. It turns each Graph email and event into the CRM's record.

A starting point, not the full C8 table (m365sync's default `field-mapping` plugin has it): an
HTML body is replaced by Graph's plain-text preview rather than converted, and the reminder's
date is left for you to compute from `start` and the minutes.

The plugin runs in a sandbox with no files, network or clocks: `print()` fails the record, so
log through `host.log(LogLevel.INFO, "...")`, which goes to the tenant's log; and import modules
at the top of a file (they are loaded when the component is built: an import while a batch runs
looks for files and fails the record).
"""

from typing import List, Optional

from componentize_py_types import Ok, Result
from wit_world import exports
from wit_world.imports.types import (
    AddressRole,
    AttendeeKind,
    AttendeeStatus,
    Body,
    BodyType,
    CrmAttendee,
    CrmEmail,
    CrmEvent,
    Descriptor,
    Email,
    Event,
    Fields,
    PluginKind,
    Response,
    Sensitivity,
    ShowAs,
    ShowTimeAs,
)

NAME = "{{name}}"
VERSION = "0.1.0"


# The parts of a record this plugin reads; the host hands over only these (any other field
# arrives as None). A part left out here costs nothing per record.
FIELDS = (
    Fields.MAILBOX
    | Fields.ADDRESSES
    | Fields.NAMES
    | Fields.SUBJECT
    | Fields.BODY
    | Fields.PREVIEW
    | Fields.DATES
    | Fields.CATEGORIES
    | Fields.ATTACHMENTS
    | Fields.THREAD
    | Fields.LOCATION
    | Fields.RECURRENCE
    | Fields.ONLINE_MEETING
)


def _text(body: Optional[Body], preview: str) -> str:
    if body is not None and body.content_type == BodyType.TEXT:
        return body.content.strip()
    return preview.strip()


def _status(response: Response) -> AttendeeStatus:
    if response in (Response.ACCEPTED, Response.ORGANIZER):
        return AttendeeStatus.ACCEPTED
    if response == Response.DECLINED:
        return AttendeeStatus.DECLINED
    return AttendeeStatus.NEW


def _map_email(e: Email) -> CrmEmail:
    def with_role(*roles: AddressRole) -> List[str]:
        return [a.email for a in e.addresses or [] if a.role in roles]

    senders = with_role(AddressRole.FROM) + with_role(AddressRole.SENDER)
    return CrmEmail(
        external_id=e.id,
        internet_message_id=e.internet_message_id,
        conversation_id=e.conversation_id,
        mailbox=e.mailbox or "",
        direction=e.direction,
        from_=senders[0] if senders else None,
        to=with_role(AddressRole.TO),
        cc=with_role(AddressRole.CC),
        bcc=with_role(AddressRole.BCC),
        subject=e.subject or "",
        description=_text(e.body, e.preview or ""),
        sent=e.sent,
        received=e.received,
        importance=e.importance,
        categories=list(e.categories or []),
        attachment_count=len(e.attachments or []),
        attachment_bytes=sum(a.size for a in e.attachments or []),
    )


def _map_event(e: Event) -> CrmEvent:
    if e.show_as == ShowAs.FREE:
        show = ShowTimeAs.FREE
    elif e.show_as == ShowAs.OOF:
        show = ShowTimeAs.OUT_OF_OFFICE
    else:
        show = ShowTimeAs.BUSY
    return CrmEvent(
        external_id=e.id,
        subject=e.subject or "",
        description=_text(e.body, ""),
        all_day=e.is_all_day,
        start=e.start or "",
        end=e.end or "",
        assigned_to=e.organizer.email if e.organizer is not None else None,
        attendees=[
            CrmAttendee(
                email=a.email,
                name=a.name or "",
                status=_status(a.response),
                optional=a.kind == AttendeeKind.OPTIONAL,
            )
            for a in e.attendees or []
        ],
        location=e.location or "",
        resources=[l.email for l in e.locations or [] if l.email is not None],
        recurring=e.recurrence,
        private=e.sensitivity in (Sensitivity.PRIVATE, Sensitivity.CONFIDENTIAL),
        reminder_set=e.reminder_minutes_before_start is not None,
        reminder_at=None,
        show_time_as=show,
        status=_status(e.response_status),
        teams_meeting=e.is_online_meeting and e.online_meeting_provider == "teamsForBusiness",
        teams_url=e.online_meeting_url,
    )


class MappingPlugin(exports.MappingPlugin):
    def describe(self) -> Descriptor:
        return Descriptor(
            name=NAME, version=VERSION, kind=PluginKind.MAPPING, config=[], fields=FIELDS
        )

    def map_emails(self, batch: List[Email]) -> List[Result[CrmEmail, str]]:
        return [Ok(_map_email(e)) for e in batch]

    def map_events(self, batch: List[Event]) -> List[Result[CrmEvent, str]]:
        return [Ok(_map_event(e)) for e in batch]
