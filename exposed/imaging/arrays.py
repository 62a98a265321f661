"""Functions that take numpy arrays and torch tensors alike, without importing torch themselves.

Rendering a photo needs only numpy, and ``--mode amplify`` should not pay torch's second of
start-up for it (issue 18); training and denoising pass tensors to the same functions. A tensor
argument means torch is loaded already, so looking it up costs nothing.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

# One array type through a function: numpy in, numpy out; a tensor in, a tensor out.
Array = TypeVar("Array", np.ndarray, "Tensor")


def namespace(x: Any) -> ModuleType:
    """numpy for a numpy array (or anything not a tensor), torch for a torch tensor."""
    if isinstance(x, np.ndarray):
        return np
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(x, torch.Tensor) else np
