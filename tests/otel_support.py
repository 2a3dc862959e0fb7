"""The OpenTelemetry SDK as agents use it, for tests that feed logd's OTLP receiver."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Tracer


@contextmanager
def recorded_spans(service: str, scope: str, ids: IdGenerator | None = None) -> Iterator[tuple[Tracer, list]]:
    """A tracer of the SDK (its resource names ``service``); the spans it finished are in the
    list once the block ends, ready for an exporter's ``export``."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}), id_generator=ids)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    spans: list = []
    yield provider.get_tracer(scope), spans
    provider.shutdown()
    spans.extend(memory.get_finished_spans())


def pydantic_ai_shop(provider: TracerProvider):  # -> pydantic_ai.Agent (imported lazily)
    """A real Pydantic AI triage agent on TestModel whose tool runs a billing agent (a nested
    run, its own conversation id) whose refund tool fails; both traced to ``provider``."""
    from pydantic_ai import Agent
    from pydantic_ai.capabilities.instrumentation import Instrumentation
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.test import TestModel

    traced = [Instrumentation(settings=InstrumentationSettings(tracer_provider=provider))]
    billing = Agent(TestModel(), name="billing", capabilities=traced)
    triage = Agent(TestModel(), name="triage", capabilities=traced)

    @billing.tool_plain
    def refund(order: int) -> str:
        """Refund an order."""
        raise RuntimeError("payment gateway down")

    @triage.tool_plain
    async def ask_billing(question: str) -> str:
        """Ask the billing agent (a nested run with its own conversation id)."""
        try:
            return (await billing.run(question)).output
        except RuntimeError as exc:
            return f"billing failed: {exc}"

    return triage
