"""The rules a flow's static graph must follow (Metaflow's, with its messages where it has one).

Every walk here is iterative: a 1,000-step chain is a valid flow and must not exhaust Python's stack.
"""

from __future__ import annotations

from typing import Callable, Optional

from .errors import FlowError
from .graph import FlowGraph, StepNode, Unresolved, _descendants


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
        elif target == name and steps[name].kind == "switch":
            continue  # a recursive switch: the one loop Metaflow allows
        elif state.get(target) == 1:
            err(
                f"step {name} transitions back to step {target}, which makes a cycle (only a switch may go back, "
                f"and only to itself)",
                steps[name].next_lineno,
            )
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
            err(f"step {s.name} has no self.next() transition (add self.next(self.<step>) as its last line)", s.lineno)
        for target in s.out:
            if target not in steps:
                err(f"step {s.name} transitions to unknown step {target}", line)
        if s.foreach_var and len(s.out) != 1:
            err(f"step {s.name}: a foreach transition takes exactly one step, got {len(s.out)}", line)
        if s.num_parallel is not None and len(s.out) != 1:
            err(f"step {s.name}: a num_parallel transition takes exactly one step, got {len(s.out)}", line)
        if s.switch_cases and len(s.out) < 2:
            err(
                f"step {s.name} is a switch but defines {len(s.out)} transition; a switch must define at least 2 "
                f"(use self.next(self.{s.out[0] if s.out else '<step>'}) for one)",
                line,
            )
        if s.switch_cases and s.num_args == 2:
            err(
                f"step {s.name} is both a join (it takes inputs) and a switch; add a step so that the join and "
                f"the switch are separate steps",
                s.lineno,
            )
        catch = s.decorator("catch") if s.switch_cases else None
        if catch is not None:
            err(f"@catch is defined for step {s.name} but @catch is not supported in switch steps", catch.lineno)
        if s.num_args > 2:
            err(f"step {s.name} takes {s.num_args - 1} arguments; a step takes none, a join takes inputs", s.lineno)
        if s.name == "start" and s.num_args > 1:
            err("step start cannot be a join (it takes no inputs argument)", s.lineno)
        elif s.num_args == 2 and (len(s.out) > 1 or s.foreach_var):
            what = "foreach" if s.foreach_var else "split"
            err(
                f"step {s.name} is both a join (it takes inputs) and a {what} (it transitions to "
                f"{'a foreach' if s.foreach_var else 'several steps'}); add a step so that the join and the "
                f"{what} are separate steps",
                s.lineno,
            )
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
        elif s.switch_cases:
            s.kind = "switch"
        elif s.foreach_var or s.num_parallel is not None:
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
    for s in steps.values():
        if s.is_recursive:
            s.in_steps.remove(s.name)  # the loop edge is not an input that must complete first
    state = _reachable(steps)
    for s in steps.values():
        if s.name not in state:
            err(f"step {s.name} is not reachable from start", s.lineno)
    if errors:
        return

    # splits and joins: every step gets the stack of splits it is inside (and the branch it is on in each);
    # joins close the innermost one. A switch opens nothing: its cases carry its stack on.
    branches: dict[str, tuple[tuple[str, str], ...]] = {}  # step -> ((split, branch taken), ...)
    end_inside: list[tuple[str, Optional[int]]] = []  # (message, line) of the first end inside a split
    for name in graph.topological():
        s = steps[name]
        if name == "start":
            s.split_stack, branches[name] = (), ()
        if s.split_stack is None:
            continue
        opens = s.kind in ("split", "foreach")
        child_stack = s.split_stack + ((name,) if opens else ())
        line = s.next_lineno or s.lineno
        for target in s.out:
            if target == name:
                continue  # a recursive switch's loop
            t = steps[target]
            path = branches[name] + (((name, target),) if opens else ())
            if t.kind == "join":
                if not child_stack:
                    err(
                        f"step {target} is a join (it takes inputs) but no split or foreach comes before it; "
                        f"drop the inputs argument",
                        t.lineno,
                    )
                    return
                if s.kind == "switch":
                    err(
                        f"a conditional path cannot lead directly to a join step: switch {name} goes to join "
                        f"{target}; add an unconditional step on that path before the join",
                        line,
                    )
                    return
                closes, stack = child_stack[-1], child_stack[:-1]
                if t.closes is None:
                    t.closes, t.split_stack = closes, stack
                    branches[target] = path[:-1]
                    t.split_branch = path[-2][1] if len(path) > 1 else None
                elif t.closes != closes:
                    err(f"join {target} joins steps from two different splits ({t.closes} and {closes})", t.lineno)
                    return
            else:
                if target in branches and branches[target] != path:
                    if len(t.in_steps) > 1:
                        err(
                            f"step {target} has {len(t.in_steps)} inputs ({', '.join(t.in_steps)}) but is not a "
                            f"join; give it an inputs argument: def {target}(self, inputs)",
                            t.lineno,
                        )
                        return
                if t.split_stack is not None and t.split_stack != child_stack:
                    err(f"step {target} is reached both inside and outside split {child_stack[-1]}", t.lineno)
                    return
                t.split_stack = child_stack
                branches[target] = path
                if path:
                    t.split_branch = path[-1][1]
                if target == "end" and child_stack and not end_inside:
                    # reported after the walk: a step with several inputs that is not a join says more
                    opener = steps[child_stack[-1]]
                    what = "foreach" if opener.kind == "foreach" else "split"
                    end_inside.append(
                        (
                            f"step {name} goes to end inside the {what} at step {opener.name}; "
                            f"join it first with a step that takes inputs",
                            line,
                        )
                    )
    if end_inside:
        err(*end_inside[0])
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
                    err(f"join {s.name} does not join branch {branch} of the split at step {opener.name}", s.lineno)
            inside = [
                n
                for n in s.in_steps
                if (enclosing := steps[n].split_stack) is not None
                and enclosing[: len(scope)] != scope
                and n != opener.name
            ]
            if inside:
                err(
                    f"join {s.name} takes input from {', '.join(inside)}, which is outside the split at step "
                    f"{opener.name}",
                    s.lineno,
                )
    if not errors:
        _check_parallel(steps, err)


def _check_parallel(steps: dict[str, StepNode], err: Callable[[str, Optional[int]], None]) -> None:
    """Metaflow's @parallel rules: num_parallel goes to a @parallel step, which only num_parallel reaches,
    and which is followed by a join."""
    for s in steps.values():
        if s.num_parallel is not None:
            target = steps[s.out[0]]
            if not target.is_parallel:
                err(
                    f"step {s.name} calls step {target.name} with self.next(num_parallel=...) but step "
                    f"{target.name} has no @parallel decorator",
                    s.next_lineno,
                )
                return
            n = s.num_parallel
            if not isinstance(n, Unresolved) and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
                err(f"step {s.name}: num_parallel must be a whole number of at least 1, not {n!r}", s.next_lineno)
                return
        if s.is_parallel:
            callers = [p for p in s.in_steps if steps[p].num_parallel is None]
            if callers:
                err(
                    f"step {s.name} has a @parallel decorator but step {callers[0]} calls it without "
                    f"self.next(num_parallel=...)",
                    s.lineno,
                )
                return
            if len(s.out) != 1 or steps[s.out[0]].kind != "join":
                err(
                    f"a @parallel step must be followed by a join step: step {s.out[0] if s.out else 'end'} "
                    f"comes after @parallel step {s.name}; give it an inputs argument",
                    s.lineno,
                )
                return
