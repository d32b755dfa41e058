"""ROS 2 message conversions for `examples/ros2_node.py`, without rclpy: the node stays a thin
shell around these, and they are tested here on plain objects with a message's fields.

- `image_from_msg(msg)`: a `sensor_msgs/msg/Image` (rgb8, bgr8, rgba8, bgra8, mono8) ->
  (HxWxC uint8 array, channel_order) ready for `segment(..., channel_order=)`. Row padding
  (`step` > width x channels) is dropped.
- `mask_fields(mask)`: a mask -> the fields of a mono8 `sensor_msgs/msg/Image` (255 = object).
- `result_json(result)`: the `std_msgs/msg/String` payload: `Result.to_dict()` as JSON (mask
  as COCO RLE).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

#: encoding -> (channels, channel_order)
ENCODINGS = {"rgb8": (3, "rgb"), "bgr8": (3, "bgr"), "rgba8": (4, "rgb"), "bgra8": (4, "bgr"), "mono8": (1, "rgb")}


def image_from_msg(msg: Any) -> tuple[np.ndarray, str]:
    """(HxWxC or HxW uint8 array, "rgb" | "bgr") from a sensor_msgs/Image-like object.
    Raises ValueError for an unsupported encoding or a buffer that does not match the header."""
    encoding = str(msg.encoding).lower()
    if encoding not in ENCODINGS:
        raise ValueError(f"image encoding {msg.encoding!r} is not supported; use one of {sorted(ENCODINGS)}")
    channels, order = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row = width * channels
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if height < 1 or width < 1 or step < row or data.size < step * height:
        raise ValueError(
            f"image message of {data.size} bytes does not hold {height}x{width} {encoding} with step {step}"
        )
    rows = data[: step * height].reshape(height, step)[:, :row]
    array = rows.reshape(height, width, channels) if channels > 1 else rows.reshape(height, width)
    return np.ascontiguousarray(array), order


def mask_fields(mask: np.ndarray | None, height: int | None = None, width: int | None = None) -> dict[str, Any]:
    """The fields of a mono8 Image for `mask` (255 inside); an all-zero image of height x width
    when there is no mask (a failed query)."""
    if mask is None:
        if height is None or width is None:
            raise ValueError("mask_fields(None) needs the image's height and width")
        pixels = np.zeros((height, width), np.uint8)
    else:
        pixels = np.asarray(mask, dtype=bool).astype(np.uint8) * 255
    h, w = pixels.shape
    return {"height": h, "width": w, "encoding": "mono8", "is_bigendian": 0, "step": w, "data": pixels.tobytes()}


def result_json(result: Any) -> str:
    """`Result.to_dict()` as a compact JSON string."""
    return json.dumps(result.to_dict(), separators=(",", ":"))
