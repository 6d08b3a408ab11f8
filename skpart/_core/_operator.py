"""The data matrix as the solvers see it: products, row blocks and norms."""

import torch

#: Dense entries per row block (blocks of ``W H`` in the beta divergences).
BLOCK_ELEMS = 1 << 22
#: Rows per block of the sparse-dense products of a CSR ``X``: torch's
#: CSR-dense product holds about two copies of its output and a contiguous
#: copy of a strided operand, so on a tall ``X`` the products are taken one
#: row block at a time (the temporaries are then ``ROW_BLOCK x k``, small
#: enough not to leave the allocator's heap fragmented, and cache-sized).
ROW_BLOCK = 1 << 13


class DataOperator:
    """A dense or sparse data matrix ``X`` with the operations the solvers need.

    Dense ``X`` is used as it is, with a transposed view. Any sparse layout is
    converted to CSR and its transpose is materialised once as a CSR tensor,
    so that both ``X @ Y`` and ``X^T @ Y`` are sparse-times-dense products
    (torch multiplies CSR from the left only).

    Parameters
    ----------
    X : Tensor of shape (n_rows, n_cols)
        Dense (strided) or sparse (COO, CSR, CSC) matrix.
    Xt : Tensor of shape (n_cols, n_rows) or None, default=None
        Its transpose, when already at hand (:attr:`T`).

    Attributes
    ----------
    X : Tensor
        ``X``, dense or CSR.
    sparse : bool
    shape : tuple of int
    """

    def __init__(self, X, Xt=None):
        if X.layout not in (torch.strided, torch.sparse_csr):
            X = X.to_sparse_csr()
        self.X, self._Xt = X, Xt
        self.sparse = X.layout != torch.strided
        self.shape = tuple(X.shape)
        self._to_t = None
        self._t_blocks = None
        self._blocks = None
        self._scratch = {}
        self._sampled = None

    @property
    def dtype(self):
        """``X``'s dtype."""
        return self.X.dtype

    @property
    def device(self):
        """``X``'s device."""
        return self.X.device

    @property
    def Xt(self):
        """``X^T``: a view (dense) or a CSR copy made at first use (sparse).

        The permutation from ``X``'s value order to ``X^T``'s is kept only
        when :meth:`transposed_with` has asked for it (the beta divergences'
        updates): ``X^T`` alone does not need it, and it is as large as
        ``X``'s values."""
        if self._Xt is None:
            if not self.sparse:
                self._Xt = self.X.mT
            elif self._to_t is not None:
                self._Xt = self.transposed_with(self.X.values())
            else:
                crow, col, order = self._transpose_pattern()
                self._Xt = self._csr_t(crow, col, self.X.values()[order])
        return self._Xt

    @property
    def T(self):
        """The operator of ``X^T`` (no copy)."""
        return DataOperator(self.Xt, self.X)

    # -- values at the stored entries of a sparse X -------------------------
    def sampled_product(self, W, H):
        """``(W @ H)`` at the stored entries of a CSR ``X``, as a 1-d tensor
        aligned with ``X.values()``: ``nnz * k`` operations, no ``n x m``
        block (scikit-learn's ``_special_sparse_dot``).

        The result is a scratch array of the operator
        (:meth:`_scratch_values`), which the next call overwrites: callers
        use it at once, and may overwrite it themselves."""
        if self._sampled is None:  # the CSR tensor around it, made once
            self._sampled = self.with_values(self._scratch_values("sampled"))
        out = self._sampled
        return torch.sparse.sampled_addmm(self.X, W, H, beta=0.0, out=out).values()

    def _scratch_values(self, name):
        """An array the size of ``X``'s values kept by the operator under
        ``name``. A beta-divergence fit writes its values at the stored
        entries there at every update: one array for the whole fit, where
        allocating and freeing new ones at every update page-faulted each
        time and left the allocator's heap more fragmented as the fit went
        on."""
        if name not in self._scratch:
            self._scratch[name] = torch.empty_like(self.X.values())
        return self._scratch[name]

    def with_values(self, values):
        """A CSR tensor with ``X``'s pattern and ``values`` (in ``X``'s
        value order); ``X``'s index tensors are shared, not copied."""
        X = self.X
        return torch.sparse_csr_tensor(
            X.crow_indices(),
            X.col_indices(),
            values,
            size=self.shape,
            check_invariants=False,
        )

    def transposed_with(self, values, scratch=False):
        """The CSR tensor of shape ``(n_cols, n_rows)`` with ``X^T``'s pattern
        and the ``values`` given in ``X``'s value order (``with_values(values)``
        transposed); the pattern and the permutation are computed once. With
        ``scratch`` its values are a scratch array of the operator
        (:meth:`_scratch_values`), overwritten by the next such call."""
        if self._to_t is None:
            self._to_t = self._transpose_pattern()
            if self._Xt is not None:  # share the indices X^T already holds
                crow, col = self._Xt.crow_indices(), self._Xt.col_indices()
                self._to_t = (crow, col, self._to_t[2])
        crow, col, order = self._to_t
        out = self._scratch_values("transposed") if scratch else None
        return self._csr_t(crow, col, torch.index_select(values, 0, order, out=out))

    def _csr_t(self, crow, col, values):
        """The CSR tensor of shape ``(n_cols, n_rows)`` of these arrays."""
        return torch.sparse_csr_tensor(
            crow, col, values, size=self.shape[::-1], check_invariants=False
        )

    def _transpose_pattern(self):
        """``X^T``'s CSR indices and the permutation taking ``X``'s value order
        to ``X^T``'s: a stable sort of the column indices (row order is kept
        within a column). Peak memory about three index arrays, where
        ``X.t().to_sparse_csr()`` takes about seven."""
        n, m = self.shape
        crow, col = self.X.crow_indices(), self.X.col_indices()
        order = torch.argsort(col, stable=True)
        t_crow = torch.zeros(m + 1, dtype=crow.dtype, device=crow.device)
        torch.cumsum(torch.bincount(col, minlength=m), 0, out=t_crow[1:])
        t_col = self.row_indices()[order]
        return t_crow, t_col, order

    # -- products ---------------------------------------------------------
    def _row_blocks(self):
        """``[(slice, X[slice])]``: the row blocks of :data:`ROW_BLOCK` rows of
        the sparse products, as CSR views (made once: cutting reads the row
        pointers on the host)."""
        if self._blocks is None:
            n = self.shape[0]
            slices = (slice(i, min(i + ROW_BLOCK, n)) for i in range(0, n, ROW_BLOCK))
            self._blocks = [(sl, self._csr_rows(sl)) for sl in slices]
        return self._blocks

    def _csr_rows(self, sl):
        """The rows ``sl`` of a CSR ``X`` as a CSR tensor sharing its storage."""
        X = self.X
        crow = X.crow_indices()
        lo, hi = int(crow[sl.start]), int(crow[sl.stop])
        return torch.sparse_csr_tensor(
            crow[sl.start : sl.stop + 1] - lo,
            X.col_indices()[lo:hi],
            X.values()[lo:hi],
            size=(sl.stop - sl.start, self.shape[1]),
            check_invariants=False,
        )

    def _transposed_blocks(self):
        """``[(slice, X[slice]^T as CSR)]``: ``X^T`` cut into the column
        blocks matching :meth:`_row_blocks`, or whole when ``X`` is not
        :attr:`blocked` (built once; together about the size of ``X``)."""
        if self._t_blocks is None:
            if self.blocked:
                self._t_blocks = [
                    (sl, DataOperator(X).Xt) for sl, X in self._row_blocks()
                ]
            else:
                self._t_blocks = [(slice(0, self.shape[0]), self.Xt)]
        return self._t_blocks

    def __matmul__(self, Y):
        """``X @ Y`` for a dense ``Y`` of shape ``(n_cols, r)``."""
        if not self.blocked:
            return self.X @ Y
        Y = Y.contiguous()
        out = torch.empty((self.shape[0], Y.shape[1]), dtype=Y.dtype, device=Y.device)
        for sl, X in self._row_blocks():
            torch.mm(X, Y, out=out[sl])  # a row block of out is contiguous
        return out

    def rmatmul(self, Y):
        """``X^T @ Y`` for a dense ``Y`` of shape ``(n_rows, r)``.

        For a dense ``X`` it is computed as ``(Y^T @ X)^T``, which reads ``X``
        in its memory order (the faster GEMM layout on CPU). For a sparse one,
        as the sum of the row blocks' products (:meth:`_transposed_blocks`).
        """
        if not self.sparse:
            return (Y.mT @ self.X).mT
        out = None
        for sl, Xt in self._transposed_blocks():
            if out is None:
                out = Xt @ Y[sl]
            else:  # accumulated in place, no block-sized temporary
                torch.addmm(out, Xt, Y[sl], out=out)
        return out

    def atoms_product_t(self, H):
        """``(X H^T)^T``, the atoms' cross term of the codes' update, as a
        contiguous ``(k, n_rows)`` tensor (for a dense ``X``, ``H @ X^T``,
        whose rows the HALS sweeps read contiguously)."""
        if not self.sparse:
            return H @ self.X.mT
        if not self.blocked:
            return (self.X @ H.mT).mT.contiguous()
        out = torch.empty((H.shape[0], self.shape[0]), dtype=H.dtype, device=H.device)
        for sl, part in self.atoms_product_t_blocks(H):
            out[:, sl] = part
        return out

    @property
    def blocked(self):
        """Whether the sparse products go by row blocks (a tall CSR ``X``)."""
        return self.sparse and self.shape[0] > ROW_BLOCK

    def atoms_product_t_blocks(self, H):
        """:meth:`atoms_product_t` one row block at a time: ``(slice,
        (X[slice] H^T)^T)`` pairs, each block computed when it is reached
        (a solver that uses the blocks one by one never holds the whole
        cross term)."""
        if not self.blocked:
            yield slice(0, self.shape[0]), self.atoms_product_t(H)
            return
        Ht = H.mT.contiguous()
        for sl, X in self._row_blocks():
            yield sl, (X @ Ht).mT.contiguous()

    def codes_product(self, Wt):
        """``W^T X``, the codes' cross term of the atoms' update, as a
        contiguous ``(k, n_cols)`` tensor from the transposed codes ``Wt``."""
        if not self.sparse:
            return Wt @ self.X
        return self.rmatmul(Wt.mT).mT.contiguous()

    # -- row access -------------------------------------------------------
    def row_slices(self, width=None):
        """Row slices of about :data:`BLOCK_ELEMS` dense entries of ``width``
        columns each (default ``n_cols``): the blocks in which a dense
        ``n x width`` product is formed one block at a time."""
        n, m = self.shape
        rows = max(1, BLOCK_ELEMS // max(width or m, 1))
        return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]

    def row_blocks(self, width=None):
        """Row blocks ``(slice, X[slice])`` of a dense ``X`` (views; see
        :meth:`row_slices`). A sparse ``X`` is never cut into dense blocks."""
        if self.sparse:
            raise TypeError("row_blocks needs a dense X.")
        return [(sl, self.X[sl]) for sl in self.row_slices(width)]

    def take_rows(self, idx):
        """The operator of the rows ``idx`` (an index tensor) of ``X``."""
        if not self.sparse:
            return DataOperator(self.X[idx])
        crow, col, val = self.X.crow_indices(), self.X.col_indices(), self.X.values()
        counts = (crow[1:] - crow[:-1])[idx]
        new_crow = torch.zeros(len(idx) + 1, dtype=crow.dtype, device=crow.device)
        torch.cumsum(counts, 0, out=new_crow[1:])
        offsets = torch.arange(
            int(new_crow[-1]), device=crow.device
        ) - torch.repeat_interleave(new_crow[:-1], counts)
        pos = torch.repeat_interleave(crow[:-1][idx], counts) + offsets
        return DataOperator(
            torch.sparse_csr_tensor(
                new_crow,
                col[pos],
                val[pos],
                size=(len(idx), self.shape[1]),
                check_invariants=False,
            )
        )

    def mean_entries(self):
        """Mean non-zero entries per row and per column of ``X``, floats.

        The stored entries of a sparse ``X`` (no host sync); the non-zeros of
        a dense one (one pass and one sync), so that solvers sized by these
        numbers do the same work on the same data in either container.
        """
        n, m = self.shape
        if self.sparse:
            nnz = self.X.values().numel()
        else:
            nnz = int(torch.count_nonzero(self.X))
        return nnz / max(n, 1), nnz / max(m, 1)

    # -- reductions -------------------------------------------------------
    def row_indices(self):
        """The row of every stored entry of a CSR ``X`` (in its value order)."""
        crow = self.X.crow_indices()
        rows = torch.arange(self.shape[0], dtype=crow.dtype, device=crow.device)
        # The output size is known on the host: no read-back from the device.
        return torch.repeat_interleave(
            rows, crow[1:] - crow[:-1], output_size=self.X.values().numel()
        )

    def row_sums(self, values, dtype):
        """Sum per row of ``values`` given at the stored entries of a CSR
        ``X`` (in ``X``'s value order), accumulated in ``dtype``."""
        out = torch.zeros(self.shape[0], dtype=dtype, device=values.device)
        return out.index_add_(0, self.row_indices(), values.to(dtype))

    def row_sq_norms(self):
        """Squared L2 norm of every row, in float64."""
        if not self.sparse:
            return torch.linalg.vecdot(self.X, self.X).to(torch.float64)
        return self.row_sums(self.X.values().to(torch.float64) ** 2, torch.float64)

    def half_sq_norm(self):
        """``0.5 ||X||_F^2`` as a 0-d float64 tensor."""
        return 0.5 * self.row_sq_norms().sum()

    def row_means(self):
        """Mean of every row, in ``X``'s dtype."""
        if not self.sparse:
            return self.X.sum(1) / self.shape[1]
        return self.row_sums(self.X.values(), self.X.dtype) / self.shape[1]

    def mean(self):
        """Mean of all entries (zeros included), a 0-d tensor in ``X``'s dtype."""
        if not self.sparse:
            return self.X.mean()
        return self.X.values().sum() / (self.shape[0] * self.shape[1])


def as_operator(X):
    """``X`` as a :class:`DataOperator`; an operator is returned as it is,
    so that the callers share what it builds once (``X^T``, row blocks)."""
    return X if isinstance(X, DataOperator) else DataOperator(X)


def gram_half_sq_error(half_sq_X, P, V, Q, VVt=None):
    """``0.5 ||X - U V||_F^2`` (float64) from Gram matrices: no ``n x m``
    product.

    Parameters
    ----------
    half_sq_X : Tensor
        ``0.5 ||X||_F^2`` (float64).
    P : Tensor of shape (k, m)
        ``U^T X``.
    V : Tensor of shape (k, m)
    Q : Tensor of shape (k, k)
        ``U^T U``.
    VVt : Tensor of shape (k, k) or None, default=None
        ``V V^T``, if already at hand.
    """
    VVt = V @ V.mT if VVt is None else VVt
    # The dot products in float64: their sums are what cancels.
    cross = torch.linalg.vecdot(P.flatten().double(), V.flatten().double())
    quad = torch.linalg.vecdot(Q.flatten().double(), VVt.flatten().double())
    return half_sq_X - cross + 0.5 * quad
