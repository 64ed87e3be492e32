"""msgraph-sdk: calendarView delta against the simulator's own calendar view, then one new event."""

import asyncio
import urllib.parse
from datetime import datetime, timedelta, timezone

from simclient import delta_round, graph_client, prefer_config, split_removed

FMT = "%Y-%m-%dT%H:%M:%SZ"


def parse_graph_time(dt):
    """`{"dateTime":"2026-12-09T20:30:00.0000000","timeZone":"UTC"}` -> aware UTC datetime."""
    assert dt.time_zone in (None, "UTC"), dt.time_zone
    return datetime.fromisoformat(dt.date_time[:19]).replace(tzinfo=timezone.utc)


async def event_window(client, upn):
    """A window that covers the user's stored events, found by listing them through the SDK."""
    from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder

    params = EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
        select=["id", "start", "end", "type"], top=50)
    builder = client.users.by_user_id(upn).events
    response = await builder.get(request_configuration=prefer_config(params))
    starts = []
    while True:
        starts += [parse_graph_time(e.start) for e in response.value or []]
        if not response.odata_next_link:
            break
        response = await builder.with_url(response.odata_next_link).get()
    assert starts, f"{upn} has no events"
    first = min(starts).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    return first, max(starts) + timedelta(days=2)


def calendar_view_delta(client, upn, start, end):
    from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import (
        DeltaRequestBuilder,
    )

    params = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
        start_date_time=start.strftime(FMT), end_date_time=end.strftime(FMT))
    return client.users.by_user_id(upn).calendar_view.delta, prefer_config(params)


def sim_calendar_view(sim, upn, start, end):
    query = urllib.parse.urlencode({"user": upn, "start": start.strftime(FMT),
                                    "end": end.strftime(FMT)})
    return sim.control("GET", f"/calendar-view?{query}")["ids"]


def test_calendar_view_delta_matches_simulator_then_sees_new_event(sim):
    upn = sim.mailbox("person", 1)["upn"]

    async def first_round():
        async with graph_client(sim) as client:
            start, end = await event_window(client, upn)
            builder, config = calendar_view_delta(client, upn, start, end)
            pages, link = await delta_round(builder, config)
            return start, end, pages, link

    start, end, pages, delta_link = asyncio.run(first_round())
    expected = sim_calendar_view(sim, upn, start, end)
    assert expected, f"no instances in {start}..{end}: pick another window"
    present, removed = split_removed([e for page in pages for e in page])
    assert removed == []
    assert all(len(page) <= 10 for page in pages), [len(p) for p in pages]
    assert sorted(present) == sorted(expected)

    slot = start + timedelta(days=1, hours=10)
    event = {"subject": "python calendar probe",
             "start": {"dateTime": slot.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
             "end": {"dateTime": (slot + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                     "timeZone": "UTC"}}
    new_id = sim.control("POST", "/events", {"user": upn, "event": event})["id"]
    assert new_id in sim_calendar_view(sim, upn, start, end)

    async def next_round():
        async with graph_client(sim) as client:
            builder, _ = calendar_view_delta(client, upn, start, end)
            return await delta_round(builder.with_url(delta_link))

    pages, final_link = asyncio.run(next_round())
    items = [e for page in pages for e in page]
    present, removed = split_removed(items)
    assert present == [new_id]
    assert removed == []
    assert items[0].subject == "python calendar probe"
    assert parse_graph_time(items[0].start) == slot
    assert final_link
