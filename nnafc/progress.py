"""Progress bars: one `bar()` for every long loop of the package (tqdm, a widget inside a notebook).

`tqdm.auto` warns when it runs inside a kernel without ipywidgets; the bar still works (as text),
so the warning is silenced here, once, instead of at every call site.
"""

from __future__ import annotations

import warnings
from typing import Any


def bar(iterable: Any = None, **kwargs: Any) -> Any:
    """A tqdm bar over `iterable` (or with `total=`); every tqdm keyword is passed through."""
    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=TqdmWarning)
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
