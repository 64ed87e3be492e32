"""Identity errors as the real client libraries report them."""

import asyncio

import pytest

from simclient import graph_client


@pytest.mark.parametrize("sync_credential", [False, True], ids=["aio-credential", "msal-credential"])
def test_wrong_secret_raises_aadsts7000215_through_the_sdk(sim, sync_credential):
    from azure.core.exceptions import ClientAuthenticationError

    async def run():
        async with graph_client(sim, secret="not-the-secret",
                                sync_credential=sync_credential) as client:
            await client.users.get()

    with pytest.raises(ClientAuthenticationError) as raised:
        asyncio.run(run())
    assert "AADSTS7000215" in str(raised.value)

