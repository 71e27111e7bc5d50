"""`storyteller cards …`: results on stdout, messages on stderr, exit 1 for user errors, 2 for usage."""

from __future__ import annotations

import json
import zipfile

import pytest
from PIL import Image

from tests.support.card_factory import b64json, sillytavern_card, v3_card_with_assets, write_png


@pytest.fixture
def cards(cli):
    return cli.group("cards")


def test_import_list_export_rm(cards, tmp_path):
    png = write_png(tmp_path / "sera.png", {"chara": b64json(sillytavern_card())})
    v3 = tmp_path / "aria.json"
    v3.write_text(json.dumps(v3_card_with_assets()))
    bad = tmp_path / "bad.json"
    bad.write_text("{")

    code, out, err = cards("import", str(png), str(bad), str(v3))
    assert code == 1  # one file failed; the others are in
    assert out == "1\tSeraphina\n2\tAria\n"
    assert f"{bad}: invalid JSON" in err and "Traceback" not in err

    code, out, _ = cards("list")
    assert (code, out) == (0, "2\tAria\tmusic\n1\tSeraphina\tfantasy, guardian\n")

    code, out, _ = cards("export", "Seraphina", "--to", str(tmp_path))
    assert code == 0 and out.strip() == str(tmp_path / "Seraphina.png")
    with Image.open(tmp_path / "Seraphina.png") as image:
        image.load()
        assert image.text.keys() >= {"chara", "ccv3"}

    code, out, _ = cards("export", "2", "--to", str(tmp_path / "aria-v2.json"), "--spec", "v2")
    exported = json.loads((tmp_path / "aria-v2.json").read_text())
    assert code == 0 and exported["spec"] == "chara_card_v2" and exported["data"] == v3_card_with_assets()["data"]

    code, out, err = cards("export", "Aria", "--to", str(tmp_path / "aria.charx"))
    assert code == 0
    with zipfile.ZipFile(tmp_path / "aria.charx") as archive:
        assert json.loads(archive.read("card.json"))["data"]["name"] == "Aria"

    code, out, err = cards("rm", "Seraphina")
    assert code == 0 and "removed 1" in err
    code, out, _ = cards("list")
    assert out == "2\tAria\tmusic\n"


def test_user_and_usage_errors(cards, tmp_path):
    code, out, err = cards("rm", "Nobody")
    assert (code, out) == (1, "") and "no character with the id or name 'Nobody'" in err
    code, _, err = cards("export", "Nobody", "--to", str(tmp_path / "x.png"))
    assert code == 1 and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        cards("export", "x", "--to", str(tmp_path / "x.png"), "--spec", "v2")
    assert exit_info.value.code == 2
    code, _, err = cards("import", str(tmp_path / "missing.png"))
    assert code == 1 and "missing.png: no such file" in err


def test_same_name_twice_asks_for_the_id(cards, tmp_path):
    path = tmp_path / "card.json"
    path.write_text(json.dumps(sillytavern_card()))
    cards("import", str(path), str(path))
    code, _, err = cards("export", "Seraphina", "--to", str(tmp_path))
    assert code == 1 and "2 characters are named 'Seraphina' (ids 1, 2): give the id" in err
    code, out, _ = cards("export", "2", "--to", str(tmp_path))
    assert code == 0


def test_export_file_name_drops_path_separators(cards, tmp_path):
    path = tmp_path / "card.json"
    path.write_text(json.dumps(sillytavern_card("AC/DC\\..")))
    code, out, err = cards("import", str(path))
    assert code == 0 and "path separators" in err
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, _ = cards("export", "1", "--to", str(out_dir), "--format", "json")
    assert code == 0 and [p.name for p in out_dir.iterdir()] == ["AC_DC.json"]
    assert json.loads((out_dir / "AC_DC.json").read_text())["data"]["name"] == "AC/DC\\.."
