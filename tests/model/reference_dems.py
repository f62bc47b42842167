"""An independent re-statement of the reference DEMS-ViT forward pass, for the parity tests.

It follows the architecture as docs/architecture.md states it, in the reference release's own style, on a
reference-layout state dict (`patch_embed_4.proj.proj-1.weight`, `blocks.3.attn.qkv.weight`, `mlp1.fc3.weight`,
...): sin-cos tables added per scale in natural order, gather indices built with Python loops over regions,
per-region merges in a loop, plain softmax attention. It shares no code with `modeling_dems`, so agreement between
the two is evidence, not an echo. It is slow and only meant for small inputs.
"""

import numpy as np
import torch
import torch.nn.functional as F


def reference_sincos_2d(side: int, dim: int, device=None) -> torch.Tensor:
    """The table as the reference release builds it: float32 torch, `meshgrid` (ij order) of (first, second)
    grid indices, the first index (the row) feeding the first two D/4 blocks, `einsum` outer products. Built on
    `device`, where the images are, so that benchmarks/gpu_check.py can time this forward pass on a GPU."""
    first, second = torch.meshgrid(
        torch.arange(side, dtype=torch.float32, device=device),
        torch.arange(side, dtype=torch.float32, device=device),
        indexing="ij",
    )
    omega = torch.arange(dim // 4, dtype=torch.float32, device=device) / (dim // 4)
    omega = 1.0 / (10000.0**omega)
    out_first = torch.einsum("m,d->md", first.flatten(), omega)
    out_second = torch.einsum("m,d->md", second.flatten(), omega)
    return torch.cat([out_first.sin(), out_first.cos(), out_second.sin(), out_second.cos()], dim=1)


def float64_sincos_2d(side: int, dim: int) -> np.ndarray:
    """The same formula in float64 NumPy: what the tables approximate."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
    rows, cols = np.meshgrid(np.arange(side, dtype=np.float64), np.arange(side, dtype=np.float64), indexing="ij")
    row_angles = np.einsum("m,d->md", rows.reshape(-1), omega)
    col_angles = np.einsum("m,d->md", cols.reshape(-1), omega)
    return np.concatenate([np.sin(row_angles), np.cos(row_angles), np.sin(col_angles), np.cos(col_angles)], axis=1)


def region_gather_indices(image_size: int, patch: int) -> list[int]:
    """Positions in the concatenated per-scale sequences [scale1 | scale2 | scale4 | scale8], region after region."""
    regions_side = image_size // (8 * patch)
    offsets, index = [], 0
    for factor in (1, 2, 4, 8):
        offsets.append(index)
        index += (image_size // (patch * factor)) ** 2
    order = []
    for region_row in range(regions_side):
        for region_col in range(regions_side):
            for scale, factor in enumerate((1, 2, 4, 8)):
                n = 8 // factor
                grid = image_size // (patch * factor)
                for a in range(n):
                    for b in range(n):
                        order.append(offsets[scale] + (region_row * n + a) * grid + (region_col * n + b))
    return order


def _layer_norm(x, sd, prefix):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + ".weight"], sd[prefix + ".bias"], eps=1e-5)


def _linear(x, sd, prefix):
    return F.linear(x, sd[prefix + ".weight"], sd.get(prefix + ".bias"))


def _embed(sd, pixels, image_size, patch, dim):
    channels = pixels.shape[1]
    scales = [
        F.conv2d(pixels, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch),
        F.conv2d(pixels, sd["patch_embed_2.proj.weight"], sd["patch_embed_2.proj.bias"], stride=2 * patch),
    ]
    for factor in (4, 8):
        name = f"patch_embed_{factor}.proj"
        h = F.conv2d(pixels, sd[name + ".proj-1.weight"], stride=factor * patch // 4, groups=channels)
        h = F.conv2d(h, sd[name + ".proj-2.weight"], stride=4, groups=channels)
        scales.append(F.conv2d(h, sd[name + ".point_wise.weight"], sd[name + ".point_wise.bias"]))
    tokens = []
    for factor, grid in zip((1, 2, 4, 8), scales, strict=True):
        side = image_size // (patch * factor)
        position = reference_sincos_2d(side, dim, device=pixels.device)[None]
        tokens.append(grid.flatten(2).transpose(1, 2) + position)
    sequence = torch.cat(tokens, dim=1)[:, region_gather_indices(image_size, patch)]
    cls = sd["cls_token"].expand(pixels.shape[0], -1, -1)
    return torch.cat([cls, sequence], dim=1)


def _block(x, sd, prefix, heads):
    batch, length, dim = x.shape
    h = _layer_norm(x, sd, prefix + ".norm1")
    qkv = _linear(h, sd, prefix + ".attn.qkv").reshape(batch, length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = ((q @ k.transpose(-2, -1)) * (dim // heads) ** -0.5).softmax(dim=-1)
    h = (attn @ v).transpose(1, 2).reshape(batch, length, dim)
    x = x + _linear(h, sd, prefix + ".attn.proj")
    h = _layer_norm(x, sd, prefix + ".norm2")
    h = _linear(F.gelu(_linear(h, sd, prefix + ".mlp.fc1")), sd, prefix + ".mlp.fc2")
    return x + h


def _merge(x, sd, prefix, num_regions):
    cls, patches = x[:, :1], x[:, 1:]
    per_region = patches.shape[1] // num_regions
    merged = []
    for region in range(num_regions):
        tokens = patches[:, region * per_region : (region + 1) * per_region]
        h = _layer_norm(tokens, sd, prefix + ".norm")
        h = F.gelu(_linear(h, sd, prefix + ".fc1"))
        h = F.gelu(_linear(h, sd, prefix + ".fc2"))
        h = _linear(h, sd, prefix + ".fc3")
        weights = (h * sd[prefix + ".scale"].reshape(())).softmax(dim=1)  # over the region's tokens
        merged.append(weights.transpose(1, 2) @ tokens)
    return torch.cat([cls] + merged, dim=1)


@torch.no_grad()
def reference_logits(sd, pixels, *, image_size, patch, heads, depth, merge_layers=(6, 10)):
    """Logits of the reference model for `pixels` (B, C, S, S), from a reference-layout state dict."""
    dim = sd["cls_token"].shape[-1]
    num_regions = (image_size // (8 * patch)) ** 2
    x = _embed(sd, pixels, image_size, patch, dim)
    for i in range(depth):
        for k, layer in enumerate(merge_layers, start=1):
            if i == layer - 1:
                x = _merge(x, sd, f"mlp{k}", num_regions)
        x = _block(x, sd, f"blocks.{i}", heads)
    x = _layer_norm(x, sd, "norm")
    return _linear(x[:, 0], sd, "head")


def reference_state_dict_shapes(
    *, dim, patch, image_size, channels, depth, classes, merged, mlp_ratio=4, qkv_bias=False
):
    """Key -> shape of a reference checkpoint, per the reference's layout (used to build random test checkpoints)."""
    shapes = {"cls_token": (1, 1, dim)}
    for name, factor in (("pos_embed", 1), ("pos_embed_2", 2), ("pos_embed_4", 4), ("pos_embed_8", 8)):
        shapes[name] = (1, (image_size // (patch * factor)) ** 2, dim)
    shapes["patch_embed.proj.weight"] = (dim, channels, patch, patch)
    shapes["patch_embed.proj.bias"] = (dim,)
    shapes["patch_embed_2.proj.weight"] = (dim, channels, 2 * patch, 2 * patch)
    shapes["patch_embed_2.proj.bias"] = (dim,)
    for factor in (4, 8):
        kernel = factor * patch // 4
        shapes[f"patch_embed_{factor}.proj.proj-1.weight"] = (channels, 1, kernel, kernel)
        shapes[f"patch_embed_{factor}.proj.proj-2.weight"] = (channels, 1, 4, 4)
        shapes[f"patch_embed_{factor}.proj.point_wise.weight"] = (dim, channels, 1, 1)
        shapes[f"patch_embed_{factor}.proj.point_wise.bias"] = (dim,)
    hidden = int(dim * mlp_ratio)
    for i in range(depth):
        p = f"blocks.{i}"
        shapes.update({p + ".norm1.weight": (dim,), p + ".norm1.bias": (dim,), p + ".attn.qkv.weight": (3 * dim, dim)})
        if qkv_bias:
            shapes[p + ".attn.qkv.bias"] = (3 * dim,)
        shapes.update(
            {
                p + ".attn.proj.weight": (dim, dim),
                p + ".attn.proj.bias": (dim,),
                p + ".norm2.weight": (dim,),
                p + ".norm2.bias": (dim,),
                p + ".mlp.fc1.weight": (hidden, dim),
                p + ".mlp.fc1.bias": (hidden,),
                p + ".mlp.fc2.weight": (dim, hidden),
                p + ".mlp.fc2.bias": (dim,),
            }
        )
    shapes.update({"norm.weight": (dim,), "norm.bias": (dim,), "head.weight": (classes, dim), "head.bias": (classes,)})
    for k, count in enumerate(merged, start=1):
        shapes[f"norm_merge{k}.weight"] = (dim,)
        shapes[f"norm_merge{k}.bias"] = (dim,)
        shapes.update(
            {
                f"mlp{k}.scale": (1, 1, 1, 1),
                f"mlp{k}.norm.weight": (dim,),
                f"mlp{k}.norm.bias": (dim,),
                f"mlp{k}.fc1.weight": (2 * dim, dim),
                f"mlp{k}.fc1.bias": (2 * dim,),
                f"mlp{k}.fc2.weight": (dim // 2, 2 * dim),
                f"mlp{k}.fc2.bias": (dim // 2,),
                f"mlp{k}.fc3.weight": (count, dim // 2),
                f"mlp{k}.fc3.bias": (count,),
            }
        )
    return shapes


def random_reference_state_dict(seed: int = 0, **layout) -> dict[str, torch.Tensor]:
    """A reference-layout state dict with random but well-scaled weights, frozen tables and merge-norm aliases as
    the reference saves them."""
    generator = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in reference_state_dict_shapes(**layout).items():
        if key.startswith("pos_embed") or key.startswith("norm_merge"):
            continue
        if key.endswith("scale"):
            sd[key] = 1.0 + 0.5 * torch.rand(shape, generator=generator)
        elif key.endswith("norm.weight") or key.endswith("norm1.weight") or key.endswith("norm2.weight"):
            sd[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            sd[key] = torch.randn(shape, generator=generator) / max(fan_in, 1) ** 0.5
    dim, patch, image_size = layout["dim"], layout["patch"], layout["image_size"]
    for name, factor in (("pos_embed", 1), ("pos_embed_2", 2), ("pos_embed_4", 4), ("pos_embed_8", 8)):
        side = image_size // (patch * factor)
        sd[name] = reference_sincos_2d(side, dim)[None]
    for k in range(1, len(layout["merged"]) + 1):
        for w in ("weight", "bias"):
            sd[f"norm_merge{k}.{w}"] = sd[f"mlp{k}.norm.{w}"]
    return sd
