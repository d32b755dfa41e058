"""A ROS 2 node: sensor_msgs/Image in; the mask (mono8 Image) and the result (JSON String) out.

    ros2 run ... / python examples/ros2_node.py --ros-args -p query:="the cup" -p engines:=/opt/engines

Subscribes `image` (rgb8, bgr8, rgba8, bgra8, mono8), publishes `mask` (sensor_msgs/Image,
mono8, 255 = object, same header as the input) and `result` (std_msgs/String:
`Result.to_dict()` JSON, mask as COCO RLE). Frames arriving while a query runs are dropped
(a depth-1 queue), so the node always works on the newest frame.

NOT RUN HERE: rclpy cannot be installed on this project's machines. Every conversion lives in
`segzero_edge.integrations.ros`, which the tests cover; this file is only the rclpy shell.
"""

from __future__ import annotations

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from segzero_edge.integrations.ros import image_from_msg, mask_fields, result_json
from segzero_edge.runtime import ReasoningSegmenter


class SegZeroNode(Node):
    def __init__(self) -> None:
        super().__init__("segzero_edge")
        self.query = self.declare_parameter("query", "the object used for cutting").value
        engines = self.declare_parameter("engines", "").value or None
        provider = self.declare_parameter("provider", "cpu").value
        max_time_s = self.declare_parameter("max_time_s", 0.0).value or None
        self.seg = ReasoningSegmenter.from_dir(engines, provider=provider, max_time_s=max_time_s)
        self.mask_pub = self.create_publisher(Image, "mask", 1)
        self.result_pub = self.create_publisher(String, "result", 1)
        self.create_subscription(Image, "image", self.on_image, 1)

    def on_image(self, msg: Image) -> None:
        try:
            pixels, order = image_from_msg(msg)
        except ValueError as exc:
            self.get_logger().error(str(exc))
            return
        result = self.seg.segment(pixels, self.query, channel_order=order)
        out = Image(header=msg.header, **mask_fields(result.mask, msg.height, msg.width))
        self.mask_pub.publish(out)
        self.result_pub.publish(String(data=result_json(result)))
        if not result.ok:
            self.get_logger().warning(f"query failed: {result.error}")


def main() -> None:
    rclpy.init()
    node = SegZeroNode()
    try:
        rclpy.spin(node)
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    main()
