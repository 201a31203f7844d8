"""A foreach's join lists its inputs compactly in its spec (workbench.datastore.split_inputs): what the task
reads back is the same inputs, in the same order, as the full list it replaces; other joins keep the list."""

import json
import random

import pytest

from workbench.datastore import FlowDatastore
from workbench.datastore.records import InputRef, TaskSpecRecord
from workbench.scheduler import Submit, Tick

from .test_scheduler import BRANCH, FOREACH_TWO_STEPS, NESTED, Sim


def reread(spec: TaskSpecRecord) -> TaskSpecRecord:
    return TaskSpecRecord.from_dict(json.loads(json.dumps(spec.to_dict())))


def submitted_join(out) -> TaskSpecRecord:
    return [i for i in out if isinstance(i, Submit)][0].spec


def test_a_nested_foreachs_joins_read_back_their_inputs_in_index_order():
    sim = Sim(NESTED, max_workers=100)
    sim.start()
    sim.ok("1", ["rows"], splits=2, var="rows")
    for r, width in ((0, 2), (1, 3)):
        sim.ok(sim.key_of("row", (r,)), ["input"], splits=width, var="input")
    joins = []
    for r, width in ((1, 3), (0, 2)):
        for c in reversed(range(width)):
            out = sim.ok(sim.key_of("cell", (r, c)), ["x", "y"] if c % 2 else ["x"])
        joins.append((r, width, submitted_join(out)))
    for r, width, join in joins:
        keys = [sim.key_of("cell", (r, c)) for c in range(width)]
        expected = [
            InputRef(
                pathspec=f"Nested/9/cell/{key}",
                step="cell",
                foreach_stack=sim.submitted[key].spec.foreach_stack,
                artifacts={n: f"sha-{n}-{key}" for n in (["x", "y"] if c % 2 else ["x"])},
            )
            for c, key in enumerate(keys)
        ]
        assert list(join.inputs) == expected and len(join.inputs) == width
        assert join.inputs[-1] == expected[-1] and join.inputs[1:] == expected[1:]
        again = reread(join)
        assert list(again.inputs) == expected and "input_split" in join.to_dict()
        assert join.to_dict()["inputs"] == [] and again.to_dict() == join.to_dict()
    for r in (0, 1):
        out = sim.ok(sim.key_of("row_join", (r,)))
    all_join = submitted_join(out)  # its inputs are joins, not one fan-out's indexes: the full list
    assert isinstance(all_join.inputs, list) and [i.step for i in all_join.inputs] == ["row_join", "row_join"]
    assert "input_split" not in all_join.to_dict() and list(reread(all_join).inputs) == all_join.inputs


def keys_of(sim, step) -> dict[int, str]:
    """Index -> task key of a step's tasks, once every ready task was started (500 per event)."""
    while sim.s.dispatch_pending:
        sim.feed(Tick(sim.now))
    return {sub.spec.foreach_stack[-1]["index"]: key for key, sub in sim.submitted.items() if sub.spec.step == step}


def test_a_wide_join_in_any_finishing_order_is_small_and_reads_the_same():
    rng = random.Random(16)
    width = 1500
    source = FOREACH_TWO_STEPS.replace("list(range(5))", f"list(range({width}))")
    sim = Sim(source, max_workers=width + 10)
    sim.start()
    sim.ok("1", ["items"], splits=width, var="items")
    order = list(range(width))
    rng.shuffle(order)  # b's task ids come in the order a's tasks end: not consecutive
    a_keys = keys_of(sim, "a")
    for i in order:
        sim.ok(a_keys[i])
    b_keys = keys_of(sim, "b")
    rng.shuffle(order)
    for i in order:
        out = sim.ok(b_keys[i], ["x", "y"] if i % 7 else ["y"])
    join = submitted_join(out)
    full = [
        InputRef(
            pathspec=f"Chain/9/b/{b_keys[i]}",
            step="b",
            foreach_stack=[{"step": "start", "var": "items", "index": i, "num_splits": width}],
            artifacts={n: f"sha-{n}-{b_keys[i]}" for n in (["x", "y"] if i % 7 else ["y"])},
        )
        for i in range(width)
    ]
    assert list(reread(join).inputs) == full
    compact = len(json.dumps(join.to_dict()))
    listed = len(json.dumps(TaskSpecRecord(inputs=full).to_dict()))
    assert compact < listed / 3, (compact, listed)


def test_a_branch_join_keeps_its_list():
    sim = Sim(BRANCH, max_workers=10)
    sim.start()
    sim.ok("1")
    sim.ok(sim.key_of("a"))
    join = submitted_join(sim.ok(sim.key_of("b")))
    assert isinstance(join.inputs, list) and [i.step for i in join.inputs] == ["a", "b"]


@pytest.mark.parametrize(
    "damaged",
    [
        {"prefix": 1},
        {"prefix": "F/1/b/", "step": "b", "outer": [], "frame": {"index": 0}, "task_ids": [[2, 3]], "shas": ["s"]},
        {"prefix": "F/1/b/", "step": "b", "outer": [], "frame": {"index": 0}, "task_ids": [["2", 1]]},
        ["not", "a", "dict"],
    ],
)
def test_a_damaged_compact_spec_is_one_clear_line(tmp_path, damaged):
    from workbench.task import read_spec

    ds = FlowDatastore(str(tmp_path), "F")
    ds.storage.put("F/runs/1/join/5/spec-0.json", [json.dumps({"step": "join", "input_split": damaged}).encode()])
    with pytest.raises(SystemExit) as caught:
        read_spec(ds, "F/1/join/5/0")
    message = str(caught.value)
    assert message.startswith("workbench.task: the task spec of F/1/join/5/0") and "\n" not in message
    assert "input_split" in message
