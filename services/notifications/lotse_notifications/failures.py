"""How a channel says an attempt failed: try again later, or never."""


class TemporaryDeliveryError(Exception):
    """Worth trying again later: SMTP 4xx, HTTP 5xx/429, connection refused, timeout."""


class PermanentDeliveryError(Exception):
    """Will fail again: SMTP 5xx (unknown mailbox, rejected), HTTP 4xx."""
