"""msgraph-sdk + azure-identity: inbox delta against the ground truth, then one incremental round."""

import asyncio
import math

from simclient import delta_round, graph_client, split_removed


def inbox_delta(client, upn):
    return client.users.by_user_id(upn).mail_folders.by_mail_folder_id("inbox").messages.delta


def test_inbox_delta_matches_ground_truth_then_reports_new_and_deleted(sim):
    box = sim.mailbox("person", at_start=True)  # the --ground-truth file
    upn, truth_ids = box["upn"], box["folders"]["inbox"]["ids"]
    assert sorted(sim.mailbox("person")["folders"]["inbox"]["ids"]) == sorted(truth_ids)  # live
    assert box["folders"]["inbox"]["count"] == len(truth_ids)
    assert len(truth_ids) >= 2, "the seeded inbox is too small for this test"

    async def first_round():
        async with graph_client(sim) as client:
            return await delta_round(inbox_delta(client, upn))

    pages, delta_link = asyncio.run(first_round())
    items = [m for page in pages for m in page]
    present, removed = split_removed(items)
    assert removed == []
    assert all(len(page) <= 10 for page in pages), [len(p) for p in pages]  # odata.maxpagesize=10
    assert len(pages) >= math.ceil(len(truth_ids) / 10)
    assert sorted(present) == sorted(truth_ids)  # immutable ids, each exactly once
    assert all(m.subject is not None for m in items)

    delivered = sim.control("POST", "/deliver", {
        "from": "sender@ext.example", "to": [upn], "cc": [],
        "subject": "python delta probe", "body": "<p>probe</p>", "attachments": []})
    new_ids = [m["id"] for m in delivered["messages"] if m["user"].lower() == upn.lower()]
    assert len(new_ids) == 1, delivered
    gone = truth_ids[0]
    sim.control("POST", "/messages/delete", {"user": upn, "id": gone})

    async def next_round():
        async with graph_client(sim) as client:
            return await delta_round(inbox_delta(client, upn).with_url(delta_link))

    pages, final_link = asyncio.run(next_round())
    items = [m for page in pages for m in page]
    present, removed = split_removed(items)
    assert present == new_ids
    assert removed == [gone]
    removed_item = next(m for m in items if m.id == gone)
    assert removed_item.additional_data["@removed"] == {"reason": "deleted"}
    new_item = next(m for m in items if m.id == new_ids[0])
    assert new_item.subject == "python delta probe"
    assert final_link
