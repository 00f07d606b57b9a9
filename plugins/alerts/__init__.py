"""Alert channels: destinations for the ``alert`` feature (MQTT, webhooks, Teams, Slack, e-mail).

Each module is one channel plugin with its own settings. A channel receives alert points
(:class:`agent.alerts.Alert` as :class:`agent.models.Point`) through the durable outbox, like any
destination: one that is down gets them later and never blocks another.
"""
