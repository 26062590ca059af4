"""Conversations through the real TeamsApp: the SDK's turns over a real Conversation (the bundled policies'
index, the real safeguarding gate, SQLite in tmp_path), answering a local Bot Connector stand-in."""

from __future__ import annotations

import datetime
import time

import pytest

from tests.teams_standins import (APP_ID, APP_PASSWORD, DSL_CHANNEL, OWNER_CHANNEL, TEAM, Bot, Connector, Identity, activity,
                                  personal_conversation, shared_runtime, teams_settings)

QUESTION = "can I accept a follow from an ex-pupil aged 18?"
CLAUSE = "below the age of nineteen"
CONCERN = "a pupil told me her stepdad hits her and she is scared to go home"
CHANNEL_THREAD = "19:staffroom@thread.tacv2;messageid=1700000099000"

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def runtime(embedder, bundled_index, tmp_path_factory):
    return shared_runtime(embedder, bundled_index, tmp_path_factory.mktemp("teams-models"))


@pytest.fixture
def bot(tmp_path, runtime):
    identity, connector = Identity(), Connector()
    bot = Bot(teams_settings(tmp_path, identity, connector), runtime, identity, connector)
    yield bot
    bot.close()
    identity.stop()
    connector.stop()


def card(call) -> dict:
    [attachment] = call.body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    return attachment["content"]


def texts(element) -> str:
    """Every TextRun's and TextBlock's text in a card, in order."""
    out = []
    if isinstance(element, dict):
        if element.get("type") in ("TextRun", "TextBlock"):
            out.append(element.get("text", ""))
        for value in element.values():
            if isinstance(value, (dict, list)):
                out.append(texts(value))
    elif isinstance(element, list):
        out.extend(texts(e) for e in element)
    return "\n".join(t for t in out if t)


def buttons(content: dict) -> dict[str, dict]:
    return {a["title"]: a["data"] for a in content.get("actions", []) if a["type"] == "Action.Submit"}


def replies_to(bot: Bot, conversation: str, activity_id: str):
    path = f"{bot.connector.prefix}v3/conversations/{conversation}/activities/{activity_id}"
    return bot.connector.calls(lambda c: c.method == "POST" and c.path == path)


def answered(bot: Bot, conversation: str, activity_id: str, count: int = 1):
    path = f"{bot.connector.prefix}v3/conversations/{conversation}/activities/{activity_id}"
    return bot.connector.wait_for(lambda c: c.method == "POST" and c.path == path, count, timeout=60)


def personal_messages(bot: Bot, user: str = "29:staff"):
    return bot.connector.sent(personal_conversation(user))


# ------------------------------------------------------------------------------------------- answers
def test_personal_question_answered_with_the_clause_its_section_the_review_warning_and_citations(bot):
    status, _, seconds = bot.send(activity(bot.connector, QUESTION, activity_id="1700000200001"))
    assert status == 202 and seconds < 5
    [reply] = answered(bot, personal_conversation(), "1700000200001")
    assert reply.headers["authorization"] == "Bearer bot-token-1"
    content = card(reply)
    shown = texts(content)
    assert CLAUSE in shown.lower() and "section 6.2" in shown and "[1] Social Media Policy" in shown
    assert "was due for review on 31 December 2024" in shown  # the review-date warning
    assert list(buttons(content)) == ["Helpful", "Not helpful", "Ask a person"]  # not unsure: no report button
    assert buttons(content)["Ask a person"]["t"] == QUESTION
    [entity] = reply.body["entities"]
    assert entity["type"] == "https://schema.org/Message" and entity["@type"] == "Message"
    [claim] = entity["citation"]
    assert claim["@type"] == "Claim" and claim["position"] == 1 and "[1]" in reply.body["text"]
    assert claim["appearance"]["@type"] == "DigitalDocument" and claim["appearance"]["name"].startswith("Social Media Policy, section 6.2")
    assert claim["appearance"]["abstract"].startswith("Safeguarding children is the responsibility of all Trust employees")
    assert "additionalType" not in entity  # a quoted clause is not labelled AI-generated


def test_the_answer_is_sent_after_the_2xx(bot):
    bot.connector.reply_delay = 2.0  # the Bot Connector is slow to take the answer
    started = time.monotonic()
    status, _, seconds = bot.send(activity(bot.connector, QUESTION, activity_id="1700000200002"))
    assert status == 202 and seconds < 2.0
    [reply] = answered(bot, personal_conversation(), "1700000200002")
    assert reply.at - started >= 2.0  # answered later, asynchronously
    key = f"teams:{personal_conversation()}:1700000200002"
    deadline = time.monotonic() + 10  # marked done just after the reply is sent, on the same worker
    while bot.state.event_status(key) != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bot.state.event_status(key) == "done"


def test_the_bot_token_comes_from_the_configured_endpoint_as_client_credentials_and_is_cached(bot):
    for n, question in enumerate((QUESTION, "may I post photos of pupils on my own Instagram?")):
        bot.send(activity(bot.connector, question, activity_id=f"17000003000{n}"))
        answered(bot, personal_conversation(), f"17000003000{n}")
    [request] = bot.identity.token_requests()
    assert request.body == {"grant_type": "client_credentials", "client_id": APP_ID, "client_secret": APP_PASSWORD,
                            "scope": "https://api.botframework.com/.default"}
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")


def test_a_message_delivered_twice_is_answered_once_even_after_a_restart(bot, tmp_path, runtime):
    body = activity(bot.connector, QUESTION, activity_id="1700000400001")
    assert bot.send(body)[0] == 202
    assert bot.send(body)[0] in (200, 202)  # while the first is being answered
    answered(bot, personal_conversation(), "1700000400001")
    bot.idle()
    assert bot.send(body)[0] in (200, 202)  # after it was answered
    bot.idle()
    bot.connector.wait_quiet(0.5)
    assert len(replies_to(bot, personal_conversation(), "1700000400001")) == 1

    again = Bot(bot.settings, runtime, bot.identity, bot.connector)  # a new process on the same database
    try:
        assert again.send(body)[0] == 202
        again.idle()
        bot.connector.wait_quiet(0.5)
        assert len(replies_to(bot, personal_conversation(), "1700000400001")) == 1
    finally:
        again.close()


def test_channel_mention_answered_in_its_thread_without_the_addressee(bot):
    body = activity(bot.connector, f"<at>Jane Smith</at> {QUESTION}", activity_id="1700000500001", kind="channel", mention_bot=True,
                    mentions=(("29:jane", "Jane Smith"),))
    assert bot.send(body)[0] == 202
    [reply] = answered(bot, CHANNEL_THREAD, "1700000500001")
    assert CLAUSE in texts(card(reply)).lower()
    assert buttons(card(reply))["Ask a person"]["t"] == QUESTION  # what the core was asked


def test_a_colleague_named_later_becomes_a_colleague(bot):
    body = activity(bot.connector, "can <at>Jane Smith</at> accept a follow from an ex-pupil aged 18?", activity_id="1700000500002",
                    kind="channel", mention_bot=True, mentions=(("29:jane", "Jane Smith"),))
    bot.send(body)
    [reply] = answered(bot, CHANNEL_THREAD, "1700000500002")
    assert buttons(card(reply))["Ask a person"]["t"] == "can a colleague accept a follow from an ex-pupil aged 18?"


def test_channel_messages_without_a_mention_are_ignored(bot):
    assert bot.send(activity(bot.connector, QUESTION, activity_id="1700000500003", kind="channel"))[0] == 202
    bot.idle()
    assert bot.connector.calls() == []


# ------------------------------------------------------------------------------------------- safeguarding
def test_concern_in_a_channel_goes_privately_to_the_person_and_once_to_the_dsl(bot):
    body = activity(bot.connector, CONCERN, activity_id="1700000600001", kind="channel", mention_bot=True)
    assert bot.send(body)[0] == 202
    [record] = bot.store.list()  # recorded before the 2xx
    assert record.reply_to["serviceUrl"] == bot.connector.service_url

    [private] = bot.connector.wait_for(lambda c: c.path.endswith(f"/{personal_conversation()}/activities") and c.method == "POST", timeout=60)
    shown = texts(card(private))
    assert shown.startswith("Sent to the DSL's Teams channel at ")
    assert "What to do now (Keeping Children Safe in Education):" in shown and "Do not promise to keep it secret" in shown
    assert "says:" not in shown and "actions" not in card(private)  # no unrelated clause, no buttons
    bot.idle()
    assert replies_to(bot, CHANNEL_THREAD, "1700000600001") == []  # nothing in the channel

    [alert] = bot.connector.wait_for(lambda c: c.method == "POST" and c.path.endswith("/v3/conversations") and c.body.get("isGroup"))
    assert alert.body["channelData"]["channel"]["id"] == DSL_CHANNEL and alert.body["tenantId"] == "tenant-one"
    alert_text = texts(alert.body["activity"]["attachments"][0]["content"])
    assert CONCERN in alert_text and "Sam Staff (teams:aad-staff)" in alert_text and f"Escalation {record.id}" in alert_text
    assert bot.store.get(record.id).status == "delivered"
    assert bot.store.get(record.id).notified_at is not None


def test_dsl_acknowledges_then_closes_the_alert_and_the_card_is_redrawn(bot):
    bot.send(activity(bot.connector, CONCERN, activity_id="1700000700001"))
    [thread] = bot.connector.wait_for(lambda c: c.method == "POST" and c.path.endswith("/v3/conversations") and c.body.get("isGroup"))
    [record] = bot.store.list()
    bot.deliverer.stop(2)
    posted = bot.connector.threads[DSL_CHANNEL][0]
    content = posted["attachments"][0]["content"]
    assert list(buttons(content)) == ["Acknowledge", "Close"]

    elsewhere = dict(user="29:out", aad="aad-out", name="Out Sider", kind="channel", conversation="19:general@thread.tacv2;messageid=1",
                     reply_to_id="1")  # the card's button pressed in another channel (a forwarded or crafted card)
    assert bot.send(activity(bot.connector, activity_id="1700000700009", value=buttons(content)["Acknowledge"], **elsewhere))[0] == 202
    # decided (and refused) before the 202; nothing redrawn
    assert bot.store.get(record.id).acknowledged_by is None and not bot.connector.calls(lambda c: c.method == "PUT")
    assert [e.action for e in bot.store.audit(record.id)][-1] == "acknowledge_refused"

    press = dict(user="29:dsl", aad="aad-dsl", name="Dee Lead", kind="channel", conversation=posted["conversation"], reply_to_id=posted["id"])
    assert bot.send(activity(bot.connector, activity_id="1700000700002", value=buttons(content)["Acknowledge"], **press))[0] == 202
    [update] = bot.connector.wait_for(lambda c: c.method == "PUT", timeout=30)
    assert update.path.endswith(f"/{posted['conversation']}/activities/{posted['id']}")
    assert bot.store.get(record.id).acknowledged_by == "teams:aad-dsl"
    redrawn = update.body["attachments"][0]["content"]
    assert "acknowledged by Dee Lead" in texts(redrawn) and list(buttons(redrawn)) == ["Close"]

    bot.send(activity(bot.connector, activity_id="1700000700003", value=buttons(redrawn)["Close"], **press))
    updates = bot.connector.wait_for(lambda c: c.method == "PUT", 2, timeout=30)
    assert bot.store.get(record.id).status == "closed" and "actions" not in updates[-1].body["attachments"][0]["content"]


def test_report_typed_goes_straight_to_the_dsl(bot):
    bot.send(activity(bot.connector, "report I saw bruising on a Year 3 child's arm at pick-up", activity_id="1700000800001"))
    bot.connector.wait_for(lambda c: c.method == "POST" and c.path.endswith("/v3/conversations") and c.body.get("isGroup"), timeout=60)
    [record] = bot.store.list()
    assert record.text == "I saw bruising on a Year 3 child's arm at pick-up" and "reported-by-staff" in record.categories
    [reply] = answered(bot, personal_conversation(), "1700000800001")
    assert texts(card(reply)).startswith("Sent to the DSL's Teams channel at ")


def test_report_button_pressed_twice_sends_one_alert(bot):
    value = {"policybot": "report", "q": "question-42", "s": "chiltern", "t": "is it ok that a colleague messages pupils on snapchat?"}
    for n in (1, 2):
        assert bot.send(activity(bot.connector, activity_id=f"170000090000{n}", value=value, reply_to_id="1700000899999"))[0] == 202
    bot.connector.wait_for(lambda c: c.method == "POST" and c.path.endswith("/v3/conversations") and c.body.get("isGroup"), timeout=60)
    bot.idle()
    bot.connector.wait_quiet(0.5)
    assert len(bot.store.list()) == 1 and len(bot.connector.threads[DSL_CHANNEL]) == 1


def test_a_second_person_reporting_the_same_answer_is_heard_too(bot):
    """In a channel thread others can press an answer's Report button: each person's report is their own."""
    value = {"policybot": "report", "q": "question-43", "s": "chiltern", "t": "is it ok that a colleague messages pupils on snapchat?"}
    for n, (user, aad) in enumerate((("29:staff", "aad-staff"), ("29:colleague", "aad-colleague")), start=1):
        assert bot.send(activity(bot.connector, activity_id=f"170000095000{n}", value=value, reply_to_id="1700000899998",
                                 user=user, aad=aad))[0] == 202
    bot.connector.wait_for(lambda c: c.method == "POST" and c.path.endswith("/v3/conversations") and c.body.get("isGroup"),
                           count=2, timeout=60)
    bot.idle()
    bot.connector.wait_quiet(0.5)
    assert sorted(e.raised_by for e in bot.store.list()) == ["teams:aad-colleague", "teams:aad-staff"]
    assert len(bot.connector.threads[DSL_CHANNEL]) == 2


def test_staff_told_later_about_a_concern_whose_private_reply_was_lost(bot):
    bot.connector.personal_failures = 2  # their personal chat cannot be opened just then (nor to say something went wrong)
    bot.send(activity(bot.connector, CONCERN, activity_id="1700001000001", kind="channel", mention_bot=True))
    bot.connector.wait_for(lambda c: c.body and c.body.get("channelData", {}).get("channel", {}).get("id") == DSL_CHANNEL)
    bot.idle()
    assert personal_messages(bot) == [] and replies_to(bot, CHANNEL_THREAD, "1700001000001") == []  # never said in the channel
    [(reply_to, reply, escalation_id)] = bot.core.unnotified(older_than=datetime.timedelta(0))

    assert bot.app.notify(reply_to, reply)  # what `policybot serve` does for each, every 30 seconds
    bot.store.mark_notified(escalation_id)
    [told] = personal_messages(bot)
    assert texts(card(told)).startswith("Sent to the DSL's Teams channel at ")
    assert bot.core.unnotified(older_than=datetime.timedelta(0)) == []


# ------------------------------------------------------------------------------------------- schools, buttons, admins
def test_a_person_with_two_schools_chooses_once_and_the_held_question_is_answered(bot):
    trust = dict(user="29:trust", aad="aad-trust", name="Tess Trust")
    bot.send(activity(bot.connector, QUESTION, activity_id="1700001100001", **trust))
    [picker] = answered(bot, personal_conversation("29:trust"), "1700001100001")
    choices = buttons(card(picker))
    assert list(choices) == ["Chiltern Learning Trust", "Kingsmead School"] and choices["Chiltern Learning Trust"]["t"] == QUESTION

    bot.send(activity(bot.connector, activity_id="1700001100002", value=choices["Chiltern Learning Trust"], **trust))
    replies = answered(bot, personal_conversation("29:trust"), "1700001100002", 2)
    assert replies[0].body["text"].startswith("Thanks, I'll answer your questions from Chiltern Learning Trust's policies")
    assert CLAUSE in texts(card(replies[1])).lower()
    assert bot.state.chosen_school("teams:aad-trust") == "chiltern"

    bot.send(activity(bot.connector, "school", activity_id="1700001100003", **trust))
    [again] = answered(bot, personal_conversation("29:trust"), "1700001100003")
    assert list(buttons(card(again))) == ["Chiltern Learning Trust", "Kingsmead School"]


def test_helpful_vote_is_recorded(bot):
    bot.send(activity(bot.connector, QUESTION, activity_id="1700001200001"))
    [reply] = answered(bot, personal_conversation(), "1700001200001")
    vote = buttons(card(reply))["Helpful"]
    bot.send(activity(bot.connector, activity_id="1700001200002", value=vote, reply_to_id="1700001200001"))
    [thanks] = answered(bot, personal_conversation(), "1700001200002")
    assert thanks.body["text"].startswith("Thanks, your feedback was recorded")
    assert [(q, u, v) for q, u, _, v in bot.state.votes()] == [(vote["q"], "teams:aad-staff", "helpful")]


def test_ask_a_person_posts_the_question_to_the_policy_owners_channel(bot):
    bot.send(activity(bot.connector, QUESTION, activity_id="1700001300001"))
    [reply] = answered(bot, personal_conversation(), "1700001300001")
    bot.send(activity(bot.connector, activity_id="1700001300002", value=buttons(card(reply))["Ask a person"]))
    [thread] = bot.connector.wait_for(lambda c: c.method == "POST" and (c.body or {}).get("channelData", {}).get("channel", {}).get("id") == OWNER_CHANNEL)
    assert QUESTION in thread.body["activity"]["text"] and "Sam Staff asked" in thread.body["activity"]["text"]
    [told] = answered(bot, personal_conversation(), "1700001300002")
    assert told.body["text"] == "I've passed your question to the policy owner in the policy owner's Teams channel; they will reply there."


def test_admin_commands_only_for_admins(bot):
    bot.send(activity(bot.connector, "status", activity_id="1700001400001"))
    [refused] = answered(bot, personal_conversation(), "1700001400001")
    assert refused.body["text"] == "Sorry, `status` is only for PolicyBot admins. Ask your IT or policy lead if you need it run."

    admin = dict(user="29:admin", aad="aad-admin", name="Ada Admin")
    bot.send(activity(bot.connector, "status", activity_id="1700001400002", **admin))
    [status] = answered(bot, personal_conversation("29:admin"), "1700001400002")
    assert "chiltern" in status.body["text"]
    bot.send(activity(bot.connector, "gaps", activity_id="1700001400003", **admin))
    assert answered(bot, personal_conversation("29:admin"), "1700001400003")[0].body["text"]
    bot.send(activity(bot.connector, "reindex", activity_id="1700001400004", **admin))
    started, result = answered(bot, personal_conversation("29:admin"), "1700001400004", 2, )
    assert started.body["text"].startswith("Rebuilding the policy index now")
    assert result.body["text"] and not result.body["text"].startswith("The reindex failed")


def test_admin_output_in_a_channel_goes_to_their_personal_chat(bot):
    admin = dict(user="29:admin", aad="aad-admin", name="Ada Admin", kind="channel", mention_bot=True)
    bot.send(activity(bot.connector, "status", activity_id="1700001500001", **admin))
    [status] = bot.connector.wait_for(lambda c: c.path.endswith(f"/{personal_conversation('29:admin')}/activities"))
    assert "chiltern" in status.body["text"]
    bot.idle()
    assert replies_to(bot, CHANNEL_THREAD, "1700001500001") == []


def test_welcome_when_installed_in_a_personal_chat(bot):
    body = activity(bot.connector, type="conversationUpdate", activity_id="1700001600001", membersAdded=[{"id": f"28:{APP_ID}"}])
    assert bot.send(body)[0] == 202
    [welcome] = answered(bot, personal_conversation(), "1700001600001")
    assert welcome.body["text"].startswith("Ask me a policy question")


def test_team_and_tenant_route_to_their_school(tmp_path, runtime):
    identity, connector = Identity(), Connector()
    bot = Bot(teams_settings(tmp_path, identity, connector, team_schools={}, tenant_schools={"tenant-one": "kingsmead"},
                             user_schools={}), runtime, identity, connector)
    try:
        bot.send(activity(connector, QUESTION, activity_id="1700001700001", kind="channel", mention_bot=True, team=TEAM))
        [reply] = answered(bot, CHANNEL_THREAD, "1700001700001")
        assert "Kingsmead School" in texts(card(reply))
    finally:
        bot.close()
        identity.stop()
        connector.stop()
