"""Count the torch operations a piece of code dispatches, and its host syncs.

Used by the tests (and the GPU benchmark) to prove on the CPU what matters on
a GPU: how many kernels one solver step launches, and that it never waits for
the device (a value read back to Python, or an op whose output size depends
on the data).
"""

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: Ops that read a device value back to the host (``.item()``, ``float(t)``,
#: ``bool(t)``, ``if t:``) or whose output shape depends on the data (boolean
#: indexing, ``nonzero``, ``repeat_interleave`` without ``output_size``): on
#: CUDA each one waits for the queued kernels.
SYNC_OPS = frozenset(
    {
        "aten._local_scalar_dense",
        "aten.nonzero",
        "aten.masked_select",
        "aten.masked_scatter",
        "aten.unique",
        "aten._unique",
        "aten._unique2",
        "aten.unique_consecutive",
        "aten.unique_dim",
    }
)
#: Ops that do no arithmetic and launch no kernel (views, metadata).
FREE_OPS = frozenset(
    {
        "aten.view",
        "aten._unsafe_view",
        "aten.t",
        "aten.transpose",
        "aten.permute",
        "aten.expand",
        "aten.slice",
        "aten.select",
        "aten.unsqueeze",
        "aten.squeeze",
        "aten.diagonal",
        "aten.alias",
        "aten.detach",
        "aten.as_strided",
        "aten.unbind",
        "aten.split",
        "aten.lift_fresh",
        "aten.empty",
        "aten.empty_like",
        "aten.empty_strided",
        "aten.is_same_size",
        "aten.sym_size",
        "aten.sym_stride",
        "aten.sym_numel",
        "aten.sym_storage_offset",
    }
)


def _sizes_from_data(func, args, kwargs):
    """``repeat_interleave`` without ``output_size``: its output size is the
    sum of the repeats, read back from the device."""
    if func.overloadpacket.__name__ != "repeat_interleave":
        return False
    return (kwargs or {}).get("output_size") is None and (
        len(args) < 4 or args[3] is None
    )


def _is_bool_index(func, args):
    """``aten.index`` (or ``index_put``) with a boolean mask among its
    indices: the output size depends on the mask's values."""
    if func.overloadpacket.__name__ not in ("index", "index_put", "index_put_"):
        return False
    indices = args[1] if len(args) > 1 else ()
    return any(
        isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ()
    )


class DispatchProbe(TorchDispatchMode):
    """Context manager recording every aten op dispatched inside it.

    Attributes
    ----------
    ops : collections.Counter
        Op name (``"aten.mm"``) to number of calls, views included.
    syncs : list of str
        The ops that synchronise with the device, in call order.

    Examples
    --------
    >>> import torch
    >>> from skpart.utils._dispatch_probe import DispatchProbe
    >>> x = torch.ones(3)
    >>> with DispatchProbe() as probe:
    ...     y = (x * 2).sum()
    ...     _ = float(y)
    >>> probe.syncs
    ['aten._local_scalar_dense']
    """

    def __init__(self):
        super().__init__()
        self.ops = Counter()
        self.syncs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = f"aten.{func.overloadpacket.__name__}"
        self.ops[name] += 1
        if (
            name in SYNC_OPS
            or _is_bool_index(func, args)
            or _sizes_from_data(func, args, kwargs)
        ):
            self.syncs.append(name)
        return func(*args, **(kwargs or {}))

    @property
    def kernels(self):
        """Number of ops that launch work (everything but views and
        metadata): a proxy for kernel launches on a GPU."""
        return sum(n for name, n in self.ops.items() if name not in FREE_OPS)
