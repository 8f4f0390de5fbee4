"""Annotation pickles are untrusted: only plain containers and scalars load; nothing else runs."""
from __future__ import annotations

import json
import os
import pickle
import pickletools

import pytest

from refbench.data import open_split
from refbench.data.safe_pickle import UnsafePickleError, load_pickle, loads_pickle
from refbench.core.errors import RefbenchError


class _RunsCode:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _refs_with(payload):
    return [{"ref_id": 1, "ann_id": 10, "image_id": 5, "category_id": 1, "split": "val",
             "sentences": [{"raw": "a cat", "sent": "a cat", "sent_id": 7, "tokens": ["a", "cat"]}],
             "sent_ids": [7], "file_name": "x.jpg", "payload": payload}]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("cls", [_RunsCode, _Evil])
def test_code_running_pickle_is_refused_and_nothing_runs(tmp_path, protocol, cls):
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(_refs_with(cls(marker)), protocol=protocol))
    refused = r"refused to load.*(posix|os|nt|builtins|__builtin__)\.(system|exec).*nothing was executed"
    with pytest.raises(UnsafePickleError, match=refused):
        load_pickle(path)
    assert not marker.exists()


def test_malicious_refer_file_is_refused_by_open_split(tmp_path, run_cli):
    marker = tmp_path / "pwned"
    root = tmp_path / "data"
    (root / "refcoco").mkdir(parents=True)
    (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(_refs_with(_RunsCode(marker)), protocol=2))
    (root / "refcoco" / "instances.json").write_text(json.dumps(
        {"images": [{"id": 5, "file_name": "x.jpg", "height": 4, "width": 4}],
         "annotations": [{"id": 10, "image_id": 5, "category_id": 1, "segmentation": [[0, 0, 3, 0, 3, 3]]}],
         "categories": [{"id": 1, "name": "person"}]}))
    with pytest.raises(RefbenchError, match="refused to load"):
        open_split("refcoco/val", root)
    code, out, err = run_cli("data", "stats", "refcoco/val", "--data-root", root, "--no-tokens")
    assert code == 2 and err.startswith("error: ") and "refused" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("data", "check", "--data-root", root, "--no-images")
    assert code == 1 and "refused to load" in out
    assert not marker.exists()


def test_global_that_only_imports_is_refused_too(tmp_path):
    # GLOBAL 'subprocess Popen' without a call: still refused, before any import happens.
    data = b"csubprocess\nPopen\n."
    with pytest.raises(UnsafePickleError, match="subprocess.Popen"):
        loads_pickle(data, "x.p")


def test_persistent_ids_are_refused():
    data = b"Pfoo\n."  # PERSID opcode
    with pytest.raises(UnsafePickleError, match="persistent"):
        loads_pickle(data, "x.p")


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_plain_data_loads_in_every_protocol(protocol):
    obj = [{"ref_id": 1, "ann_id": [3, 4], "split": "testAB", "x": 1.5, "neg": -2, "big": 2 ** 70, "none": None,
            "flag": True, "t": (1, "a"), "s": {1, 2}, "f": frozenset({3}), "uni": "caf\u00e9", "b": b"\x00\x01"}]
    assert loads_pickle(pickle.dumps(obj, protocol=protocol)) == obj


def test_python2_byte_strings_decode_as_utf8():
    # Python 2 pickles str as SHORT_BINSTRING (protocol 2): refbench decodes them as UTF-8 text.
    data = b"\x80\x02]q\x00U\x05caf\xc3\xa9q\x01a."
    pickletools.dis(data, out=open(os.devnull, "w"))
    assert loads_pickle(data) == ["caf\u00e9"]


@pytest.mark.parametrize("data,kind", [(pickle.dumps([1, 2, 3], protocol=2)[:-3], "truncated"), (b"not a pickle", "malformed"),
                                       (b"", "truncated")])
def test_broken_pickles_give_one_clear_line(tmp_path, data, kind):
    p = tmp_path / "refs(unc).p"
    p.write_bytes(data)
    with pytest.raises(RefbenchError) as e:
        load_pickle(p)
    msg = str(e.value)
    assert str(p) in msg and kind in msg and "\n" not in msg


def test_missing_pickle(tmp_path):
    with pytest.raises(RefbenchError, match="file not found"):
        load_pickle(tmp_path / "nope.p")
