"""sandkasten.yaml: the examples load, every option maps onto traitlets, bad files are clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from sandkasten_kernel.engine.config import (
    CONFIG_CLASSES,
    CONFIG_ENV,
    SECTIONS,
    ConfigError,
    Sandkasten,
    find_config,
    listen_address,
    load_settings,
    user_config_path,
)
from sandkasten_kernel.engine.pool_demand import PoolSize

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sandkasten.yaml"
    path.write_text(text)
    return str(path)


def test_the_full_example_names_every_option_with_its_default() -> None:
    data = yaml.safe_load((EXAMPLES / "sandkasten.full.yaml").read_text())
    defaults = load_settings(None)
    for name, trait in Sandkasten.class_traits(config=True).items():
        assert data[name] == trait.default(), name
    for section, cls in SECTIONS.items():
        documented = data[section]
        assert set(documented) == set(cls.class_traits(config=True)), section
        for option, value in documented.items():
            assert getattr(getattr(defaults, section), option) == value, (section, option)
    load_settings(str(EXAMPLES / "sandkasten.full.yaml"))


def test_every_option_has_help() -> None:
    for cls in CONFIG_CLASSES:
        for name, trait in cls.class_traits(config=True).items():
            assert trait.help, "%s.%s has no help" % (cls.__name__, name)


def test_the_minimal_example_and_overrides() -> None:
    settings = load_settings(str(EXAMPLES / "sandkasten.minimal.yaml"))
    assert settings.server.api_key == "change-me"
    assert settings.pool.images == {"python": 2}
    override = Config()
    override.SandkastenPool.images = {"node": 1}
    override.SandkastenDefaults.memory_mb = 1024
    settings = load_settings(str(EXAMPLES / "sandkasten.minimal.yaml"), override)
    assert settings.pool.images == {"node": 1} and settings.defaults.memory_mb == 1024


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("poool: {}", "unknown key 'poool'"),
        ("pool: {imgs: {python: 1}}", "unknown key 'pool.imgs'"),
        ("defaults: {memory_mb: lots}", "bad value for 'defaults.memory_mb': expected an int"),
        ("defaults: {cpus: 0}", "bad value for 'defaults.cpus': must be greater than 0"),
        ("pool: {images: {python: -1}}", "bad value for 'pool.images'"),
        ("pool: {images: {python: {min: 4, max: 2}}}", "pool size of 'python': max (2) is below min (4)"),
        ("pool: {images: {python: {floor: 2}}}", "give {min: N, max: M}"),
        ("pool: {images: {python: 5000}}", "a whole number from 0 to 200"),
        ("pool: {parallel_starts: 0}", "bad value for 'pool.parallel_starts': must be at least 1"),
        ("session: {ttl_s: -5}", "bad value for 'session.ttl_s': must not be negative"),
        ("security: {allow_network: maybe}", "bad value for 'security.allow_network'"),
        ("defaults: 5", "'defaults' must be a mapping"),
        ("[1, 2]", "the top level must be a mapping"),
        ("pool: {images: [unclosed", "not valid YAML"),
    ],
)
def test_bad_files_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert message in str(error.value)
    assert str(error.value).startswith(path)


def test_a_missing_file_and_an_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(str(tmp_path / "absent.yaml"))
    assert load_settings(write(tmp_path, "")).pool.images == {"python": {"min": 2, "max": 32}}


def test_images_outside_the_allow_list_are_refused() -> None:
    override = Config()
    override.SandkastenSecurity.allowed_images = ["python"]
    settings = load_settings(None, override)
    assert settings.resolve_image(None) == "sandkasten/runtime:python"
    with pytest.raises(ConfigError, match="image 'node' is not allowed"):
        settings.resolve_image("node")


def test_every_entry_point_finds_the_same_file_in_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config, $SANDKASTEN_CONFIG, ./sandkasten.yaml, the file `serve` made for this user, /etc/sandkasten."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    made_by_serve = tmp_path / "data" / "sandkasten" / "sandkasten.yaml"
    assert user_config_path() == str(made_by_serve)
    system_file_present = os.path.exists("/etc/sandkasten/sandkasten.yaml")
    assert find_config() == ("/etc/sandkasten/sandkasten.yaml" if system_file_present else None)
    made_by_serve.parent.mkdir(parents=True)
    made_by_serve.write_text("pool: {images: {}}\n")
    assert find_config() == str(made_by_serve)
    (tmp_path / "sandkasten.yaml").write_text("pool: {images: {}}\n")
    assert find_config() == "sandkasten.yaml"
    monkeypatch.setenv(CONFIG_ENV, "/from/env.yaml")
    assert find_config() == "/from/env.yaml"
    assert find_config("given.yaml") == "given.yaml"


def test_listen_is_host_and_port() -> None:
    """One parser for `serve` and for agents' processes looking for the server."""
    assert listen_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert listen_address("[::1]:8888") == ("::1", 8888)
    for bad in ("8080", "localhost", "host:port", ":80"):
        with pytest.raises(ConfigError, match="listen must be host:port"):
            listen_address(bad)


def test_a_built_in_images_full_reference_is_its_short_name() -> None:
    """The seed's own config names the image in full: pool.images {sandkasten/runtime:python: 3}."""
    override = Config()
    override.SandkastenPool.images = {"sandkasten/runtime:python": 3}
    settings = load_settings(None, override)
    assert settings.pool_sizes() == {"sandkasten/runtime:python": PoolSize(3, 3)}
    assert settings.resolve_image("sandkasten/runtime:node") == "sandkasten/runtime:node"
    override.SandkastenSecurity.allowed_images = ["sandkasten/runtime:python"]
    narrowed = load_settings(None, override)
    assert narrowed.resolve_image("python") == "sandkasten/runtime:python"
    with pytest.raises(ConfigError, match="image 'node' is not allowed"):
        narrowed.resolve_image("sandkasten/runtime:node")
