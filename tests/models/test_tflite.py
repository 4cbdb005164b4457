"""The wheel's TFLite models: finding them and opening them with their input checked."""
import pytest

from handpose.models import tflite


def test_bundled_model_finds_the_wheels_networks():
    for folder, name in (("hand_landmark", "hand_landmark_full.tflite"), ("palm_detection", "palm_detection_full.tflite")):
        path = tflite.bundled_model(folder, name)
        assert path.is_file() and path.name == name and path.parent.name == folder


def test_bundled_model_names_a_missing_file():
    with pytest.raises(FileNotFoundError, match="no_such.tflite is missing: reinstall mediapipe"):
        tflite.bundled_model("hand_landmark", "no_such.tflite")


def test_open_interpreter_checks_the_input_and_names_the_outputs():
    path = tflite.bundled_model("palm_detection", "palm_detection_full.tflite")
    interpreter, index, outputs = tflite.open_interpreter(path, 192)
    assert tuple(interpreter.get_input_details()[0]["shape"]) == (1, 192, 192, 3) and isinstance(index, int)
    assert set(outputs) == {"Identity", "Identity_1"}
    with pytest.raises(ValueError, match=r"expected a \(1, 224, 224, 3\) input"):
        tflite.open_interpreter(path, 224)
    with pytest.raises(ValueError, match="num_threads"):
        tflite.open_interpreter(path, 192, num_threads=0)
