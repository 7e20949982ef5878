"""Where the CLI finds its API: environment first, then the nearest .homerun/env."""

from __future__ import annotations

from pathlib import Path

import pytest

from homerun.client import DEFAULT_URL, ConfigError, load_config


def write_env(folder: Path, text: str) -> None:
    (folder / ".homerun").mkdir(parents=True)
    (folder / ".homerun" / "env").write_text(text)


def test_env_file_found_in_a_parent_folder(tmp_path: Path) -> None:
    write_env(
        tmp_path,
        "# written by make up\nHOMERUN_URL=http://api:8000/\nexport HOMERUN_TOKEN='hr_x'\n",
    )
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    config = load_config(deep, env={})
    assert (config.url, config.token) == ("http://api:8000", "hr_x")
    assert str(tmp_path / ".homerun" / "env") in config.source


def test_environment_wins_key_by_key(tmp_path: Path) -> None:
    write_env(tmp_path, "HOMERUN_URL=http://file:1\nHOMERUN_TOKEN=from-file\n")
    config = load_config(tmp_path, env={"HOMERUN_TOKEN": "from-env"})
    assert (config.url, config.token) == ("http://file:1", "from-env")


def test_defaults_without_any_configuration(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={})
    assert (config.url, config.token) == (DEFAULT_URL, None)


def test_malformed_env_file_names_the_line(tmp_path: Path) -> None:
    write_env(tmp_path, "HOMERUN_URL=http://x\nnonsense\n")
    with pytest.raises(ConfigError, match=r"env:2: expected KEY=VALUE"):
        load_config(tmp_path, env={})
