"""Messages: one SMS or WhatsApp OTP, outbound or inbound, and everything that happens to it.

- ``lifecycle``: the statuses' allowed transitions, and the one place a status changes
- ``events``: what the lifecycle publishes; webhooks and metrics subscribe to it
- ``outbound``: validating, storing and queueing sends (one, many, resend)
- ``store``: one message of an account: read it, mark it read, delete it
- ``views``: a message as the API shows it
- ``listing``: the account's message log, a page at a time
"""
