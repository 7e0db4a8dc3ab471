"""Small helpers shared by the package (compatibility patches for the pinned stack, ...)."""
from .compat import apply_compat_patches

__all__ = ["apply_compat_patches"]
