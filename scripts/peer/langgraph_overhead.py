"""Reelsmith's overhead benchmark pipeline, modelled in LangGraph with its SQLite checkpointer.

The pipeline of `reelsmith bench --only overhead`: script (1 unit, 8 beats) -> storyboard (8 stills
+ 8 narrations) -> clips (8) -> render (1), with providers that do no work. Two shapes:

  fanout          the idiomatic one: every unit is its own task, fanned out with Send, so each
                  finished unit is saved as it ends (as Reelsmith records each unit). SqliteSaver
                  exactly as it comes, and LangGraph's default durability.
  node_per_phase  one node per phase looping over its units (a phase's units are saved together,
                  when the phase ends), on a connection set to synchronous=NORMAL, Reelsmith's own
                  setting. SqliteSaver turns WAL on itself in both shapes.

Prints the median wall time of one complete invocation per shape, like `reelsmith bench`.
"""

import argparse
import operator
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from importlib.metadata import version
from typing import Annotated, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

BEATS = 8


class Video(TypedDict, total=False):
    prompt: str
    script: dict
    # Fan-out units write into these concurrently: merged, as LangGraph's map-reduce does.
    stills: Annotated[dict, operator.or_]
    narrations: Annotated[dict, operator.or_]
    clips: Annotated[dict, operator.or_]
    video: bytes


# The providers: tiny fixed outputs, like Reelsmith's `instant` providers.
def write_script(prompt):
    return {"title": prompt, "beats": [f"Beat {i + 1} of {prompt}" for i in range(BEATS)]}


def draw(script, i):
    return f"frame:{script['title']}:{i}".encode()


def speak(script, i):
    return f"speech:{script['beats'][i]}".encode()


def animate(still, i):
    return b"clip:" + still + b":%d" % i


def render(clips):
    return b"".join(clips[i] for i in range(BEATS))


def script_node(state: Video):
    return {"script": write_script(state["prompt"])}


def fanout_graph():
    g = StateGraph(Video)
    g.add_node("script", script_node)
    g.add_node("still", lambda u: {"stills": {u["index"]: draw(u["script"], u["index"])}})
    g.add_node("narrate", lambda u: {"narrations": {u["index"]: speak(u["script"], u["index"])}})
    # The storyboard's join: a conditional edge runs once per finished task, so the clips fan out
    # from this one no-op task rather than from each of the 16 units.
    g.add_node("storyboard_done", lambda s: {})
    g.add_node("clip", lambda u: {"clips": {u["index"]: animate(u["still"], u["index"])}})
    # Render is the clips' join: a plain edge from the fanned-out tasks runs it once, after all.
    g.add_node("render", lambda s: {"video": render(s["clips"])})
    g.add_edge(START, "script")
    g.add_conditional_edges(
        "script",
        lambda s: [Send(node, {"script": s["script"], "index": i}) for node in ("still", "narrate") for i in range(BEATS)],
        ["still", "narrate"],
    )
    g.add_edge("still", "storyboard_done")
    g.add_edge("narrate", "storyboard_done")
    g.add_conditional_edges(
        "storyboard_done",
        lambda s: [Send("clip", {"script": s["script"], "index": i, "still": s["stills"][i]}) for i in range(BEATS)],
        ["clip"],
    )
    g.add_edge("clip", "render")
    g.add_edge("render", END)
    return g


def node_per_phase_graph():
    def storyboard(s):
        return {
            "stills": {i: draw(s["script"], i) for i in range(BEATS)},
            "narrations": {i: speak(s["script"], i) for i in range(BEATS)},
        }

    g = StateGraph(Video)
    g.add_sequence([
        ("script", script_node),
        ("storyboard", storyboard),
        ("clips", lambda s: {"clips": {i: animate(s["stills"][i], i) for i in range(BEATS)}}),
        ("render", lambda s: {"video": render(s["clips"])}),
    ])
    g.add_edge(START, "script")
    g.add_edge("render", END)
    return g


def measure(builder, synchronous, runs, warmup, tmp):
    """Median µs of `runs` complete invocations, on a fresh checkpoint file."""
    conn = sqlite3.connect(os.path.join(tmp, f"{uuid.uuid4()}.sqlite"), check_same_thread=False)
    if synchronous:
        conn.execute(f"PRAGMA synchronous={synchronous}")
    saver = SqliteSaver(conn)
    saver.setup()  # its own set-up (it turns WAL on), once, outside the timing
    graph = builder().compile(checkpointer=saver)
    samples = []
    for n in range(warmup + runs):
        thread = str(uuid.uuid4())
        t = time.perf_counter_ns()
        # No durability argument: LangGraph's default ("async" in 1.2), whose pending saves
        # invoke still waits for before it returns.
        out = graph.invoke({"prompt": "A benchmark of eight beats"}, {"configurable": {"thread_id": thread}})
        elapsed = time.perf_counter_ns() - t
        assert len(out["video"]) > 0 and len(out["narrations"]) == BEATS
        if n >= warmup:
            samples.append(elapsed / 1000)
    # Each SqliteSaver.put and put_writes call is one commit: one checkpoint row, one task's writes.
    (commits,) = conn.execute(
        "SELECT (SELECT count(*) FROM checkpoints WHERE thread_id = ?)"
        " + (SELECT count(DISTINCT checkpoint_id || '/' || task_id) FROM writes WHERE thread_id = ?)",
        (thread, thread),
    ).fetchone()
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[conn.execute("PRAGMA synchronous").fetchone()[0]]
    conn.close()
    return statistics.median(samples), commits, f"journal_mode={mode} synchronous={sync}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="15 runs per shape instead of 60")
    p.add_argument("--runs", type=int, help="invocations measured per shape")
    p.add_argument("--warmup", type=int, default=3, help="invocations run first, not measured")
    args = p.parse_args()
    runs = args.runs or (15 if args.quick else 60)

    print(f"langgraph_version: {version('langgraph')} version")
    print(f"langgraph_checkpoint_sqlite_version: {version('langgraph-checkpoint-sqlite')} version")
    print(f"sqlite_version: {sqlite3.sqlite_version} version")
    with tempfile.TemporaryDirectory(prefix="reelsmith-peer-") as tmp:
        for name, builder, synchronous in [
            # None: SQLite's default synchronous, which SqliteSaver leaves as it is (FULL here).
            ("fanout_default", fanout_graph, None),
            ("node_per_phase_normal", node_per_phase_graph, "NORMAL"),
        ]:
            p50, commits, pragmas = measure(builder, synchronous, runs, args.warmup, tmp)
            print(f"langgraph_{name}_us: {p50:.0f} us")
            print(f"langgraph_{name}_commits_per_run: {commits} commits")
            print(f"langgraph_{name}_sqlite: {pragmas}")


if __name__ == "__main__":
    main()
