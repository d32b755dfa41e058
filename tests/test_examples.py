"""The examples run: camera_loop.py on generated frames (as CI runs it), and the ROS 2 node's
conversions (segzero_edge.integrations.ros) on plain objects, since rclpy is not installable here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from segzero_edge.integrations.ros import image_from_msg, mask_fields, result_json
from segzero_edge.pipeline import Result

ROOT = Path(__file__).resolve().parents[1]


def test_camera_loop_runs_on_generated_frames():
    pytest.importorskip("onnxruntime")
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "camera_loop.py"), "--frames", "2"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("frame 0: reason  vision=") and "tokens)" in lines[0]
    assert lines[1].startswith("frame 0: bbox=")
    assert lines[2].startswith("frame 1: segment sam_encode=") and "sam_decode=" in lines[2]
    assert int(lines[2].rsplit("area=", 1)[1].split()[0]) > 0


def _msg(array: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    height, width = array.shape[:2]
    row = array.reshape(height, -1)
    padded = np.concatenate([row, np.full((height, pad), 7, np.uint8)], axis=1)
    return SimpleNamespace(height=height, width=width, encoding=encoding, step=row.shape[1] + pad,
                           is_bigendian=0, data=padded.tobytes())


@pytest.mark.parametrize("pad", [0, 5])
def test_ros_images_convert_with_their_channel_order(pad):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    array, order = image_from_msg(_msg(rgb, "rgb8", pad))
    assert order == "rgb" and np.array_equal(array, rgb)
    array, order = image_from_msg(_msg(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", pad))
    assert order == "bgr" and np.array_equal(array[:, :, ::-1], rgb)
    rgba = np.dstack([rgb, np.full((4, 6), 255, np.uint8)])
    assert np.array_equal(image_from_msg(_msg(rgba, "rgba8", pad))[0], rgba)
    gray = rgb[:, :, 0].copy()
    assert np.array_equal(image_from_msg(_msg(gray, "mono8", pad))[0], gray)
    # the pipeline reads them as RGB: the bgr8 frame gives the rgb8 frame's pixels
    from segzero_edge.images import load_image

    bgr, order = image_from_msg(_msg(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", pad))
    assert np.array_equal(load_image(bgr, channel_order=order), rgb)


def test_ros_bad_images_say_why():
    with pytest.raises(ValueError, match="encoding '16UC1' is not supported"):
        image_from_msg(SimpleNamespace(height=1, width=1, encoding="16UC1", step=2, data=b"\0\0"))
    with pytest.raises(ValueError, match="does not hold 2x2 rgb8 with step 6"):
        image_from_msg(SimpleNamespace(height=2, width=2, encoding="rgb8", step=6, data=b"\0" * 11))


def test_ros_mask_and_result_messages():
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    fields = mask_fields(mask)
    assert {k: v for k, v in fields.items() if k != "data"} == {
        "height": 3, "width": 4, "encoding": "mono8", "is_bigendian": 0, "step": 4}
    assert np.frombuffer(fields["data"], np.uint8).reshape(3, 4).tolist() == (mask * 255).tolist()
    assert mask_fields(None, 2, 5)["data"] == bytes(10)
    with pytest.raises(ValueError, match="needs the image's height and width"):
        mask_fields(None)
    r = Result(ok=True, query="q", mask=mask, bbox=(2, 1, 2, 1), points=((2, 1), (2, 1)), score=0.5)
    assert np.array_equal(Result.from_dict(json.loads(result_json(r))).mask, mask)
