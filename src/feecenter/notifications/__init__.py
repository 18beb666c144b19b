"""Notifications: in-site messages (站内信), an outbox of email and SMS, and senders.

Use ``service.notify`` inside the transaction of the event it reports (the
outbox pattern); ``service.deliver_pending`` sends the outbox later.
"""
