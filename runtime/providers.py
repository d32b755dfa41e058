"""Provider names ("cpu" | "cuda" | "tensorrt") → ONNX Runtime sessions: the one list of
providers and the one session factory every runtime graph goes through.

ONNX Runtime silently falls back to the CPU when a GPU provider fails to load; this module
refuses that: a session that did not get the provider asked for is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

#: Whether idle intra-op threads spin (busy-wait for work) instead of sleeping: the one spin
#: setting of `ReasoningSegmenter.from_dir(spin=)`, `--spin`, every runtime graph and
#: `create_session`. "off": threads sleep when idle; "on": they spin between ops and between
#: runs; "run": they spin between ops inside a run and stop the moment it returns
#: (`session.force_spinning_stop`). README "Thread spinning" has the measurements.
SpinPolicy = Literal["off", "on", "run"]
SPIN_POLICIES: tuple[str, ...] = get_args(SpinPolicy)
#: Measured best under load (a spinning worker that loses its core stalls every op); on a
#: dedicated machine "run" or "on" decode faster (README "Thread spinning").
DEFAULT_SPIN: SpinPolicy = "off"

#: The providers a user can ask for (`ReasoningSegmenter.from_dir(provider=...)`, `--provider`).
Provider = Literal["cpu", "cuda", "tensorrt"]
PROVIDERS: tuple[str, ...] = get_args(Provider)
_EXECUTION_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    # TensorRT takes the subgraphs it supports; CUDA then CPU run the rest.
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
_INSTALL_HINT = {
    "cpu": "pip install 'segzero-edge[cpu]'",
    "cuda": "pip install 'segzero-edge[gpu]' (onnxruntime-gpu, with CUDA and cuDNN libraries matching it)",
    "tensorrt": "pip install 'segzero-edge[gpu,trt]' (onnxruntime-gpu built with TensorRT, plus TensorRT libraries)",
}


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "the ONNX runtime back end needs onnxruntime: pip install 'segzero-edge[cpu]'"
        ) from exc
    return onnxruntime


def load_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "these (verified) files do not make a working graph": ours
    (ValueError for I/O names and dims, OSError) and onnxruntime's own, which derive from
    Exception only (InvalidProtobuf, InvalidGraph, ...). A missing provider is not among
    them: `check_provider` reports that before anything loads."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph", "NotImplemented")
    return (ValueError, TypeError, KeyError, OSError, *(getattr(state, n) for n in names if hasattr(state, n)))


def check_provider(provider: str) -> None:
    """ValueError for an unknown name; RuntimeError when the installed onnxruntime lacks it."""
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {PROVIDERS}, got {provider!r}")
    ort = _ort()
    available = ort.get_available_providers()
    needed = _EXECUTION_PROVIDERS[provider][0]
    if needed not in available:
        raise RuntimeError(
            f"provider {provider!r} needs {needed}, which onnxruntime {ort.__version__} here lacks "
            f"(it has {', '.join(available)}): {_INSTALL_HINT[provider]}"
        )


def execution_providers(
    provider: str,
    *,
    device_id: int = 0,
    trt_fp16: bool = False,
    trt_cache_dir: str | Path | None = None,
) -> list[str | tuple[str, dict[str, Any]]]:
    """The `providers=` list for `onnxruntime.InferenceSession` (checked against the install).

    trt_fp16 lets TensorRT build fp16 kernels; trt_cache_dir keeps built engines and the
    timing cache between runs (building takes minutes).
    """
    check_provider(provider)
    out: list[str | tuple[str, dict[str, Any]]] = []
    for name in _EXECUTION_PROVIDERS[provider]:
        if name == "CUDAExecutionProvider":
            out.append((name, {"device_id": device_id}))
        elif name == "TensorrtExecutionProvider":
            options: dict[str, Any] = {"device_id": device_id, "trt_fp16_enable": trt_fp16}
            if trt_cache_dir is not None:
                cache = str(Path(trt_cache_dir))
                Path(cache).mkdir(parents=True, exist_ok=True)
                options.update(
                    trt_engine_cache_enable=True,
                    trt_engine_cache_path=cache,
                    trt_timing_cache_enable=True,
                    trt_timing_cache_path=cache,
                )
            out.append((name, options))
        else:
            out.append(name)
    return out


def check_spin(spin: object) -> SpinPolicy:
    """`spin` if it is a `SpinPolicy`; else ValueError naming the allowed values."""
    if isinstance(spin, str) and spin in SPIN_POLICIES:
        return spin  # type: ignore[return-value]
    hint = f" (use {'on' if spin else 'off'!r})" if isinstance(spin, bool) else ""
    raise ValueError(f"spin must be one of {SPIN_POLICIES}, got {spin!r}{hint}")


def session_options(*, threads: int | None = None, optimization: str = "all", spin: SpinPolicy | None = None) -> Any:
    """SessionOptions: intra-op `threads` (None: onnxruntime's default, one per core), the
    graph optimization level ("disable" | "basic" | "extended" | "all") and whether idle
    intra-op threads spin (`SpinPolicy`; None: onnxruntime's default, which spins).

    A reasoner decode step runs a few hundred short ops: spinning workers that lose their core
    to another process stall every op, so the runtime's default is "off" (`DEFAULT_SPIN`); on a
    dedicated machine spinning saves a few µs per op (README "Thread spinning").
    """
    ort = _ort()
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {tuple(levels)}, got {optimization!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    options.log_severity_level = 3  # errors only: shape-inference chatter is not for users
    if threads is not None:
        options.intra_op_num_threads = threads
    if spin is not None:
        spin = check_spin(spin)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if spin == "off" else "1")
    if spin == "run":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def create_session(
    path: str | Path,
    provider: str = "cpu",
    *,
    threads: int | None = None,
    optimization: str = "all",
    spin: SpinPolicy | None = None,
    **provider_options: Any,
) -> Any:
    """An `InferenceSession` for `path` on `provider`; raises if it would not run there.

    threads, optimization, spin: `session_options`. provider_options: `execution_providers`
    (device_id, trt_fp16, trt_cache_dir).
    """
    ort = _ort()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX graph not found: {path}")
    providers = execution_providers(provider, **provider_options)
    session = ort.InferenceSession(
        str(path),
        sess_options=session_options(threads=threads, optimization=optimization, spin=spin),
        providers=providers,
    )
    wanted = _EXECUTION_PROVIDERS[provider][0]
    if session.get_providers()[0] != wanted:
        raise RuntimeError(
            f"{path.name}: onnxruntime fell back to {session.get_providers()} instead of {wanted} "
            f"(a missing CUDA/cuDNN/TensorRT library?); fix the install or use provider='cpu'"
        )
    return session


def check_io(session: Any, inputs: tuple[str, ...], outputs: tuple[str, ...], what: str) -> None:
    """Refuse a graph whose input/output names differ from the contract the runtime expects."""
    got_in = tuple(i.name for i in session.get_inputs())
    got_out = tuple(o.name for o in session.get_outputs())
    if set(got_in) != set(inputs) or tuple(got_out) != tuple(outputs):
        raise ValueError(
            f"{what} has inputs {got_in} and outputs {got_out}; expected {inputs} and {outputs}: "
            "re-export it with this version of segzero-edge"
        )
