"""Run a TensorRT 10 plan from numpy, torch-free: `TrtEngine(plan).run({name: array}) -> {name: array}`.

Device memory goes through the CUDA runtime library (libcudart) via ctypes
(`segzero_edge.cudart`), so neither torch, cupy, pycuda nor cuda-python is needed:
TensorRT's own wheels bring libcudart, and JetPack has it in /usr/local/cuda.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.cudart import D2H as _D2H
from segzero_edge.cudart import H2D as _H2D
from segzero_edge.cudart import CudaRuntime as _CudaRuntime


def _import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError(
            "running TensorRT plans needs TensorRT 10: pip install 'segzero-edge[trt]' (on Jetson, JetPack's "
            "python3-libnvinfer)"
        ) from exc
    return trt


def installed_tensorrt_and_gpu(device_id: int = 0) -> tuple[str, str]:
    """(TensorRT version, GPU name) of this machine: what a plan must have been built for."""
    trt = _import_tensorrt()
    return str(trt.__version__), _CudaRuntime().device_name(device_id)


class TrtEngine:
    """One deserialized plan with its execution context, device buffers and stream, on GPU
    `device_id`."""

    def __init__(self, plan_path: str | Path, device_id: int = 0) -> None:
        trt = _import_tensorrt()
        self._trt = trt
        plan_path = Path(plan_path)
        if not plan_path.is_file():
            raise FileNotFoundError(f"TensorRT plan not found: {plan_path}")
        self._cuda = _CudaRuntime()
        self._cuda.set_device(device_id)
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
