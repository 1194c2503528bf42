"""Settings in force: the file's values, the overrides on top, the file's ceilings over both."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.api_support import make_config
from topfib.api.settings import SwitchSettingsPatch, patched_settings
from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.controller.config import ConfigError, parse_config
from topfib.controller.state.settings import (
    TUNABLE_KEYS,
    SettingsError,
    check_settings,
    effective_settings,
    file_settings,
    selection_policy,
)
from topfib.controller.state.store import MemoryStore, StoreUnavailable
from topfib.controller.switch.controller import SwitchController


def test_file_settings_cover_every_tunable_and_no_half_life() -> None:
    config = make_config()
    values = file_settings(config.switch[0])
    assert set(values) == TUNABLE_KEYS
    assert not {"fast_half_life_s", "slow_half_life_s"} & TUNABLE_KEYS  # [collector] sets them for all


def test_overrides_apply_and_unknown_keys_are_ignored() -> None:
    config = make_config()
    stored = {"fib_cap_ipv4": 7, "retired_key": 1, "slow_half_life_s": 9}
    settings = effective_settings(config.switch[0], stored)
    assert settings.fib_cap_ipv4 == 7
    assert settings.fib_cap_ipv6 == config.switch[0].fib_cap_ipv6


def test_overrides_conflicting_with_a_changed_file_fall_back_to_the_file(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(switch_extra={"request_ttl_max_s": 100, "request_ttl_default_s": 50})
    with caplog.at_level(logging.WARNING, logger="topfib.controller.state.settings"):
        settings = effective_settings(config.switch[0], {"request_ttl_default_s": 500, "fib_cap_ipv4": 7})
    assert (settings.request_ttl_default_s, settings.fib_cap_ipv4) == (50, 100)
    assert "conflict" in caplog.text


@pytest.mark.parametrize(("key", "value"), [
    ("fib_cap_ipv4", 101), ("fib_cap_ipv4", 2147483647), ("fib_cap_ipv6", 51), ("fib_cap_ipv4_24", 1),
    ("request_ttl_max_s", 86400.5), ("request_ttl_max_s", 1e300), ("max_requests_per_ap", 2147483647),
])
def test_the_file_value_is_the_default_ceiling(key: str, value: float) -> None:
    switch = make_config().switch[0]  # caps 100 / 50, ipv4_24 0, TTL max 86400, 1000 requests per AP
    with pytest.raises(SettingsError) as raised:
        check_settings(switch, {**file_settings(switch), key: value})
    assert raised.value.field == key and f"switch[].{key}_max" in raised.value.message
    # the same override stored behind the API's back (an old Redis, another tool) never applies
    assert getattr(effective_settings(switch, {key: value}), key) == getattr(switch, key)


def test_explicit_ceilings_allow_raising_up_to_them_and_lowering_is_always_allowed() -> None:
    switch = make_config(switch_extra={"fib_cap_ipv4_max": 500, "fib_cap_ipv4_24_max": 64,
                                       "request_ttl_max_s_max": 172800.0,
                                       "max_requests_per_ap_max": 5000}).switch[0]
    settings = check_settings(switch, {**file_settings(switch), "fib_cap_ipv4": 500, "fib_cap_ipv4_24": 64,
                                       "request_ttl_max_s": 172800.0, "max_requests_per_ap": 5000})
    assert (settings.fib_cap_ipv4, settings.request_ttl_max_s) == (500, 172800.0)
    with pytest.raises(SettingsError, match="fib_cap_ipv4: at most 500"):
        check_settings(switch, {**file_settings(switch), "fib_cap_ipv4": 501})
    assert check_settings(switch, {**file_settings(switch), "fib_cap_ipv6": 1}).fib_cap_ipv6 == 1


def test_a_ceiling_below_the_files_own_value_is_a_config_error_naming_the_key() -> None:
    base = ('[[switch]]\nname="s"\nneighbor="10.0.0.2"\nlocal_address="10.0.0.1"\nlocal_as=1\npeer_as=1\n'
            'fib_cap_ipv4=10\nfib_cap_ipv6=1\n')
    with pytest.raises(ConfigError, match="fib_cap_ipv4_max"):
        parse_config(base + "fib_cap_ipv4_max = 5\n")
    with pytest.raises(ConfigError, match="request_ttl_max_s_max"):
        parse_config(base + "request_ttl_max_s_max = 60.0\n")
    with pytest.raises(ConfigError, match="fib_cap_ipv6_max"):
        parse_config(base + "fib_cap_ipv6_max = 0\n")


def test_patch_separates_values_to_set_from_keys_to_clear() -> None:
    patch = SwitchSettingsPatch.model_validate({"fib_cap_ipv4": 10, "margin": None})
    assert patch.changes() == ({"fib_cap_ipv4": 10}, {"margin"})
    assert SwitchSettingsPatch.model_validate({}).changes() == ({}, set())
    for refused in ({"loop_period_s": 1}, {"fast_half_life_s": 5.0}, {"slow_half_life_s": 60.0}):
        with pytest.raises(ValidationError):
            SwitchSettingsPatch.model_validate(refused)


def test_a_patch_is_checked_with_what_is_stored_and_the_ceilings() -> None:
    switch = make_config().switch[0]
    assert patched_settings(switch, {"fib_cap_ipv4": 7}, {"margin": 1.0}, set()).fib_cap_ipv4 == 7
    assert patched_settings(switch, {"fib_cap_ipv4": 7}, {}, {"fib_cap_ipv4"}).fib_cap_ipv4 == 100
    with pytest.raises(SettingsError) as raised:
        patched_settings(switch, {"request_ttl_max_s": 100.0}, {"request_ttl_default_s": 200.0}, set())
    assert raised.value.field == "request_ttl_default_s"


def test_the_controller_reads_the_same_settings_as_the_api(tmp_path: Path) -> None:
    """Overrides used to be applied twice: the controller cast them with int()/float() and no
    bounds, so a stored cap above the file's ceiling switched the cap off."""
    config = make_config()
    store = MemoryStore()
    ctl = SwitchController(config.switch[0], config, PrefixRates(30.0, 3600.0), store, threading.Lock(),
                           tmp_path / "run")

    async def policy_with(overrides: dict[str, float]) -> tuple[int, int, float]:
        await store.update_config_overrides("edge1", overrides, set())
        policy = await ctl.inputs.effective_policy(ctl.switch)
        stored = (await store.config_overrides())["edge1"]
        assert policy == selection_policy(config.switch[0], effective_settings(config.switch[0], stored))
        return policy.cap_ipv4, policy.cap_ipv6, policy.margin

    assert asyncio.run(policy_with({"fib_cap_ipv4": 40, "margin": 0.5})) == (40, 50, 0.5)
    assert asyncio.run(policy_with({"fib_cap_ipv4": 2147483647})) == (100, 50, 0.2)  # all ignored
    assert asyncio.run(policy_with({"fib_cap_ipv4": 100, "fib_cap_ipv6": 3})) == (100, 3, 0.5)


@pytest.mark.parametrize("stored", [
    {"fib_cap_ipv4": True}, {"max_requests_per_ap": 7.5}, {"margin": float("nan")},
    {"fib_cap_ipv4": 2147483647}, {"request_ttl_max_s": float("inf")},
])
def test_values_written_to_the_store_directly_pass_the_same_rule(stored: dict[str, int | float]) -> None:
    """Whatever reaches the store without the API (a Redis client, an old version) is checked
    as a PUT would be: the file's settings apply instead."""
    switch = make_config().switch[0]
    assert effective_settings(switch, stored) == effective_settings(switch, {})


def test_a_reload_applies_its_caps_while_the_store_has_never_answered(tmp_path: Path) -> None:
    """Started during a Redis outage (no overrides ever read): a SIGHUP that lowers the cap must
    still lower it (the controller kept its policy of the file it started with)."""

    class Unreachable(MemoryStore):
        async def config_overrides(self) -> dict[str, dict[str, float | int]]:
            raise StoreUnavailable("redis unreachable and nothing cached for config")

    config = make_config()
    ctl = SwitchController(config.switch[0], config, PrefixRates(30.0, 3600.0), Unreachable(),
                           threading.Lock(), tmp_path / "run")
    assert asyncio.run(ctl.inputs.effective_policy(ctl.switch)).cap_ipv4 == 100
    lowered = config.switch[0].model_copy(update={"fib_cap_ipv4": 10})
    ctl.reconfigure(lowered, config.model_copy(update={"switch": [lowered]}))
    assert asyncio.run(ctl.inputs.effective_policy(ctl.switch)).cap_ipv4 == 10
