"""The TFLite networks of the ``mediapipe`` wheel, opened directly through ``ai-edge-litert``.

:mod:`handpose.models.regions` (hand-landmark network) and :mod:`handpose.models.palms` (palm
detector) run MediaPipe's own models without its graphs; this module finds a model in the
installed wheel and opens it on the CPU, checking its input shape.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from handpose.models.native_stderr import silenced_native_stderr


def bundled_model(folder: str, name: str) -> Path:
    """``<mediapipe>/modules/<folder>/<name>`` inside the installed ``mediapipe`` wheel.

    Raises:
        FileNotFoundError: the wheel lacks it (another mediapipe version, or a broken install).
    """
    import mediapipe

    path = Path(mediapipe.__file__).parent / "modules" / folder / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall mediapipe==0.10.21 (the wheel ships it)")
    return path


def open_interpreter(path: str | Path, input_size: int, num_threads: int = 1) -> tuple[Any, int, dict[str, int]]:
    """A TFLite interpreter of ``path`` with tensors allocated, its input index and its outputs'
    indices by name, after checking that the input is ``(1, input_size, input_size, 3)``.

    Raises:
        ValueError: ``num_threads < 1``, or another input shape.
    """
    from ai_edge_litert.interpreter import Interpreter

    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    with silenced_native_stderr():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    if tuple(inp["shape"]) != (1, input_size, input_size, 3):
        raise ValueError(f"{path}: expected a (1, {input_size}, {input_size}, 3) input, got {inp['shape']}")
    return interpreter, inp["index"], {d["name"]: d["index"] for d in interpreter.get_output_details()}
