"""Names of everything a service declares on RabbitMQ.

- one topic exchange ``<ns>.events`` carries every event (see contracts.routing);
- each subscription of a service has its own durable quorum queue
  ``<ns>.<service>.<routing key>``, so one slow or broken event type never
  blocks another;
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

    def queue_for(self, routing_key: str) -> RabbitQueue:
        """The service's own durable queue for one routing key."""
        return RabbitQueue(
            f"{self.namespace}.{self.service}.{routing_key}",
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=routing_key,
            arguments={
                "x-dead-letter-exchange": self.dead_exchange.name,
                "x-dead-letter-routing-key": self.dead_letter_routing_key,
            },
        )
