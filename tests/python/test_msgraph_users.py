"""msgraph-sdk: listing users with $select (and $top, so nextLink paging is exercised)."""

import asyncio

import pytest

from simclient import graph_client


async def list_users(client):
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder

    params = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        select=["id", "displayName", "mail", "userPrincipalName"], top=2)
    response = await client.users.get(RequestConfiguration(query_parameters=params))
    users, pages = [], 0
    while True:
        pages += 1
        users += response.value or []
        if not response.odata_next_link:
            return users, pages
        assert pages < 100, "users paging never ends"
        response = await client.users.with_url(response.odata_next_link).get()


@pytest.mark.parametrize("sync_credential", [False, True], ids=["aio-credential", "msal-credential"])
def test_list_users_with_select_returns_every_ground_truth_user(sim, sync_credential):
    async def run():
        async with graph_client(sim, sync_credential=sync_credential) as client:
            return await list_users(client)

    users, pages = asyncio.run(run())
    by_upn = {u.user_principal_name.lower(): u for u in users}
    assert len(by_upn) == len(users), "a user was listed twice"
    assert pages >= len(users) / 2, f"$top=2 ignored: {len(users)} users on {pages} pages"
    for box in sim.truth()["mailboxes"]:
        user = by_upn.get(box["upn"].lower())
        assert user is not None, f"{box['upn']} missing from {sorted(by_upn)}"
        assert user.id == box["id"]
        assert user.display_name
        assert user.account_enabled is None, "$select ignored: accountEnabled was returned"
