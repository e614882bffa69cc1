"""The TV prior: as a smoothing step (a batched proximal total-variation operator, and the
mapping of the paper's `denoise_tv_bregman` weights to its strength), and as a penalty
(`total_variation`, differentiable, for the loops that subtract it from the objective)."""

from __future__ import annotations

import math

import torch


def bregman_strength(weight: float, pixel_scale: float = 255.0) -> float:
    """`tv_denoise` strength for skimage's `denoise_tv_bregman(image, weight)` weight.

    skimage states its objective as TV(u) + weight/2·‖u − f‖² (`weight` weighs fidelity, so a
    smaller weight smooths more), and the paper calls it on pixels in [0, pixel_scale]. Writing
    u = s·v for images v in [0, 1] (s = pixel_scale) turns that objective into
    s²·weight·(½‖v − g‖² + TV(v) / (weight·s)): the minimizer of `tv_denoise` with
    strength = 1 / (weight·s), so the paper's TV-weight schedules can be used unchanged.

    Measured against skimage 0.26 (tests/test_regularizers.py): at weights >= 0.4 the two agree
    to ~0.02-0.2 grey levels away from the border (skimage holds a frame of input pixels fixed,
    we use a Neumann boundary). Below that they drift apart because skimage's isotropic
    shrinkage, d = λs·t/(λs + 1) with λ = 2·weight, is not the exact TV shrinkage: it penalizes
    gradients smaller than ~1/(2·weight) grey levels less than TV does, so skimage smooths less
    than its objective says (mean difference ~2 grey levels at weight 0.1, ~7 at 0.01; at 0.01
    a ~0.4x strength fits it best, at 0.001 under 0.25x).
    """
    if weight <= 0 or pixel_scale <= 0:
        raise ValueError(f"weight and pixel_scale must be positive, got {weight}, {pixel_scale}")
    return 1.0 / (weight * pixel_scale)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """[B] L2 total variation of images [B, C, H, W]: per channel, the root sum of squares of the
    differences between neighbours along x, along y and along both diagonals, the four summed
    and averaged over channels (Ghiasi et al. 2022's TV regularizer, per image).

    Not squared, so a smooth image's TV hardly depends on its resolution (differences shrink as
    1/side while their number grows as side²); pixel noise costs more the larger the image.
    """
    differences = (
        images[..., :, 1:] - images[..., :, :-1],
        images[..., 1:, :] - images[..., :-1, :],
        images[..., 1:, 1:] - images[..., :-1, :-1],
        images[..., 1:, :-1] - images[..., :-1, 1:],
    )
    return sum(torch.linalg.vector_norm(d.flatten(2), dim=2) for d in differences).mean(1)


def _gradient_into(u: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> None:
    """Forward differences along x and y, zero across the last column/row (Neumann boundary)."""
    torch.sub(u[..., :, 1:], u[..., :, :-1], out=dx[..., :, :-1])
    dx[..., :, -1] = 0
    torch.sub(u[..., 1:, :], u[..., :-1, :], out=dy[..., :-1, :])
    dy[..., -1, :] = 0


def _divergence_into(px: torch.Tensor, py: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The negative adjoint of `_gradient_into` (px, py are zero on the last column/row)."""
    torch.add(px, py, out=out)
    out[..., :, 1:] -= px[..., :, :-1]
    out[..., 1:, :] -= py[..., :-1, :]
    return out


def _per_image(strength: torch.Tensor | float, f: torch.Tensor) -> torch.Tensor:
    """The strength as [B, 1, 1, 1] on the images' device. A number is checked on the host, so
    the synthesis loops (which pass one each step) never wait for the device here."""
    if isinstance(strength, (int, float)):
        if strength < 0:
            raise ValueError("strength must be >= 0")
    elif (strength < 0).any():
        raise ValueError("strength must be >= 0")
    lam = torch.as_tensor(strength, dtype=f.dtype, device=f.device).reshape(-1)
    if lam.numel() not in (1, len(f)):
        raise ValueError(f"strength must be a scalar or have one value per image ({len(f)})")
    return lam.expand(len(f)).reshape(-1, 1, 1, 1)


def _projected_dual_step(f, lam, step, q, n, u, norm) -> None:
    """n = the projection onto the unit disc of q + step·∇(f + lam·div q), per pixel (in place;
    `u` and `norm` are scratch buffers)."""
    (qx, qy), (nx, ny) = q, n
    torch.addcmul(f, lam, _divergence_into(qx, qy, u), out=u)
    _gradient_into(u, nx, ny)
    torch.addcmul(qx, step, nx, out=nx)
    torch.addcmul(qy, step, ny, out=ny)
    torch.hypot(nx, ny, out=norm).clamp_min_(1.0)
    nx.div_(norm)
    ny.div_(norm)


def _freeze_settled(lam, p, n, active, tolerance: float, scratch) -> torch.Tensor:
    """Which images still move by at least `tolerance` (RMS of the result's change); frozen
    images get their previous dual back in `n`, so their result no longer changes."""
    (px, py), (nx, ny) = p, n
    change = lam * _divergence_into(nx - px, ny - py, scratch)
    moved = change.square().mean(dim=(1, 2, 3), keepdim=True).sqrt() >= tolerance
    torch.where(active, nx, px, out=nx)
    torch.where(active, ny, py, out=ny)
    return moved


@torch.no_grad()
def tv_denoise(
    images: torch.Tensor,
    strength: torch.Tensor | float,
    iterations: int = 50,
    tolerance: float | None = None,
) -> torch.Tensor:
    """Proximal operator of total variation: argmin_u ½‖u − f‖² + strength·TV(u), per image.

    `images` is [B, C, H, W]; `strength` a scalar or one value per image ([B]). TV is isotropic
    in space and taken per channel (channels are denoised independently, as skimage's
    `denoise_tv_bregman` and `denoise_tv_chambolle` do for colour images), with forward
    differences and a Neumann boundary.

    Solved on the dual with the fast gradient projection of Beck & Teboulle (2009; FISTA on
    Chambolle's 2004 dual), O(1/k²), all images at once on their device. The whole batch runs
    `iterations` steps; with a `tolerance`, an image stops once one step changes it by less than
    that (root mean square, in pixel units) and is then frozen, so each image's result is the same
    whatever its batch-mates. Deterministic; returns a new tensor of the input's dtype.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    f = images.to(torch.promote_types(images.dtype, torch.float32))
    lam = _per_image(strength, f)
    dtype = f.dtype
    # Step 1/L with L = 8·lam² (‖∇‖² <= 8); the dual is rescaled by lam so the step is 1/(8·lam).
    # Strength 0 gets step 0: its dual stays 0 and it returns the input unchanged.
    step = torch.where(lam > 0, 1.0 / (8.0 * lam.clamp_min(torch.finfo(dtype).tiny)), 0.0)

    # Preallocated buffers: the loop is memory-bound, so it avoids temporaries where it can.
    px, py = torch.zeros_like(f), torch.zeros_like(f)  # the dual iterate
    qx, qy = torch.zeros_like(f), torch.zeros_like(f)  # FISTA's extrapolated point
    nx, ny = torch.empty_like(f), torch.empty_like(f)  # the next dual iterate
    u, norm = torch.empty_like(f), torch.empty_like(f)
    t = 1.0
    active = torch.ones(len(f), 1, 1, 1, dtype=torch.bool, device=f.device)
    for _ in range(iterations):
        _projected_dual_step(f, lam, step, (qx, qy), (nx, ny), u, norm)
        if tolerance is not None:
            active &= _freeze_settled(lam, (px, py), (nx, ny), active, tolerance, norm)
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        # q = n + (t − 1)/t_next·(n − p), i.e. lerp from p to n by 1 + (t − 1)/t_next.
        weight = 1.0 + (t - 1.0) / t_next
        torch.lerp(px, nx, weight, out=qx)
        torch.lerp(py, ny, weight, out=qy)
        if tolerance is not None:
            torch.where(active, qx, nx, out=qx)
            torch.where(active, qy, ny, out=qy)
        px, nx = nx, px
        py, ny = ny, py
        t = t_next
        # One host sync per step only when a tolerance asks for early stopping.
        if tolerance is not None and not bool(active.any()):
            break
    return torch.addcmul(f, lam, _divergence_into(px, py, u)).to(images.dtype)
