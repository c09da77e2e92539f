"""The rule for names (issue 24, items 4 and 5): dataset names, engine ids and user names are NFKC-normalised and
compared that way, control and format characters are refused with a sentence naming the field, the character
and its position, lookups fold the query, and the CLI's text output escapes what a name stored before the
rule may hold. The file and API doors are tested in test_hostile_inputs.py and test_api_fleet.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import cli
from core.access import roles, users
from core.data import fleet_ops, names, queries, store, writes
from core.data.cmapss import COLUMNS
from core.errors import UserError

Slice = Callable[..., list[str]]

HOSTILE = [
    ("\x1b", "an escape character (U+001B)"),
    ("\x07", "a bell character (U+0007)"),
    ("\r", "a carriage return (U+000D)"),
    ("\n", "a line feed (U+000A)"),
    ("\x00", "a null character (U+0000)"),
    ("\u200b", "a zero-width space (U+200B)"),
    ("\u202e", "the invisible format character right-to-left override (U+202E)"),
]
"""Each hostile character and how a refusal names it."""


@pytest.mark.parametrize(("char", "described"), HOSTILE)
def test_control_and_format_characters_are_refused_naming_the_field_character_and_position(
        char: str, described: str) -> None:
    with pytest.raises(UserError) as info:
        names.normalise(f"ESN{char}-7001", names.ENGINE)
    assert str(info.value) == f"The engine id 'ESN…' contains {described} at position 4."
    with pytest.raises(UserError) as info:
        names.normalise(f"line{char}A", names.DATASET, where="readings[2].dataset")
    assert str(info.value) == f"readings[2].dataset: the dataset name 'line…' contains {described} at position 5."


def test_look_alikes_fold_to_one_name_and_surrounding_whitespace_goes() -> None:
    assert names.normalise("ＥＳＮ-7001", names.ENGINE) == "ESN-7001"
    assert names.normalise("  ESN-7001\u3000", names.ENGINE) == "ESN-7001"
    assert names.normalise("ﬁeld-line", names.DATASET) == "field-line"
    assert names.lookup_keys("ＥＳＮ-7001") == ["ESN-7001", "ＥＳＮ-7001"]
    assert names.lookup_keys("ESN-7001") == ["ESN-7001"]


def test_empty_and_over_long_names_are_refused_with_the_limit() -> None:
    with pytest.raises(UserError, match=r"^The dataset name is empty\.$"):
        names.normalise("   ", names.DATASET)
    with pytest.raises(UserError, match=r"^The engine id 'x{20}…' is 65 characters long, more than the 64 "
                                        r"allowed\.$"):
        names.normalise("x" * 65, names.ENGINE)
    assert names.normalise("x" * 64, names.ENGINE) == "x" * 64
    assert names.normalise("d" * names.DATASET_MAX_CHARS, names.DATASET) == "d" * 100
    with pytest.raises(UserError, match="more than the 100 allowed"):
        names.normalise("d" * 101, names.DATASET)


def test_the_json_pattern_states_the_same_rule() -> None:
    pattern = re.compile(names.json_pattern())
    for good in ("ESN-7001", " line A ", "ＥＳＮ-7001", "été"):
        assert pattern.search(good) and names.refusal(good, names.ENGINE) is None
    for bad in ("", "   ", "\u3000", *(f"ESN{char}1" for char, _ in HOSTILE)):
        assert not pattern.search(bad) and names.refusal(bad, names.ENGINE) is not None


def test_escape_shows_control_and_format_characters_literally() -> None:
    assert names.escape("evil\x1b[2J\nline\u202e") == "evil\\x1b[2J\\x0aline\\u202e"
    assert names.escape("plain ESN-7001 été") == "plain ESN-7001 été"


# ----------------------------------------------------------------------------- the store and its lookups


def _arrays(lines: list[str], engine: str, unit: int = 1) -> dict[str, np.ndarray]:
    """Readings of the first engine in `lines` as validated arrays, with engine id `engine` written as is."""
    frame = pd.DataFrame([[float(v) for v in line.split()] for line in lines], columns=COLUMNS)
    frame = frame[frame.unit == 1].assign(unit=float(unit))
    arrays = {c: frame[c].to_numpy(dtype=np.float64) for c in COLUMNS}
    arrays["engine"] = np.full(len(frame), engine, dtype=object)
    return arrays


def _legacy_dataset(lines: list[str], name: str, engine: str, cycles: int) -> None:
    """A fleet dataset stored before the rule for names: `name` and `engine` written as given, unchecked."""
    arrays = {k: v[:cycles] for k, v in _arrays(lines, engine).items()}
    with store.connect() as con, store.transaction(con):
        writes.add_dataset(con, name, "user", "fleet", "legacy", arrays)


def test_a_folded_query_finds_the_stored_name_and_a_stored_look_alike_is_still_found(
        pm_home: Path, cmapss_slice: Slice) -> None:
    lines = cmapss_slice("train_FD001", units=1)
    _legacy_dataset(lines, "ｌｅｇａｃｙ", "ＥＳＮ-9", cycles=5)
    with store.connect(read_only=True) as con:
        assert queries.find_dataset(con, "ｌｅｇａｃｙ")["name"] == "ｌｅｇａｃｙ"
        assert queries.find_engine(con, "ｌｅｇａｃｙ", "ＥＳＮ-9")["unit"] == 1
    rows = pd.DataFrame({c: v for c, v in _arrays(lines, "ESN-1").items() if c != "unit"})
    fleet_ops.append_readings("line-B", rows.iloc[:4])
    with store.connect(read_only=True) as con:
        assert queries.find_dataset(con, " ｌｉｎｅ-B ")["name"] == "line-B"
        assert queries.find_engine(con, "line-B", "ＥＳＮ-1")["engine"] == "ESN-1"


def test_readings_for_a_look_alike_of_a_stored_engine_append_to_it(pm_home: Path, cmapss_slice: Slice) -> None:
    lines = cmapss_slice("train_FD001", units=1)
    _legacy_dataset(lines, "legacy", "ＥＳＮ-9", cycles=5)
    more = pd.DataFrame({c: v for c, v in _arrays(lines, "ESN-9").items() if c != "unit"}).iloc[5:8]
    merged = fleet_ops.append_readings("legacy", more)
    assert (merged["readings_added"], merged["new_engines"]) == (3, [])
    with store.connect(read_only=True) as con:
        assert queries.get_dataset(con, "legacy")["engines"] == 1


# ----------------------------------------------------------------------------- the command line


def test_datasets_table_escapes_a_name_stored_before_the_rule(pm_home: Path, cmapss_slice: Slice,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _legacy_dataset(cmapss_slice("train_FD001", units=1), "evil\x1b[2J\nline\u202e", "1", cycles=3)
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "evil\\x1b[2J\\x0aline\\u202e" in out
    _header, row, total = out.splitlines()
    assert row.startswith("evil\\x1b[2J\\x0aline\\u202e") and total.startswith("1 engines in all")
    assert cli.main(["datasets", "--json"]) == 0
    assert "\x1b" not in capsys.readouterr().out


def test_cli_error_sentences_escape_what_they_quote(pm_home: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ingest", str(tmp_path / "gone\x1b[2J.csv")]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "gone\\x1b[2J.csv does not exist" in err


@pytest.mark.parametrize(("char", "described"), HOSTILE)
@pytest.mark.parametrize("argv", [
    ["outcome", "--dataset", "line-A", "--engine", "ESN{c}", "--cycle", "5", "--event", "failure"],
    ["outcome", "--dataset", "line{c}", "--engine", "ESN-1", "--cycle", "5", "--event", "failure"],
    ["ingest", "fleet.csv", "--dataset", "line{c}"],
    ["score", "--dataset", "line{c}"],
    ["users", "remove", "bob{c}"],
])
def test_cli_arguments_naming_things_refuse_control_and_format_characters(
        pm_home: Path, argv: list[str], char: str, described: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([part.replace("{c}", char) for part in argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    flag = next(part for part in argv if "{c}" in part)
    option = argv[argv.index(flag) - 1] if argv[argv.index(flag) - 1].startswith("--") else "NAME"
    assert f"argument {option}: The " in err and f"contains {described} at position" in err
    assert flag.replace("{c}", char) not in err
    assert not (pm_home / "fleet.duckdb").exists()


def test_cli_arguments_fold_look_alikes(pm_home: Path, cmapss_slice: Slice, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "week1.txt"
    path.write_text("\n".join(cmapss_slice("train_FD001", units=1)) + "\n")
    assert cli.main(["ingest", str(path), "--dataset", "ｌｉｎｅ-A", "--role", "fleet", "--json"]) == 0
    capsys.readouterr()
    with store.connect(read_only=True) as con:
        assert queries.list_datasets(con)["name"].tolist() == ["line-A"]


# ----------------------------------------------------------------------------- user names


def test_user_names_are_normalised_at_creation_and_sign_in(pm_home: Path) -> None:
    user = users.add_user("ａｌｉｃｅ", roles.Role.VIEWER, "correct horse battery")
    assert user.name == "alice"
    assert users.authenticate(" ａｌｉｃｅ ", "correct horse battery") is not None
    assert users.find("alice") is not None
    with pytest.raises(UserError, match=r"^The user name 'bo…' contains a zero-width space \(U\+200B\) at "
                                        r"position 3\.$"):
        users.add_user("bo\u200bb", roles.Role.VIEWER, "correct horse battery")
