"""CUDA-graph replay of a solver's repeated block of iterations (eager elsewhere)."""

import torch

from ._device import sync_free


def can_capture(device):
    """Whether blocks on ``device`` are captured as CUDA graphs: on CUDA,
    where launches dominate small solver steps."""
    return torch.device(device).type == "cuda" and sync_free(device)


class GraphedBlock:
    """Run ``block()`` (a block of solver iterations) again and again:
    eagerly, or on CUDA replayed from a CUDA graph.

    ``block`` must be the same computation at every call (no Python branch
    on a tensor value, no host sync, no random draw on the host), update its
    state in place, and return tensors (or ``None``). On CUDA the first call
    runs it eagerly on a side stream (the warm-up that cuBLAS and the caching
    allocator need before a capture), the second captures it and replays the
    capture, the later ones replay; each call advances the solver by one
    block, as the eager call does. The outputs of a replayed block are the
    graph's static tensors, overwritten by the next replay. If the capture
    fails the block runs eagerly from then on (a capture executes nothing,
    so the state is as it was).

    Parameters
    ----------
    block : callable
        ``block() -> outputs``.
    capture : bool
        Capture on CUDA (:func:`can_capture`); ``False`` always runs eagerly.
    """

    def __init__(self, block, capture):
        self.block, self.capture = block, capture
        self.calls, self.graph, self.outputs = 0, None, None

    def __call__(self):
        self.calls += 1
        if not self.capture:
            return self.block()
        if self.graph is not None:
            self.graph.replay()
            return self.outputs
        if self.calls == 1:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.block()
            torch.cuda.current_stream().wait_stream(side)
            return out
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                outputs = self.block()
        except RuntimeError:
            self.capture = False
            return self.block()
        self.graph, self.outputs = graph, outputs
        graph.replay()
        return outputs
