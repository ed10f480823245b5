"""Sums across ranks. :func:`ordered_sum` adds every group's row in group order, element by
element, so the float32 result is the same bits for any number of ranks (and for no MPI at
all); :func:`allreduce_sum` is MPI's own ``Allreduce``, faster, but its summation order
depends on the rank count and the MPI library.

``comm`` is an mpi4py communicator, or None for one process without MPI.
"""
from __future__ import annotations

import numpy as np


def sum_rows(rows: np.ndarray) -> np.ndarray:
    """rows (K, L) -> (L,): ((row0 + row1) + row2) + ..., one float32 addition per element
    and row, in row order.

    >>> sum_rows(np.array([[1, 2], [3, 4], [5, 6]], np.float32)).tolist()
    [9.0, 12.0]
    """
    total = np.zeros(rows.shape[1], np.float32)
    if len(rows):
        total[...] = rows[0]
    for row in rows[1:]:
        total += row
    return total


def ordered_sum(comm, rows: np.ndarray, counts: list[int]) -> np.ndarray:
    """The sum in global row order of every rank's ``rows`` (K_r, L) float32, where rank r
    holds ``counts[r]`` rows and rank order is row order; the same (L,) on every rank.

    A reduce-scatter then an all-gather: rank j receives slice j of every row (of L/N
    elements), adds them with :func:`sum_rows`, and the sums are gathered. Each rank sends
    and receives about (K/N + 1) L floats, against (K - 1) L for gathering whole rows, and
    every element still sees the same additions in the same order for any N."""
    if comm is None:
        return sum_rows(rows)
    from mpi4py import MPI

    size, rank = comm.Get_size(), comm.Get_rank()
    length = rows.shape[1]
    cuts = [length * j // size for j in range(size + 1)]
    lens = [cuts[j + 1] - cuts[j] for j in range(size)]
    send_counts = [len(rows) * n for n in lens]
    send = np.empty(sum(send_counts), np.float32)
    for j, offset in enumerate(_offsets(send_counts)):  # slice j of every row, for rank j
        send[offset:offset + send_counts[j]].reshape(len(rows), lens[j])[...] = \
            rows[:, cuts[j]:cuts[j + 1]]
    recv_counts = [c * lens[rank] for c in counts]
    recv = np.empty(sum(recv_counts), np.float32)
    comm.Alltoallv([send, (send_counts, _offsets(send_counts)), MPI.FLOAT],
                   [recv, (recv_counts, _offsets(recv_counts)), MPI.FLOAT])
    part = sum_rows(recv.reshape(sum(counts), lens[rank]))
    total = np.empty(length, np.float32)
    comm.Allgatherv([part, MPI.FLOAT], [total, (lens, cuts[:-1]), MPI.FLOAT])
    return total


def allreduce_sum(comm, rows: np.ndarray) -> np.ndarray:
    """This rank's rows (K, L) summed, then MPI ``Allreduce``'d: (L,) on every rank."""
    part = sum_rows(rows)
    if comm is None:
        return part
    from mpi4py import MPI

    total = np.empty_like(part)
    comm.Allreduce([part, MPI.FLOAT], [total, MPI.FLOAT], op=MPI.SUM)
    return total


def allgather_rows(comm, rows: np.ndarray) -> np.ndarray:
    """Every rank's ``rows`` (K_r, ...) concatenated in rank order, on every rank; the
    trailing shape and dtype must agree (a rank with K_r = 0 may pass any trailing shape)."""
    if comm is None:
        return rows
    sizes = comm.allgather((len(rows), rows.shape[1:], rows.dtype.str))
    shape, dtype = next(((s, np.dtype(d)) for k, s, d in sizes if k), (rows.shape[1:],
                                                                        rows.dtype))
    width = int(np.prod(shape, dtype=np.int64))
    counts = [k * width for k, _, _ in sizes]
    send = np.ascontiguousarray(rows, dtype=dtype).reshape(-1) if len(rows) else \
        np.zeros(0, dtype)
    out = np.empty(sum(counts), dtype)
    comm.Allgatherv(send, [out, (counts, _offsets(counts))])
    return out.reshape((-1,) + tuple(shape))


def _offsets(counts: list[int]) -> list[int]:
    return [int(x) for x in np.concatenate([[0], np.cumsum(counts)[:-1]])] if counts else []
