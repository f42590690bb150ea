"""Settings behind the login: the Secure cookie default, the flags and the first-run link."""

from __future__ import annotations

import pytest

from footfall.api.first_run import login_link_base
from footfall.cli import _parser, _settings, main
from footfall.config import Settings
from footfall.errors import ConfigurationError


@pytest.mark.parametrize(
    ("host", "secure"),
    [
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
        ("0.0.0.0", True),
        ("192.0.2.10", True),
        ("footfall.example.com", True),
    ],
)
def test_secure_cookie_default_by_host(host: str, secure: bool) -> None:
    assert Settings(host=host).session_cookie_secure is secure


@pytest.mark.parametrize("flag", [True, False])
def test_secure_cookie_flag_wins(flag: bool) -> None:
    assert Settings(host="127.0.0.1", secure_cookies=flag).session_cookie_secure is flag
    assert Settings(host="0.0.0.0", secure_cookies=flag).session_cookie_secure is flag


def test_serve_flags_parsed() -> None:
    args = _parser().parse_args(
        ["serve", "--public-dashboard", "--public-metrics", "--no-secure-cookies"]
    )

    settings = _settings(args)

    assert settings.public_dashboard is True
    assert settings.public_metrics is True
    assert settings.secure_cookies is False


def test_serve_flags_default_off() -> None:
    settings = _settings(_parser().parse_args(["serve"]))

    assert settings.public_dashboard is False
    assert settings.public_metrics is False
    assert settings.secure_cookies is None


def test_public_dashboard_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOOTFALL_PUBLIC_DASHBOARD", "true")

    assert _settings(_parser().parse_args(["serve"])).public_dashboard is True


def test_invalid_flag_environment_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOOTFALL_SECURE_COOKIES", "maybe")

    with pytest.raises(ConfigurationError, match="invalid FOOTFALL_SECURE_COOKIES='maybe'"):
        _parser()


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
        ("footfall.example.com", "http://footfall.example.com:8000"),
    ],
)
def test_login_link_base(host: str, base: str) -> None:
    assert login_link_base(Settings(host=host, port=8000)) == base


def test_invalid_flag_environment_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FOOTFALL_PUBLIC_METRICS", "2")

    assert main(["serve"]) == 2
    assert "invalid FOOTFALL_PUBLIC_METRICS='2'" in capsys.readouterr().err
