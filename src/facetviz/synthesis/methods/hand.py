"""`hand`: hand-designed priors (Yosinski et al. 2015): plain AM with L2 decay, a Gaussian blur
every few steps, clipping of small-norm pixels and jitter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facetviz.synthesis.methods import plain
from facetviz.synthesis.methods.base import register, setting
from facetviz.synthesis.methods.plain import Plain


@dataclass(frozen=True)
class Settings(plain.Settings):
    steps: int = setting(1000, "gradient steps", minimum=1)
    decay: float = setting(0.0001, "L2 decay towards gray per step", minimum=0, maximum=1)
    blur_every: int = setting(4, "Gaussian blur every this many steps (0: never)", minimum=0)
    blur_sigma: float = setting(1.0, "blur std in pixels", minimum=0)
    clip_percentile: float = setting(
        10.0, "pixels of smaller norm (from gray) are reset to gray", minimum=0, maximum=100
    )
    jitter: int = setting(1, "random translation in pixels before each step", minimum=0)


@register
class Hand(Plain):
    name = "hand"
    summary = (
        "L2 decay, Gaussian blur every 4 steps, clipping of small-norm pixels "
        "(Yosinski et al. 2015)"
    )
    Settings = Settings

    def priors(self) -> dict[str, Any]:
        return {
            "jitter_pixels": self.settings.jitter,
            "blur_every": self.settings.blur_every,
            "blur_sigma": self.settings.blur_sigma,
            "clip_percentile": self.settings.clip_percentile,
        }
