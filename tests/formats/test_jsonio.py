import json

import numpy as np
import pytest

from vidpose.errors import InputError
from vidpose.formats.jsonio import dump_json, load_json


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "images": [1, 2,\n  ]\n}\n')
    with pytest.raises(InputError) as info:
        load_json(path)
    assert info.value.file == str(path)
    assert "line 3, column 3" in str(info.value)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_json(tmp_path / "absent.json")


def test_dump_creates_folders_and_converts_numpy(tmp_path):
    path = tmp_path / "a" / "b" / "out.json"
    dump_json(path, {"x": np.float32(0.5), "n": np.int64(3), "flag": np.bool_(True),
                     "arr": np.arange(4).reshape(2, 2)})
    assert json.loads(path.read_text()) == {"x": 0.5, "n": 3, "flag": True, "arr": [[0, 1], [2, 3]]}
    assert load_json(path)["arr"] == [[0, 1], [2, 3]]


def test_failed_dump_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    dump_json(path, [1, 2])
    with pytest.raises(ValueError):
        dump_json(path, [float("nan")])  # NaN is not JSON
    with pytest.raises(TypeError):
        dump_json(path, {"x": object()})
    assert json.loads(path.read_text()) == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
