"""Which names a cell loads and stores, found by walking its syntax tree with Python's scoping
rules (function and class bodies, comprehensions, globals).

A notebook runs its cells in one global namespace; a flow runs each step in a fresh process and
passes values on as artifacts (``self.name``). Mutating a value (``x.a = 1``, ``x[0] = 1``,
``x.fit(...)``) counts as reading it. :mod:`recops.promote.dataflow` turns these events into what
each step loads and stores.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from recops.promote.notebook import Cell, PromotionError
from recops.promote.parsing import FlowParameter, parse_cell

BUILTIN_NAMES = frozenset(dir(builtins))


IPYTHON_ONLY_NAMES = frozenset({"display", "get_ipython", "In", "Out"})


UNPICKLABLE_BINDINGS = {
    "import": "a module imported in that step; move the import to an imports cell",
    "def": "a function defined in that step; move it to a functions cell",
    "class": "a class defined in that step; move it to a functions cell",
    "lambda": "a lambda defined in that step; make it a def in a functions cell",
}


class Event(Enum):
    READ = "read"
    BIND = "bind"
    MUTATE = "mutate"
    DELETE = "delete"


@dataclass(frozen=True)
class NameEvent:
    kind: Event
    name: str
    line: int
    deferred: bool = False  # READ from inside a function or class body: needed once it is called
    depth: int = 0  # BIND: how many if/for/while/try/match levels deep; at 0 the name surely exists
    binding: str = "assign"  # BIND: assign, import, def, class or lambda
    certain: bool = True  # MUTATE: False for a method call, which may or may not change the object


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Problem(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


class ScopeWalker(ast.NodeVisitor):
    """Lists, in execution order, the names one scope reads, binds, mutates and deletes.

    Nested functions, lambdas and classes are scopes of their own: only their free names
    reach this scope, as deferred reads. Comprehension variables stay inside the comprehension.
    """

    def __init__(self) -> None:
        self.events: list[NameEvent] = []
        self.declared_global: set[str] = set()
        self._depth = 0

    def walk(self, statements: Iterable[ast.AST]) -> list[NameEvent]:
        for statement in statements:
            self.visit(statement)
        return self.events

    def _add(self, kind: Event, name: str, node: ast.AST, **details) -> None:
        self.events.append(NameEvent(kind, name, getattr(node, "lineno", 0), **details))

    def _bind(self, name: str, node: ast.AST, binding: str = "assign") -> None:
        self._add(Event.BIND, name, node, depth=self._depth, binding=binding)

    def _walk_conditionally(self, statements: Iterable[ast.AST]) -> None:
        self._depth += 1
        self.walk(statements)
        self._depth -= 1

    def _walk_branches(self, node: ast.AST, branches: list[Callable[[], None]]) -> None:
        """Walk alternatives (if/else, try/except); a name every one of them binds surely exists after."""
        surely_bound: list[dict[str, str]] = []
        self._depth += 1
        for walk_branch in branches:
            start = len(self.events)
            walk_branch()
            surely_bound.append(
                {
                    e.name: e.binding
                    for e in self.events[start:]
                    if e.kind is Event.BIND and e.depth == self._depth
                }
            )
        self._depth -= 1
        for name, binding in surely_bound[0].items():
            if all(name in bound for bound in surely_bound[1:]):
                self._bind(name, node, binding)

    def _assign_target(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self._bind(target.id, target)
        elif isinstance(target, ast.Starred):
            self._assign_target(target.value)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._assign_target(element)
        else:  # x.attr = ... or x[key] = ...: reads x and changes it
            self.visit(target)
            root = _root_name(target)
            if root:
                self._add(Event.MUTATE, root, target)

    def _inner_scope_reads(self, walker: ScopeWalker, node: ast.AST) -> None:
        bound = {e.name for e in walker.events if e.kind is Event.BIND} - walker.declared_global
        reported: set[str] = set()
        for event in walker.events:
            if event.kind in (Event.READ, Event.MUTATE) and event.name not in bound | reported:
                reported.add(event.name)
                self._add(Event.READ, event.name, node, deferred=True)
        # A function that changes an outer value changes it only if it is called: a possible mutation.
        for name in dict.fromkeys(e.name for e in walker.events if e.kind is Event.MUTATE):
            if name not in bound:
                self._add(Event.MUTATE, name, node, deferred=True, certain=False)

    def _function_scope(self, node: ast.AST, arguments: ast.arguments, body: Sequence[ast.AST]) -> None:
        self.walk([*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)])
        inner = ScopeWalker()
        every_argument = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every_argument += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        for argument in every_argument:
            if argument.annotation is not None:
                self.visit(argument.annotation)
            inner._bind(argument.arg, argument)
        inner.walk(body)
        self._inner_scope_reads(inner, node)

    # names

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._add(Event.READ, node.id, node)
        elif isinstance(node.ctx, ast.Store):
            self._bind(node.id, node)
        else:
            self._add(Event.READ, node.id, node)
            self._add(Event.DELETE, node.id, node)

    def visit_Global(self, node: ast.Global) -> None:
        self.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.declared_global.update(node.names)

    # statements

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            if isinstance(node.value, ast.Lambda) and isinstance(target, ast.Name):
                self._bind(target.id, target, binding="lambda")
            else:
                self._assign_target(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self._add(Event.READ, node.target.id, node.target)
            self.visit(node.value)
            self._bind(node.target.id, node.target)
        else:
            self.visit(node.value)
            self._assign_target(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self._assign_target(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._depth += 1
        self._assign_target(node.target)
        self.walk(node.body)
        self.walk(node.orelse)
        self._depth -= 1

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self._walk_conditionally([*node.body, *node.orelse])

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        self._walk_branches(node, [lambda: self.walk(node.body), lambda: self.walk(node.orelse)])

    def _handler(self, handler: ast.ExceptHandler) -> None:
        if handler.type is not None:
            self.visit(handler.type)
        if handler.name:
            self._bind(handler.name, handler)
        self.walk(handler.body)
        if handler.name:  # Python deletes the exception variable when the handler ends
            self._add(Event.DELETE, handler.name, handler)

    def visit_Try(self, node: ast.Try | ast.TryStar) -> None:
        branches = [lambda: self.walk([*node.body, *node.orelse])]
        branches += [lambda handler=handler: self._handler(handler) for handler in node.handlers]
        self._walk_branches(node, branches)
        self.walk(node.finalbody)

    visit_TryStar = visit_Try

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._assign_target(item.optional_vars)
        self.walk(node.body)

    visit_AsyncWith = visit_With

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        self._depth += 1
        for case in node.cases:
            self.visit(case.pattern)
            if case.guard is not None:
                self.visit(case.guard)
            self.walk(case.body)
        self._depth -= 1

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self._bind(node.name, node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name, node)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.walk([*node.keys, *node.patterns])
        if node.rest:
            self._bind(node.rest, node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(alias.asname or alias.name.partition(".")[0], node, binding="import")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                raise _Problem(
                    node.lineno, f"`from {node.module} import *` hides which names it defines; name them"
                )
            self._bind(alias.asname or alias.name, node, binding="import")

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.visit(target)
            else:
                self.visit(target)
                root = _root_name(target)
                if root:
                    self._add(Event.MUTATE, root, target)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.walk(node.decorator_list)
        if node.returns is not None:
            self.visit(node.returns)
        self._function_scope(node, node.args, node.body)
        self._bind(node.name, node, binding="def")

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.walk([*node.decorator_list, *node.bases, *(k.value for k in node.keywords)])
        inner = ScopeWalker()
        inner.walk(node.body)
        self._inner_scope_reads(inner, node)
        self._bind(node.name, node, binding="class")

    # expressions

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function_scope(node, node.args, [node.body])

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._bind(node.target.id, node.target)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute):
            root = _root_name(node.func.value)
            if root:
                self._add(Event.MUTATE, root, node, certain=False)

    def _comprehension(self, node: ast.AST, generators: list[ast.comprehension], results: list) -> None:
        # The first iterable is evaluated outside; everything else runs in the comprehension's scope.
        self.visit(generators[0].iter)
        inner = _ComprehensionWalker()
        for position, generator in enumerate(generators):
            if position:
                inner.visit(generator.iter)
            inner._assign_target(generator.target)
            inner.walk(generator.ifs)
        inner.walk(results)
        local = {e.name for e in inner.events if e.kind is Event.BIND}
        local |= {name for name, _ in inner.escaping_binds}
        for event in inner.events:
            if event.name not in local:
                self.events.append(event)
        for name, target in inner.escaping_binds:
            self._bind(name, target)

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._comprehension(node, node.generators, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, node.generators, [node.key, node.value])


class _ComprehensionWalker(ScopeWalker):
    """An assignment expression inside a comprehension binds in the enclosing scope."""

    def __init__(self) -> None:
        super().__init__()
        self.escaping_binds: list[tuple[str, ast.Name]] = []

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.escaping_binds.append((node.target.id, node.target))


def cell_events(cell: Cell) -> list[NameEvent]:
    tree = parse_cell(cell)
    try:
        return ScopeWalker().walk(tree.body)
    except _Problem as problem:
        raise PromotionError(f"{cell.where}: line {problem.line}: {problem}") from None


def module_names(
    import_cells: Sequence[Cell], function_cells: Sequence[Cell], parameters: Sequence[FlowParameter]
) -> dict[str, Cell]:
    """Names the imports and functions cells define, checked in the order the flow file runs them.

    Free names inside function bodies are the function's business and are not checked.
    """
    parameter_names = {p.name for p in parameters}
    events_by_cell = [(cell, cell_events(cell)) for cell in [*import_cells, *function_cells]]
    every_bind = {
        event.name: cell for cell, events in events_by_cell for event in events if event.kind is Event.BIND
    }
    defined: dict[str, Cell] = {}
    for cell, events in events_by_cell:
        for event in events:
            if event.kind is Event.BIND:
                defined[event.name] = cell
            elif event.kind is Event.READ and not event.deferred:
                name = event.name
                if name in defined or name in BUILTIN_NAMES:
                    continue
                if name in parameter_names:
                    reason = "is a parameter, and parameters exist only inside steps"
                elif name in every_bind:
                    reason = (
                        f"is defined only later, in {every_bind[name].where} "
                        "(the flow file puts imports cells first, then functions cells)"
                    )
                else:
                    reason = "is used but never defined"
                raise PromotionError(f"{cell.where}: name {name!r} {reason} (line {event.line})")
    return defined
