"""The Microsoft Teams adapter, on the Microsoft 365 Agents SDK: Teams activity -> `Message` -> the conversation core
-> Adaptive Card. Translation only; the SDK's weaker defaults are replaced on top of it:

- auth.py: the Bot Connector authentication spec, every rule (the SDK's validator skips several);
- tokens.py: the bot's own client-credentials token from a configurable endpoint (MSAL cannot use one);
- http.py: POST /api/messages answering within 5 seconds, the answer sent afterwards (the SDK awaits the turn);
- connector.py: outbound Bot Connector calls through the SDK's client, with timeouts and no retries;
- incoming.py, text.py: an activity as the core's `Message`; cards.py: the core's structures as Adaptive Cards;
- adapter.py: what happens before the acknowledgement (durable) and what is sent after;
- alerts.py, journal.py: safeguarding alerts into a Teams channel, exactly once;
- server.py: the parts `policybot serve --teams` wires; package.py: the Teams app package.
"""
