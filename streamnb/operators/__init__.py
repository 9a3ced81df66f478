"""streamnb's operators, one small class each, grouped by kind (the protocol: :mod:`.base`).

* :mod:`.transform` - ``Map``, ``Filter``, ``Tap``, ``FlatMap``, ``Enumerate``, ``Scan``
* :mod:`.select` - ``Take``, ``Skip``, ``TakeWhile``, ``Sample``, ``Throttle``
* :mod:`.chunk` - ``Batch``
* :mod:`.backpressure` - ``Buffer``
* :mod:`.combine` - ``Merge``, ``Zip``
* :mod:`.observe` - ``Monitor``, ``Window``

``Stream``'s methods construct these; ``Stream.then(op)`` adds any operator, yours included.

Example - a new operator in a few lines (it is fused wherever it stands)::

    from streamnb.operators import Fragment, Link, Operator

    class Distinct(Operator):
        label = "distinct"

        def fragment(self, link: Link) -> Fragment:
            return Fragment(
                body=("if x in $seen:", "    continue", "$seen.add(x)"),
                locals={"seen": "set()"},
                calls_user=False,
            )

    await Stream([1, 1, 2]).then(Distinct()).collect()     # [1, 2]
"""

from .backpressure import Buffer
from .base import Fragment, Link, Operator
from .chunk import Batch
from .combine import Builder, Merge, Zip
from .observe import Monitor, Window
from .select import Sample, Skip, Take, TakeWhile, Throttle
from .transform import Enumerate, Filter, FlatMap, Map, Scan, Tap

__all__ = [
    "Batch",
    "Buffer",
    "Builder",
    "Enumerate",
    "Filter",
    "FlatMap",
    "Fragment",
    "Link",
    "Map",
    "Merge",
    "Monitor",
    "Operator",
    "Sample",
    "Scan",
    "Skip",
    "Take",
    "TakeWhile",
    "Tap",
    "Throttle",
    "Window",
    "Zip",
]
