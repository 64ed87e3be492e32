"""msgraph-sdk: folders and message moves through the SDK's own request builders.

The SDK sends action parameters in PascalCase ({"DestinationId": ...}); Graph reads property
names in any case, and so must the simulator. Folders created here are seen by folder delta,
and a moved message by the destination folder's message delta, under the same immutable id.
"""

import asyncio
import uuid

from simclient import delta_round, graph_client, prefer_config, split_removed


def test_sdk_creates_folders_and_moves_and_copies_messages(sim):
    from msgraph.generated.models.mail_folder import MailFolder
    from msgraph.generated.users.item.messages.item.copy.copy_post_request_body import (
        CopyPostRequestBody,
    )
    from msgraph.generated.users.item.messages.item.move.move_post_request_body import (
        MovePostRequestBody,
    )

    box = sim.mailbox("person", index=1)
    upn = box["upn"]
    inbox_ids = box["folders"]["inbox"]["ids"]
    assert len(inbox_ids) >= 2, "the seeded inbox is too small for this test"
    to_move, to_copy = inbox_ids[0], inbox_ids[1]
    name = f"Clients {uuid.uuid4().hex[:6]}"

    async def run():
        async with graph_client(sim) as client:
            user = client.users.by_user_id(upn)
            _, folders_link = await delta_round(user.mail_folders.delta)
            parent = await user.mail_folders.post(MailFolder(display_name=name))
            child = await user.mail_folders.by_mail_folder_id(parent.id).child_folders.post(
                MailFolder(display_name="Acme"))
            children = await user.mail_folders.by_mail_folder_id(parent.id).child_folders.get()
            _, acme_link = await delta_round(
                user.mail_folders.by_mail_folder_id(child.id).messages.delta)
            moved = await user.messages.by_message_id(to_move).move.post(
                MovePostRequestBody(destination_id=child.id), request_configuration=prefer_config())
            copied = await user.messages.by_message_id(to_copy).copy.post(
                CopyPostRequestBody(destination_id="archive"), request_configuration=prefer_config())
            folder_pages, _ = await delta_round(user.mail_folders.delta.with_url(folders_link))
            acme_pages, _ = await delta_round(
                user.mail_folders.by_mail_folder_id(child.id).messages.delta.with_url(acme_link))
            return parent, child, children, moved, copied, folder_pages, acme_pages

    parent, child, children, moved, copied, folder_pages, acme_pages = asyncio.run(run())
    assert parent.display_name == name and parent.id
    assert child.parent_folder_id == parent.id
    assert [f.display_name for f in children.value] == ["Acme"]
    assert moved.id == to_move, "an immutable id survives the move"
    assert moved.parent_folder_id == child.id
    assert copied.id != to_copy

    changed = {f.id: f for page in folder_pages for f in page}
    assert parent.id in changed and child.id in changed
    assert changed[child.id].parent_folder_id == parent.id
    present, removed = split_removed([m for page in acme_pages for m in page])
    assert present == [to_move] and removed == []

    truth = sim.mailbox("person", index=1)["folders"]
    acme = truth[f"{name}/Acme"]
    assert acme["ids"] == [to_move]
    assert acme["parent"] == parent.id
    assert to_move not in truth["inbox"]["ids"]
    assert to_copy in truth["inbox"]["ids"] and copied.id in truth["archive"]["ids"]
