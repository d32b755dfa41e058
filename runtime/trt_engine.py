"""Run a TensorRT 10 plan from numpy, torch-free: `TrtEngine(plan).run({name: array}) -> {name: array}`.

Device memory goes through the CUDA runtime library (libcudart) via ctypes, so neither
torch, cupy, pycuda nor cuda-python is needed: TensorRT's own wheels bring libcudart, and
JetPack has it in /usr/local/cuda.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

_H2D, _D2H = 1, 2  # cudaMemcpyKind


class _CudaRuntime:
    """The few libcudart calls a plan needs."""

    def __init__(self) -> None:
        self.lib = self._load()
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p
        for name in (
            "cudaMalloc",
            "cudaFree",
            "cudaMemcpyAsync",
            "cudaStreamCreate",
            "cudaStreamSynchronize",
        ):
            getattr(self.lib, name).restype = ctypes.c_int
        self.lib.cudaMemcpyAsync.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_void_p,
        ]

    @staticmethod
    def _load() -> ctypes.CDLL:
        names = ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"]
        found = ctypes.util.find_library("cudart")
        if found:
            names.insert(0, found)
        # pip's nvidia-cuda-runtime-cu12 (a TensorRT dependency) and the usual CUDA install.
        roots = [os.path.join(p, "nvidia", "cuda_runtime", "lib") for p in sys.path] + [
            "/usr/local/cuda/lib64"
        ]
        names += sorted(f for root in roots for f in glob.glob(os.path.join(root, "libcudart.so*")))
        errors = []
        for name in names:
            try:
                return ctypes.CDLL(name)
            except OSError as exc:
                errors.append(f"{name}: {exc}")
        raise ImportError(
            "the TensorRT runtime needs the CUDA runtime library libcudart, which was not found "
            f"(tried {len(names)} names); install CUDA or `pip install nvidia-cuda-runtime-cu12`"
        )

    def check(self, code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"CUDA error {code} in {what}: {self.lib.cudaGetErrorString(code).decode()}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 1))), "cudaMalloc")
        return int(ptr.value or 0)

    def free(self, ptr: int) -> None:
        self.check(self.lib.cudaFree(ctypes.c_void_p(ptr)), "cudaFree")

    def stream(self) -> int:
        stream = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(stream)), "cudaStreamCreate")
        return int(stream.value or 0)

    def copy(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self.check(self.lib.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync")

    def sync(self, stream: int) -> None:
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")


def _import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError(
            "running TensorRT plans needs TensorRT 10: pip install 'segzero-edge[trt]' (on Jetson, JetPack's "
            "python3-libnvinfer)"
        ) from exc
    return trt


class TrtEngine:
    """One deserialized plan with its execution context, device buffers and stream."""

    def __init__(self, plan_path: str | Path) -> None:
        trt = _import_tensorrt()
        self._trt = trt
        plan_path = Path(plan_path)
        if not plan_path.is_file():
            raise FileNotFoundError(f"TensorRT plan not found: {plan_path}")
        self._cuda = _CudaRuntime()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"TensorRT {trt.__version__} could not load {plan_path}: plans only run on the TensorRT version "
                "and GPU that built them; rebuild it here"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = tuple(n for n in names if is_input[n])
        self.outputs = tuple(n for n in names if not is_input[n])
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self._buffers: dict[str, tuple[int, int]] = {}  # name → (device pointer, capacity in bytes)
        self._stream = self._cuda.stream()

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, capacity = self._buffers.get(name, (0, 0))
        if capacity < nbytes:
            if ptr:
                self._cuda.free(ptr)
            ptr, capacity = self._cuda.malloc(nbytes), nbytes
            self._buffers[name] = (ptr, capacity)
        return ptr

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy inputs in, execute, copy outputs out (cast to the engine's I/O dtypes)."""
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise ValueError(f"missing inputs {sorted(missing)}; the plan takes {self.inputs}")
        hosts = {}
        for name in self.inputs:
            array = np.ascontiguousarray(feeds[name], dtype=self.dtypes[name])
            hosts[name] = array
            if not self.context.set_input_shape(name, array.shape):
                raise ValueError(
                    f"input {name!r} shape {array.shape} is outside the plan's optimisation profile"
                )
            ptr = self._buffer(name, array.nbytes)
            self.context.set_tensor_address(name, ptr)
            self._cuda.copy(ptr, array.ctypes.data, array.nbytes, _H2D, self._stream)
        results = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            results[name] = np.empty(shape, dtype=self.dtypes[name])
            self.context.set_tensor_address(name, self._buffer(name, results[name].nbytes))
        if not self.context.execute_async_v3(self._stream):
            raise RuntimeError("TensorRT execution failed (see the TensorRT log above)")
        for name, array in results.items():
            self._cuda.copy(array.ctypes.data, self._buffers[name][0], array.nbytes, _D2H, self._stream)
        self._cuda.sync(self._stream)
        del hosts  # inputs stay alive until the stream has consumed them
        return results

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cuda.free(ptr)
        self._buffers.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except (RuntimeError, AttributeError, OSError):  # interpreter shutdown: the driver may be gone
            pass
