"""Compatibility patches for the pinned stack (torch 2.13, numpy 2.x, mmengine 0.10.7, lvis 0.5.3).

Two upstream packages predate the libraries they run on here:

* torch >= 2.6 loads checkpoints with ``weights_only=True`` by default, and mmengine 0.10.7 calls
  ``torch.load`` without the argument, so ``Runner.resume`` / ``load_from`` of mmengine's own
  checkpoints fail with ``Unsupported global: ...HistoryBuffer`` (then numpy globals, then
  ``getattr``). We allow-list exactly the globals such checkpoints contain (``getattr`` only as a
  restricted stand-in); weights-only loading stays on and still refuses anything else.
* lvis 0.5.3 (PyPI) uses ``np.float``, removed in numpy 1.24. We give the lvis modules a private
  numpy proxy that has the removed aliases; numpy itself is left untouched.

``apply_compat_patches()`` applies both. It is idempotent and cheap: it imports neither lvis nor
mmengine; their parts are applied when they are imported, before or after this call.
"""
import importlib
import importlib.abc
import importlib.util
import pickle
import sys
import types

import numpy as np
import torch

__all__ = [
    "HISTORY_BUFFER_METHODS",
    "LVIS_NUMPY_ALIASES",
    "LVIS_PATCHED_MODULES",
    "NumpyWithAliases",
    "apply_compat_patches",
    "checkpoint_safe_globals",
    "patch_lvis_module",
]

# Aliases that numpy 1.24 removed and lvis 0.5.3 still uses; each meant the builtin type.
LVIS_NUMPY_ALIASES = {"float": float, "int": int, "bool": bool, "object": object, "str": str,
                      "complex": complex}
# lvis modules that use the removed aliases. Audited for lvis 0.5.3: only ``lvis.eval`` does
# (``astype(dtype=np.float)`` in ``accumulate``); ``lvis.lvis`` and ``lvis.results`` do not import
# numpy, ``lvis.vis`` and ``lvis.colormap`` use no removed alias.
LVIS_PATCHED_MODULES = ("lvis.eval",)

_state = {"applied": False}


# ----------------------------------------------------------------------------------------------
# torch.load allow-list for mmengine checkpoints
# ----------------------------------------------------------------------------------------------
# What a runner checkpoint holds besides tensors: ``message_hub`` with ``HistoryBuffer`` s (float64
# / int64 arrays, plus the class's statistics methods, pickled as ``getattr(HistoryBuffer, "min")``)
# and ``runtime_info`` with numpy scalars (``eta``: float64).
_NUMPY_FUNCTIONS = ("_reconstruct", "scalar")  # array and scalar reconstructors
_NUMPY_DTYPES = ("float64", "int64")  # the dtypes HistoryBuffer / runtime_info produce
HISTORY_BUFFER_METHODS = ("min", "max", "current", "mean")  # HistoryBuffer's default statistics


def _numpy_checkpoint_globals():
    """numpy objects that pickled arrays, dtypes and scalars reference.

    An array pickles as ``multiarray._reconstruct(ndarray, ...)`` followed by a ``dtype`` whose
    class is the concrete ``numpy.dtypes.*DType``; a scalar as ``multiarray.scalar(dtype, bytes)``.
    The reconstructors are listed under their numpy 2 (``numpy._core``) and numpy 1
    (``numpy.core``) paths, so checkpoints written under numpy 1.x load too. No object dtype: it
    would let a checkpoint carry arbitrary pickled objects.
    """
    multiarray = importlib.import_module("numpy._core.multiarray")
    safe = []
    for name in _NUMPY_FUNCTIONS:
        func = getattr(multiarray, name)
        safe += [(func, f"numpy._core.multiarray.{name}"), (func, f"numpy.core.multiarray.{name}")]
    return safe + [np.ndarray, np.dtype] + [type(np.dtype(code)) for code in _NUMPY_DTYPES]


def _history_buffer_getattr(obj, name):
    """Stand-in for ``builtins.getattr`` while weights-only unpickling.

    ``HistoryBuffer.__getstate__`` saves the class's statistics methods, which pickle as
    ``getattr(HistoryBuffer, "min")``. The real ``getattr`` cannot be allow-listed (it reaches any
    attribute of any loaded object); this one returns only those methods and refuses the rest.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f"weights-only load refused getattr({obj!r}, {name!r}): fgclip2_det's allow-list permits "
        f"getattr only for HistoryBuffer.{{{', '.join(HISTORY_BUFFER_METHODS)}}}")


def _history_buffer_globals(history_buffer_cls):
    """The mmengine part of the allow-list: the class and the restricted ``getattr``."""
    return [history_buffer_cls, (_history_buffer_getattr, "builtins.getattr")]


def _allow_history_buffer(module):
    """Post-import patch for ``mmengine.logging.history_buffer``: allow-list its globals."""
    torch.serialization.add_safe_globals(_history_buffer_globals(module.HistoryBuffer))


def is_installed(name: str) -> bool:
    """Whether ``import name`` can find the package, without importing it (an import hook that
    refuses it, as the layer test uses, counts as not installed)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def checkpoint_safe_globals():
    """Globals an mmengine 0.10.7 runner checkpoint needs beyond torch's built-in allow-list.

    Found empirically (save a Runner checkpoint, ``torch.load`` it, add what it reports, repeat).
    mmengine is optional for the model package, so its entries are only listed when importable.
    """
    safe = _numpy_checkpoint_globals()
    if is_installed("mmengine"):
        from mmengine.logging.history_buffer import HistoryBuffer
        safe += _history_buffer_globals(HistoryBuffer)
    return safe


# ----------------------------------------------------------------------------------------------
# lvis: numpy aliases removed in numpy 1.24
# ----------------------------------------------------------------------------------------------
class NumpyWithAliases(types.ModuleType):
    """Stand-in for ``numpy`` inside lvis modules: forwards everything, adds removed aliases.

    Only the lvis modules see it, so ``numpy.float`` stays undefined for everyone else.
    """

    def __init__(self):
        super().__init__("numpy", "numpy + aliases removed in numpy 1.24 (fgclip2_det lvis shim)")
        for name, value in LVIS_NUMPY_ALIASES.items():
            setattr(self, name, value)

    def __getattr__(self, name):
        """Called only for names the proxy lacks: everything but the aliases."""
        return getattr(np, name)

    def __dir__(self):
        return sorted(set(dir(np)) | set(LVIS_NUMPY_ALIASES))


def patch_lvis_module(module):
    """Point ``module.np`` at the alias proxy if it is plain numpy; return whether it did."""
    if getattr(module, "np", None) is np:
        module.np = NumpyWithAliases()
        return True
    return False


# ----------------------------------------------------------------------------------------------
# post-import patching: applied now if the module is loaded, else right after it is imported
# ----------------------------------------------------------------------------------------------
# Importing these eagerly would make ``apply_compat_patches()`` slow and pull optional
# dependencies into torch-only users: ``import lvis`` loads matplotlib and cv2 (``lvis/__init__``
# imports ``lvis.vis``), ``import mmengine`` takes ~0.2 s.
_POST_IMPORT_PATCHES = {
    **{name: patch_lvis_module for name in LVIS_PATCHED_MODULES},
    "mmengine.logging.history_buffer": _allow_history_buffer,
}


class _PatchingLoader(importlib.abc.Loader):
    """Wraps a module's real loader and runs its patch right after the module executes."""

    def __init__(self, loader, patch):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name):
        """Forward the rest (get_source, get_filename, ...) so tracebacks and inspect still work."""
        return getattr(self._loader, name)


class _PostImportPatchFinder(importlib.abc.MetaPathFinder):
    """Import hook that hands the modules in ``_POST_IMPORT_PATCHES`` a patching loader."""

    def find_spec(self, fullname, path, target=None):
        patch = _POST_IMPORT_PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


def _install_post_import_patches():
    """Patch the modules already imported and hook the ones imported later."""
    for name, patch in _POST_IMPORT_PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(finder, _PostImportPatchFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PostImportPatchFinder())


def apply_compat_patches():
    """Apply the torch.load allow-list and the lvis numpy shim; repeat calls are no-ops."""
    if _state["applied"]:
        return
    torch.serialization.add_safe_globals(_numpy_checkpoint_globals())
    _install_post_import_patches()
    _state["applied"] = True
