"""python-o365, unpatched: subclasses point it at the simulator, then it reads an inbox."""

PREFER_IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def o365_account(sim, secret=None):
    """An O365 Account using client credentials against the simulator.

    O365 hard-codes https://graph.microsoft.com/ (MSGraphProtocol._protocol_url) and
    https://login.microsoftonline.com/{tenant} (Connection._msal_authority), and builds its MSAL
    ConfidentialClientApplication without instance_discovery=False, which would send MSAL to
    login.microsoftonline.com for instance discovery. The subclasses change just that.
    """
    from msal import ConfidentialClientApplication
    from O365 import Account, Connection, MSGraphProtocol
    from O365.utils.token import MemoryTokenBackend

    graph_url = sim.info["graph_url"]
    assert graph_url.endswith("/v1.0"), graph_url

    class SimProtocol(MSGraphProtocol):
        _protocol_url = graph_url.removesuffix("v1.0")  # service_url = _protocol_url + "v1.0/"

    class SimConnection(Connection):
        def __init__(self, credentials, **kwargs):
            super().__init__(credentials, **kwargs)
            self._msal_authority = f"{sim.info['authority']}/{self.tenant_id}"

        @property
        def msal_client(self):
            if self._msal_client is None:
                self._msal_client = ConfidentialClientApplication(
                    client_id=self.auth[0], client_credential=self.auth[1],
                    authority=self._msal_authority, token_cache=self.token_backend,
                    proxies=self.proxy, verify=self.verify_ssl, timeout=self.timeout,
                    instance_discovery=False)
            return self._msal_client

    class SimAccount(Account):
        connection_constructor = SimConnection

    return SimAccount((sim.client_id, secret or sim.secret), auth_flow_type="credentials",
                      tenant_id=sim.tenant_id, protocol=SimProtocol(),
                      token_backend=MemoryTokenBackend(), requests_delay=0,
                      default_headers=dict(PREFER_IMMUTABLE))


def test_o365_reads_shared_inbox_like_the_ground_truth(sim):
    box = sim.mailbox("shared")
    truth_ids = box["folders"]["inbox"]["ids"]
    assert len(truth_ids) > 5, "the seeded inbox is too small for this test"

    account = o365_account(sim)
    assert account.authenticate() is True
    assert account.is_authenticated
    inbox = account.mailbox(resource=box["upn"]).inbox_folder()

    one_page = list(inbox.get_messages(limit=500))  # $top=500: everything on one page
    paged = list(inbox.get_messages(limit=None, batch=4))  # $top=4, then @odata.nextLink
    few = list(inbox.get_messages(limit=5))

    for messages in (one_page, paged):
        assert sorted(m.object_id for m in messages) == sorted(truth_ids)
        assert all(isinstance(m.subject, str) and m.subject for m in messages)
    assert len(few) == 5 and {m.object_id for m in few} <= set(truth_ids)


def test_o365_wrong_secret_does_not_authenticate(sim):
    account = o365_account(sim, secret="not-the-secret")
    assert account.authenticate() is False
    assert not account.is_authenticated
