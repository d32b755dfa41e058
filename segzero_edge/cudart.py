"""The few CUDA runtime (libcudart) calls that running and describing TensorRT plans need,
through ctypes: no torch, cupy, pycuda or cuda-python. TensorRT's pip wheels bring libcudart
(nvidia-cuda-runtime-cu12) and JetPack has it in /usr/local/cuda.

Used by the runtime (`runtime.trt_engine`) and by `build-plans`, which records the GPU a
plan was built on. Untested here: this project's machines have no CUDA.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys

H2D, D2H = 1, 2  # cudaMemcpyKind


class CudaRuntime:
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

    def set_device(self, device_id: int) -> None:
        self.check(self.lib.cudaSetDevice(ctypes.c_int(device_id)), f"cudaSetDevice({device_id})")

    def device_name(self, device_id: int) -> str:
        """The GPU's name (`cudaDeviceProp.name`, the struct's first field, char[256])."""
        # CUDA 12 exports the struct getter as cudaGetDeviceProperties_v2; older ones without the suffix.
        getter = getattr(self.lib, "cudaGetDeviceProperties_v2", None) or self.lib.cudaGetDeviceProperties
        props = ctypes.create_string_buffer(16384)  # larger than any CUDA version's cudaDeviceProp
        self.check(getter(props, ctypes.c_int(device_id)), f"cudaGetDeviceProperties({device_id})")
        return props.raw[:256].split(b"\0", 1)[0].decode("utf-8", "replace")


def gpu_name(device_id: int = 0) -> str:
    """The name of GPU `device_id` (e.g. \"Orin\", \"NVIDIA H200\"); ImportError without libcudart."""
    return CudaRuntime().device_name(device_id)
