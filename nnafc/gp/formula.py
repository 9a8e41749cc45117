"""Formulas: the typed primitive set over `nnafc.ops`, and a tree's three spellings.

A formula is DEAP's prefix string, e.g. formula (9) of the paper is `div(sub(high, low), volume)`;
`to_infix` gives `(high - low) / volume` and `to_rpn` the paper's reverse Polish
`high low sub volume div`. `parse`, `from_infix` and `parse_rpn` read each spelling back into the
same tree, without `eval`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import torch
from deap import gp

from nnafc import ops
from nnafc.gp.config import GPConfig

Tensor = torch.Tensor

__all__ = ["Series", "INPUTS", "FUNCTIONS", "primitive_set", "parse", "parse_rpn", "from_infix",
           "to_infix", "to_rpn", "structure"]

INPUTS = ("open", "high", "low", "close", "volume")  # the terminals: §3.2's five series


class Series:
    """Type tag of a `(T, N)` tensor node (windows use the built-in `int`)."""


# name -> (function, argument types); the order is the primitive set's (it matters for seeding).
# Left out of the ops: ts_sum (= d * ts_mean), ts_cov (ts_corr up to two ts_std factors),
# cs_zscore / cs_demean (rank-preserving at the root), ema / decay_linear / wma (other weightings
# of ts_mean): each would add a near-synonym that dilutes the search rather than new shapes.
FUNCTIONS: dict[str, tuple[Callable[..., Tensor], tuple[type, ...]]] = {
    "add": (ops.add, (Series, Series)),
    "sub": (ops.sub, (Series, Series)),
    "mul": (ops.mul, (Series, Series)),
    "div": (ops.div, (Series, Series)),  # protected: NaN where |den| < eps
    "neg": (ops.neg, (Series,)),
    "abs": (ops.abs, (Series,)),
    "sign": (ops.sign, (Series,)),
    "log": (ops.log, (Series,)),  # protected: NaN where x <= 0
    "delay": (ops.delay, (Series, int)),
    "delta": (ops.delta, (Series, int)),
    "ts_mean": (ops.ts_mean, (Series, int)),
    "ts_std": (ops.ts_std, (Series, int)),
    "ts_min": (ops.ts_min, (Series, int)),
    "ts_max": (ops.ts_max, (Series, int)),
    "ts_rank": (ops.ts_rank, (Series, int)),
    "ts_corr": (ops.ts_corr, (Series, Series, int)),
    "cs_rank": (ops.cs_rank, (Series,)),
}


def primitive_set(windows: Iterable[int] = GPConfig.windows) -> gp.PrimitiveSetTyped:
    """The typed primitive set: `FUNCTIONS` over the five inputs and the integer `windows`."""
    pset = gp.PrimitiveSetTyped("factor", [Series] * len(INPUTS), Series)
    pset.renameArguments(**{f"ARG{i}": name for i, name in enumerate(INPUTS)})
    for name, (fn, args) in FUNCTIONS.items():
        pset.addPrimitive(fn, list(args), Series, name=name)
    for w in sorted(set(windows)):
        pset.addTerminal(int(w), int)  # name "20", formatted as 20
    return pset


_PARSE_PSET = primitive_set()  # parsing accepts any integer window, not only the defaults
_TOKEN = re.compile(r"[ \t\n\r\f\v(),]")


def parse(formula: str | gp.PrimitiveTree) -> gp.PrimitiveTree:
    """A tree from its prefix string, e.g. `div(sub(high, low), volume)`; ValueError if malformed.

    Tokens must be known primitives, inputs or positive integer windows: nothing is `eval`-ed
    that is not a plain integer (DEAP's parser would `eval` any other token).
    """
    if isinstance(formula, gp.PrimitiveTree):
        return formula
    if not isinstance(formula, str):
        raise ValueError(f"a formula must be a string, got {type(formula).__name__}")
    for token in filter(None, _TOKEN.split(formula)):
        if token not in _PARSE_PSET.mapping and not token.isdigit():
            raise ValueError(f"unknown token {token!r} in formula {formula!r}; "
                             f"primitives: {', '.join(FUNCTIONS)}; inputs: {', '.join(INPUTS)}")
    try:
        tree = gp.PrimitiveTree.from_string(formula, _PARSE_PSET)
    except (TypeError, SyntaxError, IndexError) as err:
        raise ValueError(f"malformed formula {formula!r}: {err}") from None
    if not len(tree):
        raise ValueError("empty formula")
    if tree[0].ret is not Series:
        raise ValueError(f"formula {formula!r} is a window, not a series")
    structure(tree)  # raises on missing / extra arguments
    return tree


def structure(tree: Sequence) -> tuple[list[str], list[tuple[int, ...]]]:
    """Each node's subtree string (= `str` of that subtree) and its children's indices.

    One reverse pass over the prefix list with a stack: O(size), no subtree searches.
    """
    n = len(tree)
    keys: list[str] = [""] * n
    kids: list[tuple[int, ...]] = [()] * n
    stack: list[int] = []
    for i in range(n - 1, -1, -1):
        node = tree[i]
        if node.arity == 0:
            keys[i] = node.format()
        else:
            if len(stack) < node.arity:
                raise ValueError(f"{node.name} is missing arguments in {_loose(tree)}")
            kids[i] = tuple(stack.pop() for _ in range(node.arity))  # first child first
            keys[i] = node.format(*(keys[k] for k in kids[i]))
        stack.append(i)
    if len(stack) != 1:
        raise ValueError(f"not one formula: {len(stack)} trees in {_loose(tree)}")
    return keys, kids


def _loose(tree: Sequence) -> str:
    return " ".join(node.name for node in tree)


_INFIX = {"add": ("+", 1), "sub": ("-", 1), "mul": ("*", 2), "div": ("/", 2)}  # operator, precedence
_ATOM = 4  # precedence of a name, number or function call


def to_infix(tree: str | gp.PrimitiveTree) -> str:
    """Readable infix: formula (9) -> `(high - low) / volume`.

    Operators associate to the left, so a right operand of equal precedence keeps its
    parentheses (`a - (b - c)`, and `a + (b + c)` too): `from_infix` then rebuilds the very same
    tree, whose float rounding is that of the evaluated formula.
    """
    tree = parse(tree)
    _, kids = structure(tree)

    def rec(i: int) -> tuple[str, int]:
        node = tree[i]
        if node.arity == 0:
            return node.format(), _ATOM
        args = [rec(k) for k in kids[i]]
        if node.name in _INFIX:
            sym, prec = _INFIX[node.name]
            (left, lp), (right, rp) = args
            left = f"({left})" if lp < prec else left
            right = f"({right})" if rp <= prec else right
            return f"{left} {sym} {right}", prec
        if node.name == "neg":
            text, p = args[0]
            return f"-({text})" if p < _ATOM else f"-{text}", 3
        return f"{node.name}({', '.join(a for a, _ in args)})", _ATOM

    return rec(0)[0]


def to_rpn(tree: str | gp.PrimitiveTree) -> str:
    """Reverse Polish (postfix), the paper's representation: `high low sub volume div`."""
    tree = parse(tree)
    _, kids = structure(tree)
    out: list[str] = []

    def rec(i: int) -> None:
        for k in kids[i]:
            rec(k)
        out.append(tree[i].format() if tree[i].arity == 0 else tree[i].name)

    rec(0)
    return " ".join(out)




def parse_rpn(text: str) -> gp.PrimitiveTree:
    """A tree from reverse Polish (`to_rpn`'s output): `high low sub volume div` -> formula (9)."""
    if not isinstance(text, str):
        raise ValueError(f"an RPN formula must be a string, got {type(text).__name__}")
    stack: list[str] = []
    for token in text.split():
        if token in FUNCTIONS:
            arity = len(FUNCTIONS[token][1])
            if len(stack) < arity:
                raise ValueError(f"{token} needs {arity} arguments in RPN {text!r}")
            args, stack[-arity:] = stack[-arity:], []
            stack.append(f"{token}({', '.join(args)})")
        elif token in INPUTS or token.isdigit():
            stack.append(token)
        else:
            raise ValueError(f"unknown token {token!r} in RPN {text!r}")
    if len(stack) != 1:
        raise ValueError(f"RPN {text!r} leaves {len(stack)} values, not one formula")
    return parse(stack[0])  # types and windows are checked there


_INFIX_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_]\w*)|([-+*/(),]))")
_INFIX_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div"}


def from_infix(text: str) -> gp.PrimitiveTree:
    """A tree from infix (`to_infix`'s output): `(high - low) / volume` -> formula (9).

    Recursive descent: `+ -` below `* /` below unary minus (`neg`), all left-associative;
    function calls use the primitives' names, e.g. `ts_mean(close, 20)`.
    """
    if not isinstance(text, str):
        raise ValueError(f"an infix formula must be a string, got {type(text).__name__}")
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _INFIX_TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected character {text[pos:].strip()[:1]!r} in infix {text!r}")
        tokens.append(m.group(m.lastindex))
        pos = m.end()
    at = 0

    def peek() -> str | None:
        return tokens[at] if at < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal at
        token = peek()
        if token is None or (expected is not None and token != expected):
            raise ValueError(f"expected {expected or 'more'} at token {at} of infix {text!r}")
        at += 1
        return token

    def binary(operand: Callable[[], str], symbols: str) -> str:
        left = operand()
        while peek() is not None and peek() in symbols:
            left = f"{_INFIX_OPS[take()]}({left}, {operand()})"
        return left

    def expr() -> str:
        return binary(term, "+-")

    def term() -> str:
        return binary(unary, "*/")

    def unary() -> str:
        if peek() == "-":
            take()
            return f"neg({unary()})"
        return atom()

    def atom() -> str:
        token = take()
        if token == "(":
            inner = expr()
            take(")")
            return inner
        if token in FUNCTIONS and peek() == "(":
            take("(")
            args = [expr()]
            while peek() == ",":
                take()
                args.append(expr())
            take(")")
            return f"{token}({', '.join(args)})"
        if token in INPUTS or token.isdigit():
            return token
        raise ValueError(f"unexpected {token!r} in infix {text!r}")

    formula = expr()
    if at != len(tokens):
        raise ValueError(f"unexpected {tokens[at]!r} after a complete formula in infix {text!r}")
    return parse(formula)
