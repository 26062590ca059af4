"""POST /api/messages refuses everything the Bot Connector authentication spec refuses, with no side effect:
a real TeamsApp on 127.0.0.1, the real SDK, tokens signed with RSA keys the tests generate and publish through
a local OpenID configuration."""

from __future__ import annotations

import json

import pytest

from tests.teams_standins import OTHER_TENANT, Bot, Connector, Identity, activity, shared_runtime, teams_settings

CONCERN = "a pupil told me her stepdad hits her and she is scared to go home"

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def runtime(embedder, bundled_index, tmp_path_factory):
    return shared_runtime(embedder, bundled_index, tmp_path_factory.mktemp("teams-models"))


@pytest.fixture
def stand_ins():
    identity, connector = Identity(), Connector()
    yield identity, connector
    identity.stop()
    connector.stop()


@pytest.fixture
def bot(tmp_path, runtime, stand_ins):
    identity, connector = stand_ins
    bot = Bot(teams_settings(tmp_path, identity, connector), runtime, identity, connector)
    yield bot
    bot.close()


def nothing_happened(bot: Bot) -> None:
    """No reply, no alert, no token fetched for one, nothing claimed or recorded."""
    bot.idle()
    bot.connector.wait_quiet(0.3)
    assert bot.connector.calls() == []
    assert bot.identity.token_requests() == []
    assert bot.state.counts()["handled_events"] == 0
    assert bot.store.list() == []


def refuse(bot: Bot, token: str | None, body: dict | None = None) -> None:
    status, text, _ = bot.send(body or activity(bot.connector, CONCERN), token=token)
    assert status == 401, text
    nothing_happened(bot)


def test_a_valid_token_is_accepted_and_the_concern_recorded_before_the_2xx(bot):
    status, _, seconds = bot.send(activity(bot.connector, CONCERN))
    assert status == 202 and seconds < 5
    assert len(bot.store.list()) == 1  # durable when the Bot Connector heard back


def test_no_token(bot):
    refuse(bot, None)


def test_not_a_bearer_token(bot):
    status, _, _ = bot.send(activity(bot.connector, CONCERN), token=None,
                            headers={"Authorization": "Basic " + bot.identity.mint(bot.connector.service_url)})
    assert status == 401
    nothing_happened(bot)


def test_signed_by_another_key_under_a_published_key_id(bot):
    refuse(bot, bot.identity.mint(bot.connector.service_url, key=bot.identity.stranger))


def test_signed_by_a_key_not_in_the_jwks(bot):
    refuse(bot, bot.identity.mint(bot.connector.service_url, kid="unpublished", key=bot.identity.stranger))


def test_wrong_audience(bot):
    refuse(bot, bot.identity.mint(bot.connector.service_url, aud="99999999-1111-2222-3333-444444444444"))


def test_wrong_issuer(bot):
    refuse(bot, bot.identity.mint(bot.connector.service_url, iss="https://sts.windows.net/evil/"))


def test_expired_beyond_five_minutes_of_skew(bot):
    refuse(bot, bot.identity.mint(bot.connector.service_url, expires_in=-360, issued_ago=4000))


def test_expired_within_five_minutes_of_skew_is_accepted(bot):
    status, _, _ = bot.send(activity(bot.connector, CONCERN), token=bot.identity.mint(bot.connector.service_url, expires_in=-240,
                                                                                       issued_ago=4000))
    assert status == 202


def test_not_yet_valid_beyond_the_skew(bot):
    refuse(bot, bot.identity.mint(bot.connector.service_url, issued_ago=-600))


def test_serviceurl_claim_for_another_service_url(bot):
    refuse(bot, bot.identity.mint("https://smba.trafficmanager.net/amer/"))


def test_no_serviceurl_claim(bot):
    refuse(bot, bot.identity.mint(None))


def test_key_not_endorsed_for_msteams(bot):
    refuse(bot, bot.identity.mint(bot.connector.service_url, kid="key-webchat"))


def test_activity_from_another_channel_even_with_an_endorsed_key(bot):
    refuse(bot, bot.identity.mint(bot.connector.service_url), activity(bot.connector, CONCERN, channelId="emulator"))


def test_tenant_not_configured(bot):
    refuse(bot, bot.identity.mint(bot.connector.service_url), activity(bot.connector, CONCERN, tenant=OTHER_TENANT))


def test_an_unsigned_token(bot):
    import jwt

    unsigned = jwt.encode({"iss": "https://api.botframework.com", "aud": "x", "serviceurl": bot.connector.service_url}, None,
                          algorithm="none")
    refuse(bot, unsigned)


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2]", json.dumps({"foo": 1}).encode(),
                                  json.dumps({"type": "message", "text": "no conversation"}).encode(),
                                  json.dumps({"type": "message", "conversation": {"id": "x"}, "entities": "not a list"}).encode()])
def test_malformed_bodies_get_400_never_5xx(bot, body):
    from tests.teams_standins import post

    status, _, _ = post(bot.url, body, bot.identity.mint(bot.connector.service_url))
    assert status == 400
    nothing_happened(bot)


def test_malformed_body_without_a_token_is_refused_before_it_is_read(bot):
    from tests.teams_standins import post

    assert post(bot.url, b"{not json", None)[0] == 401


def test_a_body_over_a_megabyte_gets_413(bot):
    from tests.teams_standins import post

    body = activity(bot.connector, "x" * 1_100_000)
    assert post(bot.url, body, bot.identity.mint(bot.connector.service_url))[0] == 413
    nothing_happened(bot)


def test_unreachable_signing_keys_are_503_not_a_pass(tmp_path, runtime, stand_ins):
    identity, connector = stand_ins
    settings = teams_settings(tmp_path, identity, connector, openid_metadata_url="http://127.0.0.1:9/v1/.well-known/openidconfiguration")
    bot = Bot(settings, runtime, identity, connector)
    try:
        status, _, _ = bot.send(activity(connector, CONCERN))
        assert status == 503
        nothing_happened(bot)
    finally:
        bot.close()


def test_keys_are_fetched_from_the_configured_metadata_once(bot):
    for n in range(3):
        assert bot.send(activity(bot.connector, "help", activity_id=f"17000001{n}"))[0] == 202
    fetched = bot.identity.calls(lambda c: c.path.endswith("openidconfiguration"))
    assert len(fetched) == 1 and len(bot.identity.calls(lambda c: c.path.endswith("/keys"))) == 1


def test_a_body_that_never_finishes_arriving_gets_408_and_frees_its_slot(bot):
    import socket

    bot.app.endpoint.read_timeout = 0.5  # ten seconds in production
    token = bot.identity.mint(bot.connector.service_url)
    with socket.create_connection(("127.0.0.1", bot.port), timeout=10) as slow:
        slow.sendall(f"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"type\":".encode())
        answer = slow.recv(200).decode()
    assert answer.startswith("HTTP/1.1 408")
    nothing_happened(bot)
    assert bot.send(activity(bot.connector, "help", activity_id="1700000900001"))[0] == 202


def test_a_key_document_that_lists_no_keys_keeps_the_cached_ones(stand_ins):
    """A refresh that gets an empty key list (a fault of the host) must not refuse every token from then on."""
    import asyncio

    from bot.teams.auth import KeysUnavailable, OpenIdKeys

    identity, _ = stand_ins
    keys = OpenIdKeys(identity.openid_url, unknown_key_refresh=0.0)

    async def go():
        assert await keys.key("key-teams") is not None
        published, identity.keys = identity.keys, {}
        try:
            assert await keys.key("a-key-nobody-published") is None  # an unknown key id: refreshed, none listed
            assert await keys.key("key-teams") is not None
            with pytest.raises(KeysUnavailable):  # and with nothing cached, it is unavailable, not an empty pass
                await OpenIdKeys(identity.openid_url).key("key-teams")
        finally:
            identity.keys = published

    asyncio.run(go())
