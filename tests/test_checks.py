"""The generic value checks of projlab.checks, on their own: what each allows and the phrase it gives."""
from __future__ import annotations

from projlab.checks import choice, devices, existing, folder_name, integer, number, writable_folder


def test_integer_refuses_a_bool_and_names_its_bounds():
    check = integer(1, 4)
    assert check(2) is None
    assert check(True) == "must be an integer in 1..4"
    assert check(5) == "must be an integer in 1..4"
    assert integer(0, null=True)(None) is None
    assert integer(1, why="not empty")(0) == "must be an integer >= 1 (not empty)"


def test_number_refuses_what_is_not_finite():
    check = number(above=0)
    assert check(0.5) is None
    assert check(float("nan")) == "must be a number > 0"
    assert check(0) == "must be a number > 0"


def test_choice_reads_its_options_only_when_a_value_is_checked():
    calls = []

    def options() -> tuple:
        calls.append(1)
        return ("a", "b")

    check = choice(options, null=True)
    assert not calls
    assert check("a") is None and check(None) is None
    assert check("c") == "must be one of a, b or null"
    assert len(calls) == 2


def test_folder_name_asks_for_quotes_on_digits():
    assert folder_name()("run1") is None
    assert folder_name()("a/b") == "must be a plain folder name (no /, not starting with .)"
    assert folder_name()(2024).endswith("(quote digits: '2024')")


def test_devices_takes_a_count_a_list_or_auto():
    check = devices()
    assert all(check(v) is None for v in (1, -1, "auto", "0,1", [0, 2]))
    assert check(0) == "must be a count >= 1, auto, -1, or a list of device ids"


def test_paths_are_judged_without_creating_anything(tmp_path):
    afile = tmp_path / "f.txt"
    afile.write_text("x")
    assert writable_folder("RUNS")(str(tmp_path / "new" / "deeper")) is None
    assert not (tmp_path / "new").exists()
    assert "is a file, not a folder" in writable_folder("RUNS")(str(afile / "sub"))
    assert existing("file")(str(afile)) is None
    assert existing("folder")(str(afile)) == f"'{afile}' is not a folder"
    assert existing("file")(str(tmp_path / "none")) == f"'{tmp_path / 'none'}' does not exist"
