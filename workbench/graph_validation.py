"""The rules a flow's static graph must follow (Metaflow's, with its messages where it has one).

Every walk here is iterative: a 1,000-step chain is a valid flow and must not exhaust Python's stack.
"""

from __future__ import annotations

from typing import Callable, Optional

from .errors import FlowError
from .graph import FlowGraph, StepNode, _descendants


def _no_cycle_from_start(steps: dict[str, StepNode], err: Callable[[str, Optional[int]], None]) -> bool:
    """Depth-first from start, iteratively; report the first transition back onto the current path."""
    state = {"start": 1}
    path = [("start", iter(steps["start"].out))]
    while path:
        name, targets = path[-1]
        target = next(targets, None)
        if target is None:
            state[name] = 2
            path.pop()
        elif state.get(target) == 1:
            err(f"step {name} transitions back to step {target}, which makes a cycle", steps[name].next_lineno)
            return False
        elif target not in state:
            state[target] = 1
            path.append((target, iter(steps[target].out)))
    return True


def _reachable(steps: dict[str, StepNode]) -> set[str]:
    return {"start"} | _descendants(steps, "start")


def validate(graph: FlowGraph) -> None:
    """Metaflow's graph rules over a parsed flow; each problem lands in ``graph.errors`` with its line."""
    steps = graph.steps
    errors = graph.errors

    def err(message: str, line: Optional[int]) -> None:
        errors.append(FlowError(message, path=graph.path, line=line))

    if "start" not in steps:
        err(f"flow {graph.name} has no start step (add a @step named start)", graph.lineno)
    if "end" not in steps:
        err(f"flow {graph.name} has no end step (add a @step named end)", graph.lineno)
    for s in steps.values():
        line = s.next_lineno if s.next_lineno and s.next_lineno > 0 else s.lineno
        if s.name == "end":
            if s.out:
                err("step end must not call self.next(): the flow finishes there", s.next_lineno)
        elif s.next_lineno is None:
            err(f"step {s.name} has no self.next() transition (add self.next(self.<step>) as its last line)",
                s.lineno)
        for target in s.out:
            if target not in steps:
                err(f"step {s.name} transitions to unknown step {target}", line)
        if s.foreach_var and len(s.out) != 1:
            err(f"step {s.name}: a foreach transition takes exactly one step, got {len(s.out)}", line)
        if s.num_args > 2:
            err(f"step {s.name} takes {s.num_args - 1} arguments; a step takes none, a join takes inputs",
                s.lineno)
        if s.name == "start" and s.num_args > 1:
            err("step start cannot be a join (it takes no inputs argument)", s.lineno)
        elif s.num_args == 2 and (len(s.out) > 1 or s.foreach_var):
            what = "foreach" if s.foreach_var else "split"
            err(f"step {s.name} is both a join (it takes inputs) and a {what} (it transitions to "
                f"{'a foreach' if s.foreach_var else 'several steps'}); add a step so that the join and the "
                f"{what} are separate steps", s.lineno)
    for p in graph.parameters:
        if p.name in steps or p.attr in steps:
            err(f"parameter {p.name} has the same name as a step", p.lineno)
    if errors:
        return

    for s in steps.values():
        for target in s.out:
            steps[target].in_steps.append(s.name)
        if s.name == "end":
            s.kind = "end"
        elif s.num_args == 2:
            s.kind = "join"
        elif s.foreach_var:
            s.kind = "foreach"
        elif len(s.out) > 1:
            s.kind = "split"
        elif s.name == "start":
            s.kind = "start"
        else:
            s.kind = "linear"

    # cycles: a depth-first walk from start that meets a step already on its path
    if not _no_cycle_from_start(steps, err):
        return
    state = _reachable(steps)
    for s in steps.values():
        if s.name not in state:
            err(f"step {s.name} is not reachable from start", s.lineno)
    if errors:
        return

    # splits and joins: every step gets the stack of splits it is inside; joins close the innermost one
    for name in graph.topological():
        s = steps[name]
        if name == "start":
            s.split_stack = ()
        if s.split_stack is None:
            continue
        child_stack = s.split_stack + ((name,) if s.kind in ("split", "foreach") else ())
        line = s.next_lineno or s.lineno
        for target in s.out:
            t = steps[target]
            if t.kind == "join":
                if not child_stack:
                    err(f"step {target} is a join (it takes inputs) but no split or foreach comes before it; "
                        f"drop the inputs argument", t.lineno)
                    return
                closes, stack = child_stack[-1], child_stack[:-1]
                if t.closes is None:
                    t.closes, t.split_stack = closes, stack
                elif t.closes != closes:
                    err(f"join {target} joins steps from two different splits ({t.closes} and {closes})", t.lineno)
                    return
            else:
                if len(t.in_steps) > 1:
                    err(f"step {target} has {len(t.in_steps)} inputs ({', '.join(t.in_steps)}) but is not a join; "
                        f"give it an inputs argument: def {target}(self, inputs)", t.lineno)
                    return
                if t.split_stack is not None and t.split_stack != child_stack:
                    err(f"step {target} is reached both inside and outside split {child_stack[-1]}", t.lineno)
                    return
                t.split_stack = child_stack
                if target == "end" and child_stack:
                    opener = steps[child_stack[-1]]
                    what = "foreach" if opener.kind == "foreach" else "split"
                    err(f"step {name} goes to end inside the {what} at step {opener.name}; "
                        f"join it first with a step that takes inputs", line)
                    return
    for s in steps.values():
        if s.kind == "join" and s.closes:
            opener = steps[s.closes]
            if opener.joined_by and opener.joined_by != s.name:
                err(f"the split at step {opener.name} is joined twice, by {opener.joined_by} and {s.name}", s.lineno)
                return
            opener.joined_by = s.name
    for s in steps.values():
        if s.kind in ("split", "foreach") and not s.joined_by:
            what = "foreach" if s.kind == "foreach" else "split"
            err(f"the {what} at step {s.name} is never joined (add a step that takes inputs)", s.next_lineno)
    # a join must be reached by every branch of the split it closes
    for s in steps.values():
        if s.kind == "join" and s.closes:
            opener = steps[s.closes]
            scope = (opener.split_stack or ()) + (opener.name,)
            for branch in opener.out:
                if s.name != branch and s.name not in graph.descendants(branch):
                    err(f"join {s.name} does not join branch {branch} of the split at step {opener.name}",
                        s.lineno)
            inside = [n for n in s.in_steps if (enclosing := steps[n].split_stack) is not None
                      and enclosing[:len(scope)] != scope and n != opener.name]
            if inside:
                err(f"join {s.name} takes input from {', '.join(inside)}, which is outside the split at step "
                    f"{opener.name}", s.lineno)
