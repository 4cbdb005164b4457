"""The ``handpose`` command.

    handpose predict IMAGES_OR_FOLDERS... --out DIR [--model mediapipe|iccv21] [--max-hands N]
                     [--meshes auto|open|mano] [--device auto|cpu|cuda] [--batch-size N]
    handpose doctor [--weights DIR]
    handpose demo-data [--out data/demo] [--seed 0] [--only NAME ...] [--count N]
    handpose video IN.mp4 --out DIR [--meshes] [--no-tracking] [--no-smoothing] [--max-hands N]
    handpose live [--camera N | --video FILE] [--meshes] [--out FILE.mp4] [--max-frames N]

Each subcommand is one ``add_<name>(subparsers)`` function registering its arguments and a
``run`` callable ``(args) -> exit code``; add new ones to :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from handpose.paths import ICCV21_CHECKPOINT_FILES, find_weights_dir
from handpose.paths import MANO_FILES as MANO_PICKLES

#: Files of the ``mediapipe`` wheel that the default estimator uses, relative to the package.
BUNDLED_MEDIAPIPE_FILES: dict[str, tuple[str, ...]] = {
    "hands": ("modules/palm_detection/palm_detection_full.tflite",
              "modules/hand_landmark/hand_landmark_full.tflite",
              "modules/hand_landmark/hand_landmark_lite.tflite",
              "modules/hand_landmark/hand_landmark_tracking_cpu.binarypb"),
    "pose": ("modules/pose_detection/pose_detection.tflite",
             "modules/pose_landmark/pose_landmark_full.tflite",
             "modules/pose_landmark/pose_landmark_cpu.binarypb"),
    "holistic": ("modules/holistic_landmark/hand_recrop.tflite",
                 "modules/holistic_landmark/holistic_landmark_cpu.binarypb"),
}


# -- predict --------------------------------------------------------------------------------------

def add_predict(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="hand keypoints for photos -> predictions.json + overlays/",
                              description="Predict hands in photos; write DIR/predictions.json and "
                                          "DIR/overlays/<name>.png.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="IMAGES_OR_FOLDERS")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--model", default="mediapipe", help="mediapipe (default) or iccv21 (needs weights/)")
    p.add_argument("--max-hands", type=int, default=4, metavar="N",
                   help="hands kept per photo (default 4, for group photos; the two-hand network takes the best two)")
    p.add_argument("--no-overlays", action="store_true", help="skip the overlay PNGs")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the prediction cache")
    p.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default <repo>/.cache/predictions)")
    p.add_argument("--meshes", choices=("auto", "open", "mano"), default=None,
                   help="also fit hand meshes and write DIR/meshes/<name>.png and one .obj per hand "
                        "(auto: MANO when its files are in weights/, else the open hand)")
    add_model_arguments(p)
    p.set_defaults(run=run_predict)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--batch-size``, for every subcommand that can run ``--model iccv21``."""
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda",
                   help="where iccv21 runs (default auto: CUDA when available; also cuda:N)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="photos per iccv21 forward pass (default 8)")


def model_options(args: argparse.Namespace) -> tuple[object, int]:
    """``(options, batch size)`` of ``args.model`` from the command line (mediapipe: ``--max-hands``;
    iccv21: ``--device``, ``--batch-size``).

    Raises:
        ValueError: a bad device (or CUDA where there is none) or batch size.
    """
    if args.model == "mediapipe":
        from handpose.models.mediapipe import MediaPipeOptions

        return MediaPipeOptions(max_hands=args.max_hands), 1
    if args.model == "iccv21":
        from handpose.models.iccv21 import ICCV21Options, resolve_device

        resolve_device(args.device)
        return ICCV21Options(device=args.device, batch_size=args.batch_size), args.batch_size
    return None, 1


def run_predict(args: argparse.Namespace) -> int:
    from handpose.models import available_models
    from handpose.pipeline import predict_folder

    if args.max_hands < 1:
        print("error: --max-hands must be >= 1", file=sys.stderr)
        return 2
    if args.model not in available_models():
        print(f"error: unknown model {args.model!r}; available: {', '.join(available_models())}", file=sys.stderr)
        return 2
    try:
        options, batch_size = model_options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        results = predict_folder(args.inputs, args.out, model=args.model, options=options, cache_dir=args.cache_dir,
                                 use_cache=not args.no_cache, overlays=not args.no_overlays, batch_size=batch_size)
    except (FileNotFoundError, ValueError) as exc:  # a missing or refused model file (CheckpointError, ManoFileError)
        print(f"error: {exc}", file=sys.stderr)
        if args.model != "mediapipe":
            print(f"model {args.model!r} needs valid licence-gated files: see weights/README.md and run "
                  "`handpose doctor`.", file=sys.stderr)
        return 2
    failed = [r for r in results if r.error]
    hands = sum(len(r.hands) for r in results)
    print(f"{len(results)} photos, {hands} hands, {len(failed)} failed -> {args.out / 'predictions.json'}")
    for r in failed:
        print(f"  failed: {r.image}: {r.error}", file=sys.stderr)
    if args.meshes and hands and not write_mesh_outputs(results, args.meshes, args.out / "meshes"):
        return 2
    return 1 if results and len(failed) == len(results) else 0


def write_mesh_outputs(results: Sequence, kind: str, out: Path) -> bool:
    """Fit ``kind`` meshes (``auto``/``open``/``mano``) to the photos' hands and write them to
    ``out``; ``False`` (with the reason on stderr) when the hand model's files are missing."""
    from handpose.handmodel import installed_kind
    from handpose.handmodel.mano import ManoFileError
    from handpose.pipeline import mesh_images, output_names, write_meshes

    kind = installed_kind() if kind == "auto" else kind
    done, names = zip(*[(r, name) for r, name in zip(results, output_names([r.image for r in results]))
                        if r.error is None])
    count = sum(len(r.hands) for r in done)
    print(f"fitting the {kind} hand model to {count} hands (batched)...", flush=True)
    try:
        meshed = mesh_images(done, kind)
    except (FileNotFoundError, ManoFileError) as exc:  # the open hand not built, or no MANO files
        print(f"error: {exc}", file=sys.stderr)
        return False
    write_meshes(meshed, out, names)
    print(f"{count} meshes -> {out}")
    return True


# -- doctor ---------------------------------------------------------------------------------------

def add_doctor(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("doctor", help="what is installed and which models are available",
                              description="Print package versions, the MediaPipe models bundled in its wheel "
                                          "and the licence-gated files found in the weights folder.")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder (default $HANDPOSE_WEIGHTS or <repo>/weights)")
    p.set_defaults(run=run_doctor)


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - report any import failure
        return f"NOT AVAILABLE ({type(exc).__name__}: {exc})"
    return str(getattr(mod, "__version__", "installed"))


def mediapipe_model_files() -> dict[str, list[tuple[str, bool]]]:
    """Per bundled solution, each model file with whether it is in the installed wheel."""
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")
    root = Path(spec.origin).parent if spec and spec.origin else None
    return {name: [(f, root is not None and (root / f).is_file()) for f in files]
            for name, files in BUNDLED_MEDIAPIPE_FILES.items()}


def run_doctor(args: argparse.Namespace) -> int:
    print(f"python      {platform.python_version()} ({sys.executable})")
    for module, label in (("torch", "torch"), ("numpy", "numpy"), ("mediapipe", "mediapipe"), ("cv2", "opencv"),
                          ("ai_edge_litert", "litert")):  # runs MediaPipe's landmark network on regions
        print(f"{label:<12}{_version(module)}")
    ok = True
    print("\nMediaPipe models bundled in the wheel:")
    for name, files in mediapipe_model_files().items():
        missing = [f for f, found in files if not found]
        ok &= not (missing and name in ("hands", "pose"))
        print(f"  {name:<10}{'found' if not missing else 'MISSING ' + ', '.join(Path(f).name for f in missing)}")
    from handpose.handmodel import open_hand_path
    from handpose.handmodel.build import export_is_current

    open_hand = open_hand_path()
    print(f"\nOpen hand model  {'found' if export_is_current(open_hand) else 'MISSING'} ({open_hand})")
    if not export_is_current(open_hand):
        print("  -> it ships with the package: restore it from git (meshes need it), or rebuild it with "
              "`python -m handpose.setup_assets --rebuild`.")
    weights = find_weights_dir(args.weights)
    print(f"\nLicence-gated files in {weights} (each one opened and checked):")
    checks = licence_gated_files(weights)
    for name, (status, detail) in checks.items():
        print(f"  {name:<20}{status}{': ' + detail if detail else ''}")
    invalid = [name for name, (status, _) in checks.items() if status == "INVALID"]
    if not any(checks[f][0] == "valid" for f in ICCV21_CHECKPOINT_FILES.values()):
        print(f"  -> `--model iccv21` is unavailable: put {ICCV21_CHECKPOINT_FILES['v2']} (release v2) or "
              f"{ICCV21_CHECKPOINT_FILES['v1']} (release v1) in {weights} (where to get them: weights/README.md).")
    mano_valid = all(checks[f][0] == "valid" for f in MANO_PICKLES.values())
    if not mano_valid and any("needs MANO_RIGHT.pkl" in checks[f][1] for f in ICCV21_CHECKPOINT_FILES.values()):
        print("  -> `--model iccv21` also needs valid MANO files: its checkpoint carries no MANO arrays.")
    if not mano_valid:
        print(f"  -> MANO meshes are unavailable: register at https://mano.is.tue.mpg.de and copy "
              f"mano_v1_2/models/MANO_*.pkl to {weights} (see weights/README.md). The open hand model works "
              "without them.")
    if invalid:
        print(f"  -> replace or remove the INVALID files: {', '.join(invalid)}")
    print("\nstatus: " + ("BROKEN: reinstall mediapipe==0.10.21 (make setup)" if not ok else
                          f"the default estimator (mediapipe) works, but {len(invalid)} file(s) in {weights} are INVALID"
                          if invalid else "ok, the default estimator (mediapipe) works"))
    return 0 if ok and not invalid else 1


def licence_gated_files(weights: Path) -> dict[str, tuple[str, str]]:
    """``{file name: (status, detail)}`` for the ICCV21 checkpoints and MANO pickles in ``weights``.

    Status is ``missing``, ``valid`` or ``INVALID``. Each present file is opened as the package
    would open it: a checkpoint with ``torch.load(weights_only=True)`` and its keys and shapes
    checked against its release; a MANO pickle with the restricted unpickler and its keys and
    shapes checked (nothing is cached or written). The detail says what was found or why not.
    """
    from handpose.handmodel.mano import ManoFileError, left_shapedirs_bug, load_mano
    from handpose.models.iccv21 import validate_checkpoint

    checks: dict[str, tuple[str, str]] = {}
    for release, name in ICCV21_CHECKPOINT_FILES.items():
        path = weights / name
        if not path.is_file():
            checks[name] = ("missing", f"release {release}")
            continue
        try:
            info = validate_checkpoint(path)
        except (OSError, ValueError) as exc:  # CheckpointError is a ValueError
            checks[name] = ("INVALID", str(exc).replace(f"{path}: ", "").replace(f"{path} ", ""))
            continue
        detail = [f"release {info.release}, {info.entries} entries",
                  "carries MANO's arrays" if info.has_mano else "needs MANO_RIGHT.pkl and MANO_LEFT.pkl beside it"]
        if info.release != release:
            detail.append(f"its keys are release {info.release}'s although the name is release {release}'s")
        if info.ignored:
            detail.append(f"ignored (harmless): {', '.join(info.ignored)}")
        if info.filled:
            detail.append(f"{len(info.filled)} missing BatchNorm counters set to 0")
        checks[name] = ("valid", "; ".join(detail))
    data = {}
    for side, name in MANO_PICKLES.items():
        path = weights / name
        if not path.is_file():
            checks[name] = ("missing", "")
            continue
        try:
            data[side] = load_mano(path, use_cache=False)
        except ManoFileError as exc:
            checks[name] = ("INVALID", str(exc).replace(f"{path}: ", ""))
            continue
        checks[name] = ("valid", "restricted unpickling, MANO keys and shapes checked")
    if len(data) == 2 and left_shapedirs_bug(data["left"], data["right"]):
        status, detail = checks[MANO_PICKLES["left"]]
        checks[MANO_PICKLES["left"]] = (status, detail + "; has MANO's left shapedirs bug (fixed when loaded)")
    return checks


# -- demo-data ------------------------------------------------------------------------------------

def add_demo_data(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo-data", help="render the 20 demo images with ground truth",
                              description="Render the demo hand images with exact ground truth into "
                                          "DIR/<name>.jpg, DIR/gt.json and DIR/metadata.csv.")
    p.add_argument("--out", type=Path, default=Path("data/demo"), metavar="DIR",
                   help="output folder (default data/demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the jitter (default 0)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="render only these scenes (names like 07_side_pinch, or their number 07)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="render only the first N scenes")
    p.set_defaults(run=run_demo_data)


def run_demo_data(args: argparse.Namespace) -> int:
    """Run ``handpose demo-data``; prints what was written and how long it took."""
    from handpose.demo_data import generate

    try:
        result = generate(args.out, seed=args.seed, only=args.only, count=args.count, progress=True)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    hands = sum(len(im["hands"]) for im in result.gt["images"])
    print(f"wrote {len(result.paths)} images ({hands} hands), gt.json and metadata.csv to {args.out} "
          f"in {result.seconds:.1f} s")
    return 0


# -- video and live -------------------------------------------------------------------------------

def add_video(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("video", help="annotate a video: DIR/<name>_annotated.mp4 + <name>_hands.jsonl",
                              description="Track hands through a video; write an annotated MP4 (skeletons, "
                                          "track ids, finger counts, gestures, optional meshes) and one JSON "
                                          "line of hands per frame.")
    p.add_argument("input", type=Path, metavar="IN.mp4")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--meshes", action="store_true", help="fit and draw the open hand model on each hand")
    p.add_argument("--no-tracking", action="store_true",
                   help="search every frame from scratch, without track ids (and without smoothing)")
    p.add_argument("--no-smoothing", action="store_true", help="keep the raw keypoints (no One-Euro filter)")
    p.add_argument("--max-hands", type=int, default=2, metavar="N", help="hands per frame (default 2)")
    p.set_defaults(run=run_video)


def run_video(args: argparse.Namespace) -> int:
    from handpose.video import VideoError, process_video

    if args.max_hands < 1:
        print("error: --max-hands must be >= 1", file=sys.stderr)
        return 2
    try:
        result = process_video(args.input, args.out, meshes=args.meshes, tracking=not args.no_tracking,
                               smoothing=not args.no_smoothing, max_hands=args.max_hands)
    except (VideoError, OSError) as exc:  # bad video; an output folder that cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.frame_count} frames at {result.fps:.1f} frames/s -> {result.video}, {result.jsonl}")
    return 0


def add_live(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("live", help="webcam or video in a window: skeletons, meshes, finger counts, FPS",
                              description="Show a webcam (or a video file) annotated live in an OpenCV window. "
                                          "Keys: m meshes, k skeleton, s smoothing, p snapshot, q quit. "
                                          "Without a display, write the annotated frames to --out.")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, default=0, metavar="N", help="camera number (default 0)")
    source.add_argument("--video", type=Path, default=None, metavar="FILE", help="play a video file instead")
    p.add_argument("--meshes", action="store_true", help="start with the mesh overlay on")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.mp4",
                   help="also write the annotated frames here (without a display: handpose_live.mp4 by default)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--max-hands", type=int, default=2, metavar="N", help="hands per frame (default 2)")
    p.set_defaults(run=run_live)


def run_live(args: argparse.Namespace) -> int:
    from handpose.live import run_live as live
    from handpose.video import VideoError

    try:
        result = live(camera=args.camera, video=args.video, meshes=args.meshes, out=args.out,
                      max_frames=args.max_frames, max_hands=args.max_hands)
    except (VideoError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.frames} frames at {result.fps:.1f} frames/s"
          + (f" -> {result.out}" if result.out else "")
          + (f", {len(result.snapshots)} snapshots" if result.snapshots else ""))
    return 0


# -- main -----------------------------------------------------------------------------------------

COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (add_predict, add_doctor, add_demo_data,
                                                                       add_video, add_live)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handpose", description="Hand pose estimation toolkit.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``handpose``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
