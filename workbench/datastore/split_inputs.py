"""The inputs of a foreach's join, compact (:class:`SplitInputs`): a spec's ``input_split``.

A join closing a 10,000-wide foreach has 10,000 inputs; written one document each (pathspec, frames,
artifacts), its spec costs the runtime a few MB while it is made and written. All its inputs are the indexes
of one fan-out, in order, so what they share is written once and what differs is a few flat lists.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Iterable, Iterator, Optional, Sequence, Union, overload

from .records import InputRef


class SplitInputs(Sequence[InputRef]):
    """The inputs of a foreach's join, kept compact: input ``i`` is index ``i`` of the fan-out, task
    ``task_ids[i]`` of step ``step``. Its frames are ``outer`` plus ``frame`` with that index; its artifacts
    are ``names`` with row ``i`` of ``shas`` (None: that input has no such artifact). A 10,000-wide join's spec
    is then a few lists (the task ids as runs of consecutive numbers) rather than 10,000 input documents.
    Reads as the list of :class:`InputRef` it stands for, each made when it is read."""

    __slots__ = ("prefix", "step", "outer", "frame", "runs", "names", "shas", "_starts")

    def __init__(
        self,
        prefix: str,  # "FLOW/RUN/STEP/" of every input
        step: str,
        outer: list[dict[str, Any]],
        frame: dict[str, Any],  # the innermost frame; its "index" is each input's own
        runs: list[tuple[int, int]],  # task ids: (first, count) runs of consecutive numbers, in index order
        names: list[str],
        shas: list[Optional[str]],  # len(self) * len(names), one row per input
    ):
        self.prefix, self.step, self.outer, self.frame = prefix, step, outer, frame
        self.runs, self.names, self.shas = runs, names, shas
        self._starts: list[int] = []
        total = 0
        for first, count in runs:
            if type(first) is not int or type(count) is not int or first < 0 or count < 1:
                raise ValueError(f"input_split: bad run of task ids {[first, count]!r}")
            self._starts.append(total)
            total += count
        if len(shas) != total * len(names):
            raise ValueError(f"input_split: {len(shas)} shas for {total} inputs of {len(names)} artifacts")

    @staticmethod
    def runs_of(numbers: Iterable[int]) -> list[tuple[int, int]]:
        """Task numbers in index order as (first, count) runs of consecutive numbers."""
        runs: list[tuple[int, int]] = []
        for number in numbers:
            if runs and runs[-1][0] + runs[-1][1] == number:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((number, 1))
        return runs

    def __len__(self) -> int:
        return self._starts[-1] + self.runs[-1][1] if self.runs else 0

    @overload
    def __getitem__(self, i: int) -> InputRef: ...

    @overload
    def __getitem__(self, i: slice) -> list[InputRef]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[InputRef, list[InputRef]]:
        n = len(self)
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(n))]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        run = bisect_right(self._starts, i) - 1
        task_id = self.runs[run][0] + i - self._starts[run]
        k = len(self.names)
        row = self.shas[i * k : i * k + k]
        return InputRef(
            pathspec=f"{self.prefix}{task_id}",
            step=self.step,
            foreach_stack=[*self.outer, {key: (i if key == "index" else v) for key, v in self.frame.items()}],
            artifacts={name: sha for name, sha in zip(self.names, row, strict=True) if sha is not None},
        )

    def __iter__(self) -> Iterator[InputRef]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SplitInputs({self.prefix!r}, {len(self)} inputs)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "step": self.step,
            "outer": self.outer,
            "frame": self.frame,
            "task_ids": [list(r) for r in self.runs],
            "artifacts": self.names,
            "shas": self.shas,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "SplitInputs":
        """A spec's ``input_split``; ValueError (one line) when it is not one."""
        try:
            fields = (data["prefix"], data["step"], data["outer"], data["frame"], data["task_ids"])
            names, shas = data.get("artifacts") or [], data.get("shas") or []
            prefix, step, outer, frame, runs = fields
            ok = isinstance(prefix, str) and isinstance(step, str) and isinstance(frame, dict) and "index" in frame
            ok = ok and isinstance(outer, list) and all(isinstance(f, dict) for f in outer)
            ok = ok and all(isinstance(n, str) for n in names) and all(s is None or isinstance(s, str) for s in shas)
            if not ok:
                raise TypeError
            return cls(prefix, step, outer, frame, [(r[0], r[1]) for r in runs], list(names), list(shas))
        except (KeyError, TypeError, IndexError, AttributeError):
            raise ValueError("input_split: not a fan-out's inputs (a damaged spec)") from None
