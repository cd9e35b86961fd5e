#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on 127.0.0.1:5672 (or $LOTSE_RABBIT_URL's host).
# Started where installed but stopped; installed from Debian's packages where missing.
set -euo pipefail

port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
mgmt_open() { (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; }

# Partners' broker users are made over the management API (lotse partner, the dev stack).
ensure_management() {
  mgmt_open && return 0
  echo "rabbitmq: enabling the management plugin (partners' users are made through it)"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  for _ in $(seq 1 30); do mgmt_open && return 0; sleep 1; done
  echo "rabbitmq: the management API did not come up on 127.0.0.1:15672" >&2
  return 1
}

if [[ -n "${LOTSE_RABBIT_URL:-}" && "${LOTSE_RABBIT_URL}" != *"127.0.0.1"* && "${LOTSE_RABBIT_URL}" != *"localhost"* ]]; then
  echo "rabbitmq: using ${LOTSE_RABBIT_URL%%@*}@… (not local; not managed here)"
  exit 0
fi
if port_open; then
  echo "rabbitmq: running on 127.0.0.1:5672"
  ensure_management
  exit 0
fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
    echo "rabbitmq: not installed; installing Debian's rabbitmq-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  else
    echo "rabbitmq: not installed. Install it (Debian/Ubuntu: sudo apt-get install rabbitmq-server;" >&2
    echo "  macOS: brew install rabbitmq) or run 'docker compose up -d rabbitmq', then retry." >&2
    exit 1
  fi
fi
echo "rabbitmq: starting"
rabbitmq-server -detached >/dev/null 2>&1 || true
rabbitmqctl await_startup --timeout 120 >/dev/null
for _ in $(seq 1 60); do port_open && { echo "rabbitmq: started"; ensure_management; exit 0; }; sleep 1; done
echo "rabbitmq: did not come up on 127.0.0.1:5672" >&2
exit 1
