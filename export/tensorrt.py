"""ONNX → TensorRT 10 plan, for any graph: explicit optimisation profiles, fp16, timing cache.

    build_plan("decoder.onnx", "decoder.plan",
               profiles=[{"point_coords": ((1, 1, 2), (1, 5, 2), (1, 64, 2)),
                          "point_labels": ((1, 1), (1, 5), (1, 64))}],
               fp16=True, timing_cache="trt/timing.cache")

A plan is specific to the GPU, TensorRT version and (mostly) CUDA version it was built
with; build on the device that runs it (a Jetson builds its own). The timing cache makes
rebuilds of the same layers take seconds instead of minutes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

Shape = tuple[int, ...]
#: One optimisation profile: input name → (min, opt, max) shapes.
Profile = Mapping[str, tuple[Shape, Shape, Shape]]


@dataclass(frozen=True)
class PlanConfig:
    """How to build a plan."""

    fp16: bool = field(default=False, metadata={"help": "let TensorRT pick fp16 kernels where faster"})
    workspace_gib: float = field(default=4.0, metadata={"help": "builder scratch memory limit (GiB)"})
    optimization_level: int = field(
        default=3, metadata={"help": "builder optimisation level 0..5 (3 = TensorRT's default)"}
    )
    strongly_typed: bool = field(
        default=False,
        metadata={"help": "keep the ONNX graph's own dtypes (for fp16-exported graphs); excludes fp16=True"},
    )

    def __post_init__(self) -> None:
        if self.workspace_gib <= 0:
            raise ValueError(f"workspace_gib must be > 0, got {self.workspace_gib}")
        if not 0 <= self.optimization_level <= 5:
            raise ValueError(f"optimization_level must be in 0..5, got {self.optimization_level}")
        if self.strongly_typed and self.fp16:
            raise ValueError("strongly_typed networks take their precision from the graph: drop fp16=True")


def import_tensorrt() -> Any:
    """`tensorrt`, or an ImportError that says how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError(
            "building TensorRT plans needs TensorRT 10: pip install 'segzero-edge[trt]' on a machine with an "
            "NVIDIA GPU (on Jetson, use the JetPack python3-libnvinfer package)"
        ) from exc
    major = int(trt.__version__.split(".")[0])
    if major < 10:
        raise ImportError(f"TensorRT {trt.__version__} is installed; segzero-edge needs TensorRT >= 10")
    return trt


def _check_profile(network: Any, profile: Profile) -> None:
    inputs = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    for name, shapes in profile.items():
        if name not in inputs:
            raise ValueError(
                f"profile names input {name!r}, which the graph lacks (inputs: {sorted(inputs)})"
            )
        if len(shapes) != 3:
            raise ValueError(f"profile for {name!r} must be (min, opt, max) shapes, got {shapes!r}")
        lo, opt, hi = (tuple(int(d) for d in s) for s in shapes)
        rank = len(inputs[name])
        if not len(lo) == len(opt) == len(hi) == rank:
            raise ValueError(
                f"profile shapes for {name!r} must have rank {rank} (graph shape {inputs[name]}), got {shapes!r}"
            )
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
            raise ValueError(f"profile for {name!r} needs min <= opt <= max per dimension, got {shapes!r}")
        for dim, (graph_dim, a, c) in enumerate(zip(inputs[name], lo, hi, strict=True)):
            if graph_dim >= 0 and not a == c == graph_dim:
                raise ValueError(
                    f"{name!r} dim {dim} is static ({graph_dim}) in the graph; the profile gives {a}..{c}"
                )
    dynamic = [n for n, s in inputs.items() if any(d < 0 for d in s) and n not in profile]
    if dynamic:
        raise ValueError(
            f"inputs {dynamic} have dynamic dimensions but no profile: add (min, opt, max) shapes"
        )


def build_plan(
    onnx_path: str | Path,
    plan_path: str | Path,
    *,
    profiles: Sequence[Profile] = (),
    config: PlanConfig | None = None,
    timing_cache: str | Path | None = None,
    fp16: bool | None = None,
) -> Path:
    """Build a serialized TensorRT engine from an ONNX graph (external data is read from beside it).

    profiles: one dict per optimisation profile, input name → (min, opt, max) shapes; every
    input with a dynamic dimension must appear. timing_cache: a file read when present and
    written back after the build. fp16 overrides `config.fp16`.
    """
    trt = import_tensorrt()
    config = config or PlanConfig()
    if fp16 is not None:
        config = replace(config, fp16=fp16)
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX graph not found: {onnx_path}")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if config.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves external data relative to the file
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_gib * (1 << 30)))
    builder_config.builder_optimization_level = config.optimization_level
    if config.fp16:
        builder_config.set_flag(trt.BuilderFlag.FP16)
    for profile in profiles:
        _check_profile(network, profile)
        trt_profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            trt_profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
        builder_config.add_optimization_profile(trt_profile)
    if not profiles:
        _check_profile(network, {})

    cache_path = Path(timing_cache) if timing_cache is not None else None
    if cache_path is not None:
        blob = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = builder_config.create_timing_cache(blob)
        builder_config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build {onnx_path} (see the TensorRT log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan_path.with_name(plan_path.name + ".tmp")
    tmp.write_bytes(memoryview(serialized))
    tmp.replace(plan_path)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(memoryview(builder_config.get_timing_cache().serialize()))
    return plan_path


def tensorrt_version() -> str:
    """The installed TensorRT version (for the manifest: a plan only runs on the version that built it)."""
    return str(import_tensorrt().__version__)
