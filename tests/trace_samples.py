"""Trace records of the three shapes, as agents send them (shared by the trace tests)."""

from __future__ import annotations

T0 = 1_795_000_000.0  # 2026-11-18T...Z


def iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def agk_session(session: str = "req-17461596", fail: bool = True) -> list[dict]:
    """planner -> researcher -> writer, the writer fails once; AgenticGoKit hook entries."""
    out = []

    def hook(t: float, name: str, agent: str, event: str, **extra) -> None:
        out.append({"timestamp": iso(T0 + t), "type": "trace", "event_id": event, "session_id": session,
                    "agent_id": agent, "hook": name, **extra})

    hook(0.000, "BeforeEventHandling", "planner", "ev-1", state={"message": "Analyze this data"})
    hook(0.010, "BeforeAgentRun", "planner", "ev-1", state={"message": "Analyze this data"})
    hook(0.410, "AfterAgentRun", "planner", "ev-1", state={"plan": "research then write"},
         agent_result={"route": "researcher"}, target_agent_id="researcher", source_agent_id="planner")
    hook(0.420, "BeforeAgentRun", "researcher", "ev-2", state={"plan": "research then write"})
    hook(1.620, "AfterAgentRun", "researcher", "ev-2", state={"findings": "trend up"},
         target_agent_id="writer", source_agent_id="researcher")
    hook(1.630, "BeforeAgentRun", "writer", "ev-3", state={"findings": "trend up"})
    if fail:
        hook(1.930, "AgentError", "writer", "ev-3", error="LLM timeout after 300ms")
        hook(1.940, "BeforeAgentRun", "writer", "ev-4", state={"findings": "trend up", "retry": 1})
    hook(2.540, "AfterAgentRun", "writer", "ev-4" if fail else "ev-3", state={"summary": "Key findings: up"})
    hook(2.550, "AfterEventHandling", "planner", "ev-1", state={"summary": "Key findings: up"})
    return out


def koog_run(run_id: str = "run-koog-1") -> list[dict]:
    """A Koog agent run: a node calls the LLM, then a tool that fails, then completes."""
    base = T0 + 100
    def ev(t: float, kind: str, **extra) -> dict:
        return {"eventType": kind, "runId": run_id, "timestamp": int((base + t) * 1000), "agentId": "koog-agent",
                **extra}
    return [
        ev(0.0, "AgentStartingEvent"),
        ev(0.01, "NodeExecutionStartingEvent", nodeName="plan"),
        ev(0.02, "LLMCallStartingEvent", model="gpt-4o-mini", prompt="plan it"),
        ev(0.52, "LLMCallCompletedEvent", model="gpt-4o-mini", responses=["call weather"]),
        ev(0.53, "ToolCallStartingEvent", toolName="weather", toolCallId="tc-1", toolArgs={"city": "Oslo"}),
        ev(0.83, "ToolCallFailedEvent", toolName="weather", toolCallId="tc-1", error={"message": "HTTP 503"}),
        ev(0.84, "NodeExecutionCompletedEvent", nodeName="plan"),
        ev(1.00, "AgentCompletedEvent", result="done"),
    ]


def span_trace(trace_id: str = "trace_abc123", group_id: str | None = None) -> list[dict]:
    """OpenAI-Agents-style spans: a triage agent hands off to a billing agent that calls a tool."""
    base = T0 + 200
    def span(sid: str, parent: str | None, a: float, b: float, data: dict, error=None) -> dict:
        rec = {"object": "trace.span", "trace_id": trace_id, "span_id": sid, "parent_id": parent,
               "started_at": iso(base + a), "ended_at": iso(base + b), "span_data": data, "error": error}
        if group_id:
            rec["group_id"] = group_id
        return rec
    return [
        span("s-gen", "s-triage", 0.05, 0.45, {"type": "generation", "model": "gpt-4o"}),
        span("s-hand", "s-triage", 0.46, 0.47, {"type": "handoff", "from_agent": "triage", "to_agent": "billing"}),
        span("s-triage", "s-root", 0.0, 0.5, {"type": "agent", "name": "triage"}),
        span("s-tool", "s-billing", 0.6, 1.4, {"type": "function", "name": "lookup_invoice"}),
        span("s-guard", "s-billing", 0.55, 0.58, {"type": "guardrail", "name": "pii", "triggered": False}),
        span("s-billing", "s-root", 0.5, 1.6, {"type": "agent", "name": "billing"},
             error={"message": "invoice not found", "data": {"id": 7}}),
        span("s-root", None, 0.0, 1.7, {"type": "custom", "name": "support workflow"}),
    ]


# An agent run through logd.client.tracing (two agents, a handoff, a failed tool), as a script to run
# in a subprocess with LOGD_SOCKET set: its spans are flushed when it exits.
TRACING_CLIENT = """
import asyncio
from logd.client.tracing import trace, span
async def agent(name, fail):
    with span(name, kind="agent"):
        with span("gpt-4o", kind="generation", model="gpt-4o") as s:
            s.set(usage={"input_tokens": 812, "output_tokens": 64})
            await asyncio.sleep(0.01)
        if fail:
            raise RuntimeError("tool broke")
async def main():
    with trace("research", group_id="conv-42"):
        await agent("planner", False)
        with span("handoff", kind="handoff", from_agent="planner", to_agent="writer"):
            pass
        try:
            await agent("writer", True)
        except RuntimeError:
            pass
asyncio.run(main())
"""
