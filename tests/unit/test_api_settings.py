from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from api.settings import TUNABLE_KEYS, SwitchSettingsPatch, effective_settings, file_settings
from tests.api_support import make_config


def test_file_settings_cover_every_tunable_with_collector_half_lives() -> None:
    config = make_config()
    values = file_settings(config.switch[0], config.collector)
    assert set(values) == TUNABLE_KEYS
    assert values["slow_half_life_s"] == config.collector.slow_half_life_s


def test_overrides_apply_and_unknown_keys_are_ignored() -> None:
    config = make_config()
    settings = effective_settings(config.switch[0], config.collector, {"fib_cap_ipv4": 7, "retired_key": 1})
    assert settings.fib_cap_ipv4 == 7
    assert settings.fib_cap_ipv6 == config.switch[0].fib_cap_ipv6


def test_overrides_conflicting_with_a_changed_file_fall_back_to_the_file(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(switch_extra={"request_ttl_max_s": 100, "request_ttl_default_s": 50})
    with caplog.at_level(logging.WARNING, logger="api.settings"):
        settings = effective_settings(config.switch[0], config.collector,
                                      {"request_ttl_default_s": 500, "fib_cap_ipv4": 7})
    assert (settings.request_ttl_default_s, settings.fib_cap_ipv4) == (50, 100)
    assert "conflict" in caplog.text


def test_patch_separates_values_to_set_from_keys_to_clear() -> None:
    patch = SwitchSettingsPatch.model_validate({"fib_cap_ipv4": 10, "margin": None})
    assert patch.changes() == ({"fib_cap_ipv4": 10}, {"margin"})
    assert SwitchSettingsPatch.model_validate({}).changes() == ({}, set())
    with pytest.raises(ValidationError):
        SwitchSettingsPatch.model_validate({"loop_period_s": 1})
