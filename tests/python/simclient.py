"""Client-side helpers shared by the tests: msgraph-sdk construction and delta walking.

Client libraries are imported inside the functions: see conftest.py about SSL_CERT_FILE.
"""

from contextlib import asynccontextmanager

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
PREFER = 'odata.maxpagesize=10, IdType="ImmutableId"'


def credential(sim, secret=None, sync=False):
    """azure-identity's ClientSecretCredential (sync: MSAL + requests; async: aiohttp)."""
    if sync:
        from azure.identity import ClientSecretCredential
    else:
        from azure.identity.aio import ClientSecretCredential
    return ClientSecretCredential(sim.tenant_id, sim.client_id, secret or sim.secret,
                                  authority=sim.info["authority"],
                                  disable_instance_discovery=True)


@asynccontextmanager
async def graph_client(sim, secret=None, sync_credential=False):
    """msgraph-sdk over azure-identity, built as an application would build it.

    Use it inside the coroutine that makes the calls: the httpx client belongs to that loop.
    """
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient

    cred = credential(sim, secret, sync_credential)
    auth = AzureIdentityAuthenticationProvider(cred, scopes=[GRAPH_SCOPE],
                                               allowed_hosts=["localhost"])
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = sim.info["graph_url"]
    try:
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        closed = cred.close()
        if closed is not None:
            await closed


def prefer_config(query_parameters=None):
    """A request configuration carrying one combined Prefer header."""
    from kiota_abstractions.base_request_configuration import RequestConfiguration

    config = RequestConfiguration(query_parameters=query_parameters)
    config.headers.add("Prefer", PREFER)
    return config


async def delta_round(builder, first_config=None):
    """One delta round: `builder.get`, then every nextLink up to the deltaLink.

    `builder` is a delta request builder (its `with_url` is used for the links).
    Returns (pages, delta_link), pages being lists of SDK model objects.
    """
    pages = []
    response = await builder.get(request_configuration=first_config or prefer_config())
    while True:
        assert response is not None, "delta answered without a body"
        pages.append(list(response.value or []))
        next_link, delta_link = response.odata_next_link, response.odata_delta_link
        assert bool(next_link) != bool(delta_link), (
            f"a page needs exactly one of nextLink/deltaLink: {next_link!r} {delta_link!r}")
        if delta_link:
            return pages, delta_link
        assert len(pages) < 1000, "delta never reached a deltaLink"
        response = await builder.with_url(next_link).get(request_configuration=prefer_config())


def split_removed(items):
    """(present ids, removed ids), in order. The SDK keeps `@removed` in additional_data."""
    present, removed = [], []
    for item in items:
        if "@removed" in (item.additional_data or {}):
            removed.append(item.id)
        else:
            present.append(item.id)
    return present, removed
