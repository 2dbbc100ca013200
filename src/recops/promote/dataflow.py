"""Data flow between steps: for every step, the names it must load from ``self`` (read before
being assigned, provided by a parameter or an earlier step) and the names it must store (read
by a later step, or assigned in the last step, whose values are the flow's outputs). A value
mutated in a step that a later step reads is stored again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from recops.promote.notebook import Cell, PromotionError, Step
from recops.promote.parsing import FLOWSPEC_ATTRIBUTES, FlowParameter
from recops.promote.scopes import (
    BUILTIN_NAMES,
    IPYTHON_ONLY_NAMES,
    UNPICKLABLE_BINDINGS,
    Event,
    NameEvent,
    cell_events,
)


@dataclass(frozen=True)
class StepDataFlow:
    loads: tuple[str, ...]  # `name = self.name` at the top of the step
    stores: tuple[str, ...]  # `self.name = name` at the bottom of the step


@dataclass(frozen=True)
class _Provision:
    step: int
    binding: str


@dataclass
class _StepState:
    definite: set[str] = field(default_factory=set)
    bound: dict[str, tuple[str, Cell]] = field(default_factory=dict)  # name -> (binding, cell)
    loads: dict[str, Cell] = field(default_factory=dict)
    mutated: dict[str, bool] = field(default_factory=dict)  # name -> surely mutated
    deleted: set[str] = field(default_factory=set)
    first_touch: dict[str, int] = field(default_factory=dict)

    def touch(self, name: str) -> None:
        self.first_touch.setdefault(name, len(self.first_touch))

    def is_local(self, name: str) -> bool:
        return name in self.bound or name in self.loads


class _DataFlowPlanner:
    def __init__(self, steps: Sequence[Step], parameters: Sequence[FlowParameter], module: dict[str, Cell]):
        self.steps = steps
        self.parameters = {p.name for p in parameters}
        self.module = module
        self.events = [[(cell, cell_events(cell)) for cell in step.cells] for step in steps]
        self.first_bind: dict[str, Cell] = {}
        for cell_events_of_step in self.events:
            for cell, events in cell_events_of_step:
                for event in events:
                    if event.kind is Event.BIND:
                        self.first_bind.setdefault(event.name, cell)
        self.providers: dict[str, _Provision] = {}
        self.needed: list[dict[str, Cell]] = [{} for _ in steps]  # step -> names later steps read

    def plan(self) -> list[StepDataFlow]:
        states = []
        for index, cells in enumerate(self.events):
            state = _StepState()
            for cell, events in cells:
                for event in events:
                    self._apply(state, cell, event)
            self._hand_on(index, state)
            states.append(state)
        return [self._step_flow(index, state) for index, state in enumerate(states)]

    def _apply(self, state: _StepState, cell: Cell, event: NameEvent) -> None:
        name = event.name
        if event.kind is Event.BIND:
            if name in self.parameters:
                raise PromotionError(
                    f"{cell.where}: assigns to parameter {name!r} (line {event.line}); "
                    "parameters are read-only in a flow, assign to a new name"
                )
            if name == "self":
                raise PromotionError(f"{cell.where}: 'self' is the step's own name (line {event.line})")
            state.bound[name] = (event.binding, cell)
            state.deleted.discard(name)
            state.touch(name)
            if event.depth == 0:
                state.definite.add(name)
            return
        self._read(state, cell, event)
        if event.kind is Event.MUTATE and state.is_local(name) and name not in self.parameters:
            state.mutated[name] = state.mutated.get(name, False) or event.certain
            state.touch(name)
        elif event.kind is Event.DELETE:
            state.definite.discard(name)
            state.bound.pop(name, None)
            state.deleted.add(name)

    def _read(self, state: _StepState, cell: Cell, event: NameEvent) -> None:
        name = event.name
        if name in state.definite:
            return
        provision = self.providers.get(name)
        if provision is not None and provision.binding == "import" and name in self.module:
            return  # the same module, imported again in a step: the imports cell provides it
        if provision is not None or name in self.parameters:
            if name not in state.loads and name not in state.deleted:
                state.loads[name] = cell
                if provision is not None:
                    self.needed[provision.step].setdefault(name, cell)
            return
        if name in state.bound or name in self.module or name in BUILTIN_NAMES:
            return
        if name in IPYTHON_ONLY_NAMES:
            raise PromotionError(
                f"{cell.where}: {name}() exists only inside IPython and cannot run in a flow step "
                f"(line {event.line})"
            )
        if event.deferred and name in self.first_bind:
            return
        if name in self.first_bind and not event.deferred:
            raise PromotionError(
                f"{cell.where}: name {name!r} is used before it is assigned (line {event.line}); "
                f"it is first assigned in {self.first_bind[name].where}"
            )
        raise PromotionError(f"{cell.where}: name {name!r} is used but never defined (line {event.line})")

    def _hand_on(self, index: int, state: _StepState) -> None:
        for name in state.deleted:
            self.providers.pop(name, None)
        for name, (binding, _) in state.bound.items():
            self.providers[name] = _Provision(index, binding)
        for name in state.mutated:
            if name not in state.bound and name not in state.deleted:
                self.providers[name] = _Provision(index, "assign")

    def _step_flow(self, index: int, state: _StepState) -> StepDataFlow:
        stores = set(self.needed[index])
        for name, reader in self.needed[index].items():
            binding, cell = state.bound.get(name, ("assign", reader))
            if binding in UNPICKLABLE_BINDINGS:
                raise PromotionError(
                    f"{reader.where}: {name!r} comes from {cell.where}, {UNPICKLABLE_BINDINGS[binding]} "
                    "(a later step cannot receive it)"
                )
        if index == len(self.steps) - 1:
            # The flow's outputs: what the last step surely assigned or changed, and can store.
            surely_there = state.definite | (set(state.loads) - state.deleted)
            stores |= {
                name
                for name, (binding, _) in state.bound.items()
                if name in surely_there and binding not in UNPICKLABLE_BINDINGS and not name.startswith("_")
            }
            stores |= {name for name, surely in state.mutated.items() if surely and name in surely_there}
        step_names = {step.name for step in self.steps}
        for name in stores | set(state.loads):
            if name in self.parameters:
                continue
            cell = state.bound[name][1] if name in state.bound else state.loads[name]
            if name in step_names or name in FLOWSPEC_ATTRIBUTES or name.startswith("__"):
                raise PromotionError(
                    f"{cell.where}: {name!r} must pass between steps, but a flow cannot store an artifact "
                    "with that name (it is a step or a FlowSpec attribute, or starts with '__'); rename it"
                )
        order = state.first_touch
        return StepDataFlow(
            loads=tuple(state.loads),
            stores=tuple(sorted(stores, key=lambda name: order.get(name, len(order)))),
        )


def plan_data_flow(
    steps: Sequence[Step], parameters: Sequence[FlowParameter], module: dict[str, Cell]
) -> list[StepDataFlow]:
    """Loads and stores of each step, in step order (see the module docstring)."""
    return _DataFlowPlanner(steps, parameters, module).plan()
