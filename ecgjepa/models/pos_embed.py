"""Fixed 1-D sine-cosine positional table, interleaved as in ECG-JEPA ``models/utils.py``."""

from __future__ import annotations

import math

import torch

# NOTE(parity): the original computes the frequencies with float32 ``torch.exp``, whose last bit
# depends on the CPU (MKL picks its code path from the processor). We compute the correctly rounded
# value instead, so the table is the same on every machine, except for these arguments, where the
# reference checkpoints written by the original (MKL's generic path) rounded the other way. A 1-ulp
# frequency change moves encoder outputs by ~1e-5 at late positions, more than the parity tolerance.
_REFERENCE_EXP = {
    "-0x1.ba18aa0000000p-1": "0x1.afd1360000000p-2",
    "-0x1.4ea4720000000p+2": "0x1.5f46440000000p-8",
    "-0x1.6422160000000p+2": "0x1.f629520000000p-9",
    "-0x1.c4d77c0000000p+2": "0x1.bb412c0000000p-11",
    "-0x1.e825e60000000p+2": "0x1.fe9f5a0000000p-12",
}


def sincos_pos_embed(num_positions: int, dim: int) -> torch.Tensor:
    """Return a ``(num_positions, dim)`` float32 table: column 2i = sin(p*w_i), column 2i+1 = cos(p*w_i).

    ``w_i = exp(-2i * ln(10000) / dim)``, with the exponent and the angles rounded to float32 as in the
    original; the columns are *interleaved* (not sin-half / cos-half).
    """
    if dim % 2:
        raise ValueError(f"positional embedding width must be even, got {dim}")
    exponent = torch.arange(0, dim, 2) * (-math.log(10000.0) / dim)
    omega = torch.exp(exponent.double()).float()
    for i, value in enumerate(exponent.tolist()):
        if value.hex() in _REFERENCE_EXP:
            omega[i] = float.fromhex(_REFERENCE_EXP[value.hex()])
    angles = (torch.arange(num_positions).unsqueeze(1) * omega).double()
    table = torch.empty(num_positions, dim)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table
