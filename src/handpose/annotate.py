"""Manual 2D keypoint annotation of your own photos, saved in the ground-truth format.

Two layers:

* :class:`AnnotationStore`, pure and tested: records clicks in the course keypoint order
  (:data:`handpose.keypoints.NAMES`), with undo, "skip" (joint not visible: not annotated) and
  several hands per photo, and saves atomically to ``data/captured/annotations.json`` in the format
  of the ground truth files (``images[].image / width / height / hands[].handedness /
  keypoints_2d / visibility``; a skipped joint is ``[0.0, 0.0]`` with visibility 0). A hand left
  before its 21st joint also records ``joints_done`` (the joints reached), so that it can be
  resumed after a reload; complete hands have no such key.
  :func:`handpose.groundtruth.read_ground_truth` reads that format back as arrays (NaN for joints
  not annotated); the format is documented in :mod:`handpose.groundtruth`.
* :func:`annotation_widget`, a thin JupyterLab UI: the photo with the clicks drawn on it in an
  ``ipywidgets.Image``, clicks read with ``ipyevents``, and buttons for undo / skip / new hand /
  next photo.

Coordinates are pixels of the upright photo at full resolution (EXIF rotation applied, not
downscaled), in the package's convention (integer pixel centres, :mod:`handpose.camera`): the
photo spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``, as in the demo set's ``gt.json``. The click
events of the browser are continuous (``[0, W]``) and convert on the way in
(:func:`click_position`). ``width`` / ``height`` record the frame, and :meth:`handpose.groundtruth.GroundTruth.resized`
maps it to the photo as loaded for prediction.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handpose.camera import continuous_to_centres, resize_pixels
from handpose.groundtruth import check_handedness, read_ground_truth
from handpose.io import write_atomic
from handpose.keypoints import NAMES, NUM_KEYPOINTS

GT_TYPE = "manual_2d_handpose_annotate"


@dataclass
class HandAnnotation:
    """One hand being annotated.

    Attributes:
        handedness: ``"left"`` or ``"right"``.
        keypoints_2d: ``(21, 2)`` pixels, NaN until clicked (and for skipped joints).
        visibility: ``(21,)`` int, 1 = clicked, 0 = skipped or not reached.
        n_done: number of joints clicked or skipped so far (the next joint's index).
    """

    handedness: str
    keypoints_2d: np.ndarray = field(default_factory=lambda: np.full((NUM_KEYPOINTS, 2), np.nan))
    visibility: np.ndarray = field(default_factory=lambda: np.zeros(NUM_KEYPOINTS, dtype=int))
    n_done: int = 0

    @property
    def complete(self) -> bool:
        """Every joint clicked or skipped."""
        return self.n_done == NUM_KEYPOINTS

    def to_json(self) -> dict[str, Any]:
        """Ground-truth form; joints not annotated are ``[0.0, 0.0]`` with visibility 0, and an
        incomplete hand adds ``joints_done``."""
        points = np.where(self.visibility[:, None] == 1, self.keypoints_2d, 0.0)
        entry = {"handedness": self.handedness, "keypoints_2d": np.round(points, 2).tolist(),
                 "visibility": self.visibility.astype(int).tolist()}
        if not self.complete:
            entry["joints_done"] = int(self.n_done)
        return entry


@dataclass
class ImageAnnotation:
    """The hands annotated on one photo of ``width x height`` pixels."""

    width: int
    height: int
    hands: list[HandAnnotation] = field(default_factory=list)


def _joints_done(value: Any, path: Path, name: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= NUM_KEYPOINTS:
        raise ValueError(f"{path}: {name}: joints_done must be an integer in 0..{NUM_KEYPOINTS}, got {value!r}")
    return value


class AnnotationStore:
    """Clicks in keypoint order for a set of photos, saved in the ground-truth format.

    Workflow: :meth:`open_image`, :meth:`begin_hand`, then 21 :meth:`click` / :meth:`skip` calls
    (wrist, thumb CMC .. TIP, index MCP .. TIP, ..., pinky TIP); :meth:`undo` steps back;
    :meth:`save` writes the file atomically.

    Example:
        >>> store = AnnotationStore("annotations.json")  # doctest: +SKIP
        >>> store.open_image("IMG_0001.jpg", 4032, 3024)
        >>> store.begin_hand("right")
        >>> store.click(1510.0, 2200.5)   # the wrist
        >>> store.next_joint_name
        'THUMB_CMC'
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.images: dict[str, ImageAnnotation] = {}
        self.current: str | None = None

    # -- state ----------------------------------------------------------------------------------

    def open_image(self, name: str, width: int, height: int) -> None:
        """Make ``name`` the current photo (kept annotations stay; new hands are appended)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width} x {height}")
        entry = self.images.get(name)
        if entry is not None and (entry.width, entry.height) != (width, height):
            raise ValueError(f"{name} was annotated at {entry.width} x {entry.height}, now opened at "
                             f"{width} x {height}: coordinates would not match")
        self.images.setdefault(name, ImageAnnotation(int(width), int(height)))
        self.current = name

    @property
    def image(self) -> ImageAnnotation:
        """The current photo's annotation."""
        if self.current is None:
            raise RuntimeError("no image is open: call open_image first")
        return self.images[self.current]

    @property
    def hand(self) -> HandAnnotation | None:
        """The hand being annotated (the current photo's last one), or ``None``."""
        return self.image.hands[-1] if self.image.hands else None

    @property
    def next_joint(self) -> int | None:
        """Index of the joint the next click records, or ``None`` when no hand is open or it is complete."""
        hand = self.hand
        return None if hand is None or hand.complete else hand.n_done

    @property
    def next_joint_name(self) -> str | None:
        """:data:`~handpose.keypoints.NAMES` entry of :attr:`next_joint`."""
        joint = self.next_joint
        return None if joint is None else NAMES[joint]

    def begin_hand(self, handedness: str) -> None:
        """Start a new hand on the current photo; the previous one must be complete."""
        check_handedness(handedness)
        if self.hand is not None and self.next_joint is not None:
            raise RuntimeError(f"the current hand is incomplete ({self.hand.n_done}/{NUM_KEYPOINTS} joints)")
        self.image.hands.append(HandAnnotation(handedness))

    def set_handedness(self, handedness: str) -> None:
        """Change the side of the hand being annotated."""
        if self.hand is None:
            raise RuntimeError("no hand to change: call begin_hand first")
        self.hand.handedness = check_handedness(handedness)

    def _advance(self) -> HandAnnotation:
        joint, hand = self.next_joint, self.hand
        if joint is None or hand is None:
            raise RuntimeError("no joint to annotate: call begin_hand first (the current hand is complete)")
        return hand

    def click(self, x: float, y: float) -> None:
        """Record pixel centre coordinates ``(x, y)`` for :attr:`next_joint` and move to the next one."""
        hand = self._advance()
        if not (-0.5 <= x <= self.image.width - 0.5 and -0.5 <= y <= self.image.height - 0.5):
            raise ValueError(f"click ({x:.1f}, {y:.1f}) is outside the {self.image.width} x {self.image.height} image")
        hand.keypoints_2d[hand.n_done] = (x, y)
        hand.visibility[hand.n_done] = 1
        hand.n_done += 1

    def skip(self) -> None:
        """Mark :attr:`next_joint` as not visible (not annotated) and move to the next one."""
        hand = self._advance()
        hand.keypoints_2d[hand.n_done] = np.nan
        hand.visibility[hand.n_done] = 0
        hand.n_done += 1

    def undo(self) -> None:
        """Forget the last click or skip; undoing past a hand's first joint removes that hand."""
        hand = self.hand
        if hand is None:
            return
        if hand.n_done == 0:
            self.image.hands.pop()
            return
        hand.n_done -= 1
        hand.keypoints_2d[hand.n_done] = np.nan
        hand.visibility[hand.n_done] = 0

    # -- files ----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The ground-truth document: every photo with at least one hand (joints not reached count
        as not annotated; an incomplete hand keeps ``joints_done``)."""
        images = [{"image": name, "width": entry.width, "height": entry.height, "gt_type": GT_TYPE,
                   "hands": [hand.to_json() for hand in entry.hands]}
                  for name, entry in self.images.items() if entry.hands]
        return {
            "keypoint_order": [name.lower() for name in NAMES],
            "conventions": {"keypoints_2d": "pixel coords (x right, y down) of the upright full-resolution "
                                            "photo (EXIF rotation applied), course order; integer pixel "
                                            "centres: the photo spans [-0.5, W - 0.5] x [-0.5, H - 0.5]",
                            "visibility": "1 = clicked, 0 = not annotated (keypoint stored as [0, 0])"},
            "images": images,
        }

    def save(self) -> Path:
        """Write :meth:`to_json` to :attr:`path` with :func:`handpose.io.write_atomic` (a new file
        gets the umask's mode, a replaced one keeps its own)."""
        return write_atomic(self.path, json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "AnnotationStore":
        """A store holding the annotations saved at ``path`` (empty when the file does not exist
        yet); a hand saved incomplete (``joints_done`` < 21) resumes at its next joint."""
        store = cls(path)
        if not store.path.exists():
            return store
        with open(store.path) as f:
            done = {entry["image"]: [hand.get("joints_done", NUM_KEYPOINTS) for hand in entry.get("hands", [])]
                    for entry in json.load(f)["images"]}
        for name, truth in read_ground_truth(store.path).items():
            store.images[name] = ImageAnnotation(truth.width, truth.height, [
                HandAnnotation(side, points.copy(), vis.astype(int).copy(), _joints_done(n, store.path, name))
                for side, points, vis, n in zip(truth.handedness, truth.keypoints_2d, truth.visibility, done[name])])
        return store


# -- JupyterLab UI ------------------------------------------------------------------------------


def click_position(data_x: float, data_y: float, factor: float, width: int, height: int) -> tuple[float, float]:
    """A click on the view shown (continuous coordinates ``[0, w]`` of the view, ``view = factor *
    photo``) -> the photo's pixel centre coordinates, clamped to the photo ``[-0.5, W - 0.5]``."""
    u, v = continuous_to_centres(np.array([data_x, data_y], dtype=np.float64) / factor)
    return float(np.clip(u, -0.5, width - 0.5)), float(np.clip(v, -0.5, height - 0.5))


def render_annotation(image: np.ndarray, store: AnnotationStore, max_side: int = 1000) -> tuple[np.ndarray, float]:
    """The photo downscaled to at most ``max_side`` pixels with the current photo's clicks drawn.

    Returns:
        ``(view (h, w, 3) uint8, factor)`` with ``view = factor * photo`` in continuous coordinates.
    """
    import cv2

    from handpose.viz import draw_keypoints

    h, w = image.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    view = cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA) if factor < 1 \
        else image.copy()
    scale_x, scale_y = view.shape[1] / w, view.shape[0] / h
    for hand in store.image.hands:
        points = np.where(hand.visibility[:, None] == 1, resize_pixels(hand.keypoints_2d, scale_x, scale_y), np.nan)
        view = draw_keypoints(view, points, thickness=2)
    return view, factor


def annotation_widget(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                      max_side: int = 1000) -> Any:
    """A JupyterLab widget to click the 21 keypoints of each hand on each photo.

    Click the joint named above the photo; "skip" marks it not visible; "undo" steps back;
    "new hand" starts the next hand (side from the drop-down); "next photo" saves and moves on. A
    hand left incomplete needs a second "next photo" (the first one warns); it is saved with the
    joints reached and resumes there when the photo is opened again. After the last photo the tool
    is done and its controls are disabled. Everything is saved to ``out`` after each completed hand
    and at each "next photo". Needs ``ipywidgets`` and ``ipyevents``.

    Args:
        paths: photos to annotate, in order.
        out: the annotations file (e.g. ``data/captured/annotations.json``); existing annotations
            are loaded and extended.
        max_side: longest side of the displayed photo, pixels.
    """
    import cv2
    import ipywidgets as widgets
    from ipyevents import Event

    from handpose.io import load_image

    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no photos to annotate: put your photos in data/captured/ (or pass their paths)")
    store = AnnotationStore.load(out)
    state: dict[str, Any] = {"index": 0, "image": None, "factor": 1.0, "warned": False, "done": False}
    picture = widgets.Image(format="png")
    status = widgets.HTML()
    side = widgets.Dropdown(options=["right", "left"], description="hand", layout=widgets.Layout(width="160px"))
    buttons = {name: widgets.Button(description=name, layout=widgets.Layout(width="auto"))
               for name in ("undo", "skip", "new hand", "next photo")}

    def refresh(note: str = "") -> None:
        view, state["factor"] = render_annotation(state["image"], store, max_side)
        picture.value = cv2.imencode(".png", cv2.cvtColor(view, cv2.COLOR_RGB2BGR))[1].tobytes()
        joint = store.next_joint_name
        hands = len(store.image.hands)
        prompt = (f"click <b>{joint}</b> ({store.next_joint + 1}/21)" if joint
                  else "press <b>new hand</b> or <b>next photo</b>")
        status.value = f"{store.current} ({state['index'] + 1}/{len(paths)}), {hands} hand(s): {prompt}{note}"

    def act(action: Any) -> Any:
        """Run ``action`` unless the tool is done; any action but "next photo" withdraws its warning."""
        def handler(*args: Any) -> None:
            if state["done"]:
                return
            if action is not on_next:
                state["warned"] = False
            action(*args)
        return handler

    def show(index: int) -> None:
        state["index"] = index
        state["image"] = load_image(paths[index], downscale_above=None)  # full resolution, see module doc
        h, w = state["image"].shape[:2]
        store.open_image(paths[index].name, w, h)
        if store.hand is None:
            store.begin_hand(side.value)
        elif store.next_joint is not None:
            side.value = store.hand.handedness  # resuming a hand saved incomplete
        refresh()

    def on_click(event: dict[str, Any]) -> None:
        if store.next_joint is None:
            return
        store.click(*click_position(event["dataX"], event["dataY"], state["factor"],
                                    store.image.width, store.image.height))
        if store.next_joint is None:
            store.save()
        refresh()

    def on_skip(_: Any) -> None:
        if store.next_joint is not None:
            store.skip()
            if store.next_joint is None:
                store.save()
            refresh()

    def on_undo(_: Any) -> None:
        store.undo()
        refresh()

    def on_new_hand(_: Any) -> None:
        if store.next_joint is None:
            store.begin_hand(side.value)
            refresh()

    def on_next(_: Any) -> None:
        hand = store.hand
        if hand is not None and 0 < hand.n_done < NUM_KEYPOINTS and not state["warned"]:
            state["warned"] = True
            refresh(f"<br><b>this hand has {hand.n_done} of 21 joints</b>: click or skip the rest, or press "
                    "<b>next photo</b> again to save it incomplete (it resumes here next time)")
            return
        state["warned"] = False
        if hand is not None and hand.n_done == 0:
            store.undo()  # drop the empty hand begun for this photo
        store.save()
        if state["index"] + 1 < len(paths):
            show(state["index"] + 1)
            return
        state["done"] = True
        for control in (side, *buttons.values()):
            control.disabled = True
        status.value = (f"done: {len(store.to_json()['images'])} photo(s) saved to {store.path} "
                        "(run the cell again to go on)")

    def on_side(change: dict[str, Any]) -> None:
        if store.hand is not None and store.next_joint is not None:
            store.set_handedness(change["new"])

    Event(source=picture, watched_events=["click"]).on_dom_event(act(on_click))
    buttons["undo"].on_click(act(on_undo))
    buttons["skip"].on_click(act(on_skip))
    buttons["new hand"].on_click(act(on_new_hand))
    buttons["next photo"].on_click(act(on_next))
    side.observe(on_side, names="value")
    show(0)
    return widgets.VBox([status, widgets.HBox([side, *buttons.values()]), picture])


def annotation_tool(folder: str | os.PathLike[str], demo: str | os.PathLike[str] | None = None,
                    demo_out: str | os.PathLike[str] | None = None, max_side: int = 1000) -> Any:
    """Notebook 05's entry point: :func:`annotation_widget` on the photos of ``folder``, saved to
    ``folder/annotations.json``.

    When ``folder`` has no photo yet, a message says where they go and, with a ``demo`` photo, a
    button opens the tool on it to try it, saving to ``demo_out`` (default: a new temporary folder's
    ``annotations.json``, never the photo set's ground truth).
    """
    import ipywidgets as widgets

    from handpose.io import list_images

    folder = Path(folder)
    paths = list_images(folder) if folder.is_dir() else []
    if paths:
        return annotation_widget(paths, folder / "annotations.json", max_side)
    message = (f"No photos in <code>{folder}</code> yet: copy your photos (JPEG, PNG, ...) there and run "
               "this cell again.")
    if demo is None:
        return widgets.HTML(message)
    button = widgets.Button(description="try it on a demo photo", layout=widgets.Layout(width="auto"))
    box = widgets.VBox([widgets.HTML(message), button])

    def on_try(_: Any) -> None:
        out = Path(demo_out) if demo_out is not None else Path(tempfile.mkdtemp(prefix="handpose_annotate_")) / \
            "annotations.json"
        note = widgets.HTML(f"Trying the tool on <code>{Path(demo).name}</code>; clicks are saved to "
                            f"<code>{out}</code>.")
        box.children = (note, annotation_widget([demo], out, max_side))

    button.on_click(on_try)
    return box
