"""Names of everything a service declares on RabbitMQ.

- one topic exchange ``<ns>.events`` carries every event (see contracts.catalogue);
- each subscription of a service has its own durable quorum queue
  ``<ns>.<service>.<routing key>``, so one slow or broken event type never
  blocks another;
- a message whose handling failed for a transient reason is republished to
  ``<ns>.retry`` with the routing key ``<service>.<attempt>.<routing key>``;
  it waits in ``<ns>.<service>.retry.<attempt>`` (a TTL queue, one per delay),
  then expires into ``<ns>.retry-return``, where the service's own queue for
  that routing key picks it up again (binding ``<service>.*.<routing key>``);
- ``<ns>.dead`` (direct) routes rejected messages to ``<ns>.<service>.dead``,
  one dead-letter queue per service, each message kept with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue


@dataclass(frozen=True)
class Topology:
    namespace: str
    service: str

    @property
    def events_exchange(self) -> RabbitExchange:
        return RabbitExchange(f"{self.namespace}.events", type=ExchangeType.TOPIC, durable=True)

    @property
    def dead_exchange(self) -> RabbitExchange:
        return RabbitExchange(f"{self.namespace}.dead", type=ExchangeType.DIRECT, durable=True)

    @property
    def dead_letter_routing_key(self) -> str:
        return self.service

    @property
    def dead_letter_queue(self) -> RabbitQueue:
        return RabbitQueue(
            f"{self.namespace}.{self.service}.dead",
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=self.dead_letter_routing_key,
        )

    @property
    def retry_exchange(self) -> RabbitExchange:
        return RabbitExchange(f"{self.namespace}.retry", type=ExchangeType.TOPIC, durable=True)

    @property
    def retry_return_exchange(self) -> RabbitExchange:
        return RabbitExchange(
            f"{self.namespace}.retry-return", type=ExchangeType.TOPIC, durable=True
        )

    def retry_queue(self, attempt: int, delay_s: float) -> RabbitQueue:
        """Where a message waits before its next attempt (classic: TTL and DLX)."""
        return RabbitQueue(
            f"{self.namespace}.{self.service}.retry.{attempt}",
            durable=True,
            routing_key=f"{self.service}.{attempt}.#",
            arguments={
                "x-message-ttl": int(delay_s * 1000),
                "x-dead-letter-exchange": self.retry_return_exchange.name,
            },
        )

    def retry_routing_key(self, attempt: int | str, routing_key: str) -> str:
        return f"{self.service}.{attempt}.{routing_key}"

    def queue_for(self, routing_key: str, delivery_limit: int = 20) -> RabbitQueue:
        """The service's own durable queue for one routing key."""
        return RabbitQueue(
            f"{self.namespace}.{self.service}.{routing_key}",
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=routing_key,
            arguments={
                "x-dead-letter-exchange": self.dead_exchange.name,
                "x-dead-letter-routing-key": self.dead_letter_routing_key,
                "x-delivery-limit": delivery_limit,
            },
        )
