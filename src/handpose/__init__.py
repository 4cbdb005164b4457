"""handpose: hand pose estimation for a 3D vision course.

2D keypoints, 3D keypoints and hand meshes on photos, on a CPU. See README.md for the module map;
the data flow is ``io.load_image`` -> ``models`` (``HandPrediction``) -> ``fitting`` -> ``render`` /
``viz`` / ``plot3d`` -> ``metrics`` / ``signals`` / ``sweeps``, with ``pipeline`` and ``cli`` on top.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("handpose")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
