"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for FG-CLIP 2 pretraining, as an MMEngine strategy.

Why not MMEngine's own ``FSDPStrategy`` (mmengine/_strategy/fsdp.py): it wraps the model in FSDP1,
which refuses to run without an accelerator. FSDP2 shards every parameter as a ``DTensor`` on a
device mesh and runs on CPU with gloo as well as on GPUs with NCCL, so the sharded path is the same
code everywhere (https://pytorch.org/docs/stable/distributed.fsdp.fully_shard.html).

What is sharded (:func:`shard_fgclip2`): each encoder block of the vision and the text tower is its
own FSDP2 unit (all-gathered just before it runs, freed after), and the root unit holds the rest
(embeddings, heads, logit scale/bias). ``fully_shard`` cannot shard 0-dim parameters (it splits dim
0), so the pretrainer's scalar temperatures stay replicated plain tensors; their gradients are
averaged over ranks before every optimizer step (:func:`sync_replicated_grads`, done by
:class:`FSDP2OptimWrapper`), which is exactly what DDP does for them.

Checkpoints (:class:`FSDP2Strategy`): full, unsharded state dicts gathered with
``torch.distributed.checkpoint.state_dict`` on every rank and written by rank 0, with the keys of the
unsharded model (buffers and ``_extra_state`` included), so ``tools/export_checkpoint.py`` reads them
unchanged and the weights load at any number of ranks.
"""
from __future__ import annotations

import copy
import re
import time
from typing import Callable, Iterable

import mmengine
import torch
import torch.distributed as dist
from mmengine._strategy import DDPStrategy
from mmengine.device import get_device
from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from mmengine.optim import BaseOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, STRATEGIES
from mmengine.utils import get_git_hash
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

MIXED_PRECISION = ("auto", "bf16", None)
TOWERS = ("vision_model", "text_model")
FULL_CPU = StateDictOptions(full_state_dict=True, cpu_offload=True)


# ------------------------------------------------------------------------------------ sharding
def resolve_mixed_precision(mixed_precision: str | None) -> MixedPrecisionPolicy | None:
    """'bf16': bf16 parameters and activations, fp32 gradient reduction (the official bf16 recipe
    without autocast); 'auto': that on CUDA, full fp32 elsewhere (bf16 matmuls on CPU are slow and
    inexact); None: full fp32."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"FSDP2Strategy: mixed_precision must be one of {MIXED_PRECISION}, "
                         f"got {mixed_precision!r}")
    if mixed_precision == "auto":
        mixed_precision = "bf16" if torch.cuda.is_available() else None
    if mixed_precision is None:
        return None
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)


def encoder_blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of both towers of ``model.fgclip``, the units worth sharding one by
    one (each holds a large, contiguous share of the weights and runs as one step)."""
    fgclip = getattr(model, "fgclip", None)
    if fgclip is None:
        raise TypeError(f"shard_fgclip2 expects a model holding FG-CLIP 2 at '.fgclip' "
                        f"(e.g. FGCLIP2Pretrainer), got {type(model).__name__}")
    blocks: list[nn.Module] = []
    for tower in TOWERS:
        layers = getattr(getattr(getattr(fgclip, tower, None), "encoder", None), "layers", None)
        if layers is None:
            raise TypeError(f"shard_fgclip2: {type(model).__name__}.fgclip.{tower}.encoder.layers not found")
        blocks.extend(layers)
    return blocks


def scalar_params(model: nn.Module) -> set[nn.Parameter]:
    """0-dim parameters: ``fully_shard`` rejects them, so they stay replicated (see module doc)."""
    return {p for p in model.parameters() if p.dim() == 0}


def shard_fgclip2(model: nn.Module, mp_policy: MixedPrecisionPolicy | None = None,
                  reshard_after_forward: bool = True) -> nn.Module:
    """``fully_shard`` every encoder block of both towers, then the root ``model``; returns ``model``
    (now also an ``FSDPModule``). Needs an initialised process group.

    ``reshard_after_forward=True`` frees each block's gathered weights after its forward (ZeRO-3
    memory, one more all-gather in backward); False keeps them until backward (ZeRO-2-like)."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("shard_fgclip2 needs torch.distributed initialised (e.g. launch with "
                           "tools/dist_train.sh CONFIG NPROC)")
    if isinstance(model, FSDPModule):
        raise ValueError(f"{type(model).__name__} is already sharded with fully_shard")
    kwargs = dict(mp_policy=mp_policy or MixedPrecisionPolicy(), reshard_after_forward=reshard_after_forward)
    for block in encoder_blocks(model):
        fully_shard(block, **kwargs)
    fully_shard(model, ignored_params=scalar_params(model) or None, **kwargs)
    return model


# --------------------------------------------------------------------------- gradient handling
def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


@torch.no_grad()
def sync_replicated_grads(params: Iterable[torch.Tensor], group=None) -> None:
    """Average over ranks the gradients of trainable parameters that FSDP2 does not manage (plain
    tensors, e.g. the 0-dim temperatures): FSDP2 reduce-scatters only its ``DTensor`` gradients.
    One all-reduce; a rank without a gradient contributes zeros (DDP's rule for unused parameters);
    a parameter without a gradient on every rank keeps ``grad=None``. Call it on every rank, after
    backward and before the optimizer step."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return
    plain = [p for p in params if p.requires_grad and not isinstance(p, DTensor)]
    if not plain:
        return
    dtype = torch.float64 if any(p.dtype == torch.float64 for p in plain) else torch.float32
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(dtype)
                      for p in plain]
                     + [torch.tensor([float(p.grad is not None) for p in plain], dtype=dtype,
                                     device=plain[0].device)])
    dist.all_reduce(flat, group=group)
    flat = flat / dist.get_world_size(group)
    offset, seen = 0, flat[-len(plain):]
    for i, p in enumerate(plain):
        n = p.numel()
        if seen[i] > 0:
            p.grad = flat[offset:offset + n].reshape(p.shape).to(p.dtype)
        offset += n


@torch.no_grad()
def clip_grad_norm_(params: Iterable[torch.Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for a mix of sharded (``DTensor``) and replicated (plain)
    gradients, which PyTorch's version cannot stack together. The sharded norm is reduced over ranks
    (``full_tensor``), the replicated one is already global; the total is the norm of the two.
    Returns a plain scalar tensor (MMEngine logs ``float(grad_norm)``)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    groups = ([g for g in grads if isinstance(g, DTensor)], [g for g in grads if not isinstance(g, DTensor)])
    norms = []
    for group in groups:
        if group:
            norm = torch.nn.utils.get_total_norm(group, norm_type, False, foreach)
            norms.append(norm.full_tensor() if isinstance(norm, DTensor) else norm)
    device = norms[0].device
    total = torch.nn.utils.get_total_norm([n.to(device) for n in norms], norm_type, False, foreach)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite ({float(total)})")
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        local = _local(g)
        local.mul_(coef.to(device=local.device, dtype=local.dtype))
    return total


@torch.no_grad()
def clip_grad_value_(params: Iterable[torch.Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """``torch.nn.utils.clip_grad_value_`` on the local shards (an element-wise clamp needs no
    communication)."""
    for p in params:
        if p.grad is not None:
            _local(p.grad).clamp_(-clip_value, clip_value)


@OPTIM_WRAPPERS.register_module()
class FSDP2OptimWrapper(OptimWrapper):
    """MMEngine's ``OptimWrapper`` for a model sharded by :func:`shard_fgclip2`: before each step it
    averages the replicated gradients over ranks (:func:`sync_replicated_grads`), and gradient
    clipping (``clip_grad=dict(max_norm=...)`` or ``dict(type='value', clip_value=...)``) works on
    ``DTensor`` gradients. :class:`FSDP2Strategy` uses it in place of ``OptimWrapper``."""

    def __init__(self, optimizer, accumulative_counts: int = 1, clip_grad: dict | None = None):
        super().__init__(optimizer, accumulative_counts=accumulative_counts, clip_grad=clip_grad)
        if self.clip_grad_kwargs:
            self.clip_func = clip_grad_norm_ if self.grad_name == "grad_norm" else clip_grad_value_

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def step(self, **kwargs) -> None:
        sync_replicated_grads(self._params())
        super().step(**kwargs)


# ------------------------------------------------------------------------------------ strategy
@STRATEGIES.register_module()
class FSDP2Strategy(DDPStrategy):
    """FSDP2 for :class:`~mmengine.runner.FlexibleRunner` (``runner_type='FlexibleRunner'``,
    ``strategy=dict(type='FSDP2Strategy', ...)``); see the module docstring.

    Args:
        mixed_precision: 'auto' (bf16 params, fp32 gradient reduction on CUDA; fp32 elsewhere),
            'bf16' or None (fp32). Use it instead of the pretrainer's ``amp_dtype`` / AmpOptimWrapper.
        reshard_after_forward: see :func:`shard_fgclip2`.
        **kwargs: ``DDPStrategy``'s (``sync_bn``, ``work_dir``, ``env_kwargs``, ...). ``model_wrapper``
            is refused: the model is sharded in place, not wrapped.
    """

    def __init__(self, *, mixed_precision: str | None = "auto", reshard_after_forward: bool = True, **kwargs):
        if kwargs.get("model_wrapper") is not None:
            raise ValueError("FSDP2Strategy shards the model in place with fully_shard; model_wrapper "
                             f"({kwargs['model_wrapper']}) is not used, remove it")
        self.mixed_precision = mixed_precision
        self.mp_policy = resolve_mixed_precision(mixed_precision)  # fails before any set-up
        self.reshard_after_forward = reshard_after_forward
        super().__init__(**kwargs)

    # model and optimizer --------------------------------------------------------------------
    def _wrap_model(self, model: nn.Module) -> nn.Module:
        """Shards in place and returns the model itself: an MMEngine ``BaseModel`` keeps its
        ``train_step``, which calls ``self(...)``, so FSDP2's forward hooks run."""
        if is_model_wrapper(model):
            raise TypeError(f"FSDP2Strategy shards a plain model, got the wrapper {type(model).__name__}")
        model = self.convert_model(model).to(get_device())  # BaseModel.to moves the data preprocessor too
        return shard_fgclip2(model, self.mp_policy, self.reshard_after_forward)

    def build_optim_wrapper(self, optim_wrapper, model: nn.Module | None = None) -> BaseOptimWrapper:
        """Builds :class:`FSDP2OptimWrapper` where the config says ``OptimWrapper``; other wrappers
        (AmpOptimWrapper's loss scaling, ...) do not know about sharded gradients."""
        if isinstance(optim_wrapper, BaseOptimWrapper):
            if not isinstance(optim_wrapper, FSDP2OptimWrapper):
                raise TypeError("FSDP2Strategy needs the optim_wrapper as a config dict (or an "
                                f"FSDP2OptimWrapper), got a built {type(optim_wrapper).__name__}")
            return optim_wrapper
        if not isinstance(optim_wrapper, dict):
            raise TypeError(f"FSDP2Strategy: optim_wrapper must be a config dict, got {type(optim_wrapper).__name__}")
        cfg = copy.deepcopy(optim_wrapper)
        kind = cfg.get("type", "OptimWrapper")
        if kind in ("OptimWrapper", OptimWrapper):
            cfg["type"] = FSDP2OptimWrapper
        elif kind not in ("FSDP2OptimWrapper", FSDP2OptimWrapper):
            raise ValueError(f"FSDP2Strategy supports optim_wrapper type OptimWrapper (or FSDP2OptimWrapper), "
                             f"got {kind!r}; for mixed precision set strategy.mixed_precision instead of "
                             "AmpOptimWrapper / --amp")
        return super().build_optim_wrapper(cfg, model)

    # state dicts: collectives, every rank calls them ------------------------------------------
    def model_state_dict(self) -> dict:
        """Full, unsharded, on CPU; the gathered tensors land on rank 0 (an empty dict elsewhere)."""
        return get_model_state_dict(self.model, options=FULL_CPU)

    def optim_state_dict(self) -> dict:
        """Full optimizer state keyed by parameter name (rank 0; empty elsewhere), plus the wrapper's
        ``base_param_settings`` (the scheduled base lr it logs, as ``OptimWrapper.state_dict`` keeps)."""
        state = get_optimizer_state_dict(self.model, self.optim_wrapper.optimizer, options=FULL_CPU)
        base = getattr(self.optim_wrapper, "base_param_settings", None)
        if base is not None:
            state["base_param_settings"] = base
        return state

    def load_model_state_dict(self, state_dict: dict, *, strict: bool = False,
                              revise_keys: list = [(r"^module.", "")]) -> None:  # noqa: B006 (MMEngine's signature)
        """Every rank passes the full state dict; each keeps its shards. ``revise_keys`` are applied
        to the keys first (MMEngine's FSDPStrategy ignores them)."""
        for pattern, repl in revise_keys:
            state_dict = {re.sub(pattern, repl, k): v for k, v in state_dict.items()}
        set_model_state_dict(self.model, state_dict, options=StateDictOptions(full_state_dict=True, strict=strict))

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """``state_dict`` as written by :meth:`optim_state_dict` (keyed by parameter name).

        A parameter that never had a gradient (e.g. the dense head's unused probe) has no optimizer
        state, which PyTorch's strict loading rejects; so the names are checked here instead."""
        if any(not isinstance(k, str) for k in state_dict.get("state", {})):
            raise ValueError("FSDP2Strategy: this optimizer state is keyed by parameter index, i.e. saved by "
                             "another strategy; resume needs a checkpoint written by FSDP2Strategy (use "
                             "load_from to start from its weights only)")
        base = state_dict.pop("base_param_settings", None)
        optimizer = self.optim_wrapper.optimizer
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        params = {n: p for n, p in self.model.named_parameters() if id(p) in in_optimizer}
        saved = {n for group in state_dict.get("param_groups", []) for n in group.get("params", [])}
        missing, unexpected = sorted(set(params) - saved), sorted(saved - set(params))
        if missing or unexpected:
            raise ValueError(f"FSDP2Strategy: the checkpoint's optimizer holds other parameters than this model's "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        stateless = set(params) - set(state_dict.get("state", {}))
        set_optimizer_state_dict(self.model, optimizer, state_dict,
                                 options=StateDictOptions(full_state_dict=True, strict=False))
        for name in stateless:  # PyTorch initialised them with a zero-gradient step; the saved run had none
            optimizer.state.pop(params[name], None)
        if base is not None:
            self.optim_wrapper.base_param_settings = base

    def load_checkpoint(self, filename: str, *, map_location: str | Callable = "cpu", **kwargs) -> dict:
        """Reads the file to CPU on every rank ('default' would put a full copy on each GPU); the
        shards move to the device while loading."""
        if map_location == "default":
            map_location = "cpu"
        return super().load_checkpoint(filename, map_location=map_location, **kwargs)

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True, save_param_scheduler: bool = True,
                        extra_ckpt: dict | None = None, callback: Callable | None = None) -> None:
        """DDPStrategy's structure (``state_dict``, ``optimizer``, ``param_schedulers``, ``meta``,
        extra entries), but not ``@master_only``: gathering the state is a collective, so every rank
        builds it (and runs ``callback``) and rank 0 writes, as mmengine/_strategy/fsdp.py does."""
        from mmengine.runner.checkpoint import save_checkpoint

        checkpoint = {"state_dict": self.model_state_dict()}
        if save_optimizer and hasattr(self, "optim_wrapper"):
            checkpoint["optimizer"] = self.optim_state_dict()
        if save_param_scheduler and hasattr(self, "param_schedulers"):
            checkpoint["param_schedulers"] = self.scheduler_state_dict()
        extra_ckpt = dict(extra_ckpt or {})
        extra_ckpt.setdefault("meta", {}).update(seed=self.seed, time=time.strftime("%Y%m%d_%H%M%S", time.localtime()),
                                                 mmengine=mmengine.__version__ + get_git_hash())
        checkpoint.update(extra_ckpt)
        if callback is not None:
            callback(checkpoint)
        if is_main_process():
            save_checkpoint(checkpoint, filename)
