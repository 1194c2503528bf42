"""topfib's configuration: TOML validated by pydantic models that reject unknown keys.

Every key is documented (with its default) in README.md under "Configuration".
"""

from __future__ import annotations

import ipaddress
import re
import stat
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from topfib.collector.common.special_use import SpecialUseFilter
from topfib.controller.addresses import parse_ip
from topfib.controller.state.redis_connect import check_store_url

MD5_PASSWORD_MAX = 80  # TCP_MD5SIG_MAXKEYLEN (Linux)
MD5_PASSWORD = re.compile(rf"[\x20-\x7e]{{1,{MD5_PASSWORD_MAX}}}")
MAX_GTSM_HOPS = 254
MAX_GRACEFUL_RESTART_S = 4095  # RFC 4724's Restart Time is 12 bits


class _Strict(BaseModel):
    # TOML has inf and nan: no key means "never" by infinity, and an infinite TTL or dwell time
    # would pass check-config and then fail every settings computation at run time
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def split_host_port(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"[::]:6343"`` → (host, port); raises ValueError."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    parse_ip(host)
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {value!r}")
    return host, port


class ApiConfig(_Strict):
    listen: str = "127.0.0.1:8080"
    max_body_bytes: int = Field(65536, gt=0)
    request_batch_max: int = Field(100, gt=0)
    rate_limit_per_s: float = Field(50.0, gt=0)
    rate_limit_burst: int = Field(100, gt=0)
    # TLS (PEM files); with a client CA, clients must present a certificate it signed (mutual TLS)
    tls_cert_file: str | None = Field(None, min_length=1)
    tls_key_file: str | None = Field(None, min_length=1)
    tls_client_ca_file: str | None = Field(None, min_length=1)
    # connection limits: past max_connections accept pauses; slow or idle clients are closed
    max_connections: int = Field(1024, gt=0, le=1_000_000)
    max_connections_per_client: int = Field(64, gt=0, le=1_000_000)  # per IPv4 address / IPv6 /64
    request_read_timeout_s: float = Field(10.0, gt=0, le=3600)
    keep_alive_timeout_s: int = Field(5, gt=0, le=3600)
    docs: bool = False  # Swagger UI at /docs (loads its scripts from a CDN) and ReDoc at /redoc
    metrics_token_required: bool = False  # /metrics needs a viewer or operator token
    top_max: int = Field(10_000, gt=0, le=1_000_000)  # most prefixes one GET /v1/top answers

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_host_port(value)
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("api.tls_cert_file and api.tls_key_file go together: set both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("api.tls_client_ca_file needs api.tls_cert_file and api.tls_key_file")
        return self


class CollectorConfig(_Strict):
    sflow_listen: list[str] = ["0.0.0.0:6343"]
    netflow_listen: list[str] = []
    receive_buffer_bytes: int = Field(32 * 1024 * 1024, gt=0)
    fast_half_life_s: float = Field(30.0, gt=0)
    slow_half_life_s: float = Field(3600.0, gt=0)
    # the fast rate counts for selection only through its 95 % lower bound, from this many samples
    fast_min_samples: float = Field(4.0, ge=0)

    @field_validator("sflow_listen", "netflow_listen")
    @classmethod
    def _listen(cls, value: list[str]) -> list[str]:
        for item in value:
            split_host_port(item)
        return value


class StoreConfig(_Strict):
    url: str = "memory://"
    # With Redis: hold a per-switch lease so only one of several topfib processes programs a switch.
    # A lone controller may turn it off to keep programming through a Redis outage.
    lease: bool = True

    # With redis+sentinel://: a write is acknowledged only once this many replicas have it (WAIT).
    replica_acks: int = Field(1, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_store_url(value)
        return value


class StateConfig(_Strict):
    """Warm state for restarts and takeovers (controller/service/warm_keeper.py): rate snapshots and the
    last desired FIB, in the Redis store, or with the memory store in ``directory``."""

    snapshot_interval_s: float = Field(60.0, gt=0, le=86400)
    max_age_s: float = Field(3600.0, gt=0, le=7 * 86400)  # an older snapshot is ignored: start cold
    max_entries: int = Field(0, ge=0, le=500_000)  # rate rows per family; 0: 4 × the family's cap
    directory: str | None = Field(None, min_length=1)  # memory store: one file per switch here


class ExabgpConfig(_Strict):
    executable: str = ""
    reactor_speed: float = Field(10.0, gt=0)
    restart_backoff_max_s: float = Field(30.0, gt=0)
    netns: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    runtime_dir: str | None = None


# Settings the API may override only up to a ceiling from the file (``switch[].<key>_max``).
CEILING_KEYS = ("fib_cap_ipv4", "fib_cap_ipv6", "fib_cap_ipv4_24", "request_ttl_max_s", "max_requests_per_ap")


class SwitchConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    neighbor: str
    local_address: str
    local_as: int = Field(gt=0, lt=2**32)
    peer_as: int = Field(gt=0, lt=2**32)
    router_id: str | None = None
    bgp_port: int = Field(179, gt=0, lt=65536)
    passive: bool = False
    sflow_agents: list[str] = []
    # UDP sources (addresses or CIDRs) flow datagrams are accepted from; None: the sflow_agents
    flow_sources: list[str] | None = None
    fib_cap_ipv4: int = Field(gt=0)
    fib_cap_ipv6: int = Field(gt=0)
    fib_cap_ipv4_24: int = Field(0, ge=0)
    loop_period_s: float = Field(1.0, gt=0)
    rib_file: str | None = None
    request_ttl_default_s: float = Field(600.0, gt=0)
    request_ttl_max_s: float = Field(86400.0, gt=0)
    max_requests_per_ap: int = Field(1000, gt=0)
    margin: float = Field(0.2, ge=0)
    min_dwell_s: float = Field(300.0, ge=0)
    min_swap_gain: float = Field(0.03, ge=0, le=1)
    # install the path sampled traffic is seen to take (where one dominates) instead of the best
    follow_observed_paths: bool = False
    # RFC 2385 TCP-MD5 on the BGP session (the switch needs the same password); never shown
    md5_password: SecretStr | None = None
    # GTSM (RFC 5082): the switch is this many hops away (1: directly connected); 0: off
    ttl_security: int = Field(0, ge=0, le=MAX_GTSM_HOPS)
    # BGP graceful restart (RFC 4724): the switch keeps topfib's routes as stale this long while
    # topfib restarts; 0: off (the switch drops them at once). A 12-bit field on the wire.
    graceful_restart_s: int = Field(0, ge=0, le=MAX_GRACEFUL_RESTART_S)
    # Ceilings of the API's overrides (PUT /v1/config/switches): None = the file's own value, so
    # a leaked operator token can lower these but never raise them past what the file allows.
    fib_cap_ipv4_max: int | None = Field(None, gt=0)
    fib_cap_ipv6_max: int | None = Field(None, gt=0)
    fib_cap_ipv4_24_max: int | None = Field(None, ge=0)
    request_ttl_max_s_max: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_requests_per_ap_max: int | None = Field(None, gt=0)
    # compare MED between paths from different neighbour ASes (as the switch must, to agree)
    always_compare_med: bool = False
    # the switch's addresses besides `neighbor` (a path with one of them as next hop is unusable)
    own_addresses: list[str] = []

    @field_validator("neighbor", "local_address")
    @classmethod
    def _address(cls, value: str) -> str:
        parse_ip(value, allow_scope=False)  # rendered verbatim into ExaBGP's config
        return value

    @field_validator("md5_password")
    @classmethod
    def _md5_password(cls, value: SecretStr | None) -> SecretStr | None:
        # the message never quotes the value: check-config output and logs must not show it
        if value is not None and not MD5_PASSWORD.fullmatch(value.get_secret_value()):
            raise ValueError(f"must be 1 to {MD5_PASSWORD_MAX} printable ASCII characters (space included)")
        return value

    @field_validator("router_id")
    @classmethod
    def _router_id(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.IPv4Address(value)
        return value

    @field_validator("sflow_agents", "own_addresses")
    @classmethod
    def _agents(cls, value: list[str]) -> list[str]:
        return [str(parse_ip(a)) for a in value]

    @field_validator("flow_sources")
    @classmethod
    def _flow_sources(cls, value: list[str] | None) -> list[str] | None:
        # an address is its own /32 (/128); host bits set in a CIDR is a typo, not a wider net
        return None if value is None else [str(ipaddress.ip_network(s, strict=True)) for s in value]

    @property
    def effective_flow_sources(self) -> list[str]:
        """Where this switch's flow datagrams may come from (``flow_sources``, else its agents)."""
        return self.flow_sources if self.flow_sources is not None else self.sflow_agents

    @model_validator(mode="after")
    def _ttl_bounds(self) -> SwitchConfig:
        if self.request_ttl_default_s > self.request_ttl_max_s:
            raise ValueError("request_ttl_default_s must not exceed request_ttl_max_s")
        for key, ceiling in self.override_ceilings().items():
            if getattr(self, key) > ceiling:
                raise ValueError(f"{key}_max ({ceiling:g}) must not be below {key} ({getattr(self, key):g})")
        return self

    def override_ceilings(self) -> dict[str, int | float]:
        """The highest value an API override may give each capped setting (``<key>_max``)."""
        return {key: ceiling if (ceiling := getattr(self, f"{key}_max")) is not None else getattr(self, key)
                for key in CEILING_KEYS}


class TokenConfig(_Strict):
    name: str = Field(min_length=1)
    role: Literal["ap", "operator", "viewer"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def repeated_token(tokens: Sequence[TokenConfig]) -> str | None:
    """Why ``tokens`` cannot be used together (a name or hash given twice: who would a request
    be?), or None."""
    seen_names: dict[str, int] = {}
    seen_hashes: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token.name in seen_names:
            return f"token[{index}].name {token.name!r} repeats token[{seen_names[token.name]}].name"
        if token.sha256 in seen_hashes:
            return f"token[{index}].sha256 repeats token[{seen_hashes[token.sha256]}].sha256"
        seen_names[token.name] = index
        seen_hashes[token.sha256] = index
    return None


class MatrixConfig(_Strict):
    """The traffic matrix: bytes and packets per interval by (switch, input interface, BGP
    next-hop, peer destination ASN), in memory for ``GET /v1/matrix`` and, when ``directory`` is
    set, written to rotated JSON-lines or CSV files."""

    enabled: bool = True
    interval_s: int = Field(60, ge=1, le=86400)
    keep_intervals: int = Field(60, ge=1, le=10_000)
    max_rows: int = Field(10_000, ge=1, le=1_000_000)  # per switch and interval, "other" row included
    directory: str | None = Field(None, min_length=1)
    format: Literal["jsonl", "csv"] = "jsonl"
    file_interval_s: int | None = Field(None, ge=1, le=7 * 86400)  # None: one file per interval
    keep_files: int = Field(1440, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _consistent(self) -> MatrixConfig:
        if self.directory is not None and not self.enabled:
            raise ValueError("matrix.directory is set but matrix.enabled is false")
        if self.file_interval_s is not None and self.file_interval_s % self.interval_s:
            raise ValueError(f"matrix.file_interval_s must be a multiple of matrix.interval_s "
                             f"({self.interval_s})")
        return self

    @property
    def effective_file_interval_s(self) -> int:
        return self.file_interval_s if self.file_interval_s is not None else self.interval_s


class SpecialUseConfig(_Strict):
    """Special-use space never ingested, selected, requested or pinned (collector/common/special_use.py).

    Loopback, link-local, multicast, reserved, IPv4-mapped and /0 are always refused."""

    documentation: bool = True  # 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
    shared_address_space: bool = False  # 100.64/10 (CGNAT): routable inside some networks
    extra: list[str] = []  # more prefixes to refuse, with everything inside them

    @field_validator("extra")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        prefixes = [str(ipaddress.ip_network(item, strict=True)) for item in value]
        SpecialUseFilter.from_settings(extra=prefixes)  # what run builds: a scope id ("%eth0") fails here
        return prefixes

    def build(self) -> SpecialUseFilter:
        return SpecialUseFilter.from_settings(documentation=self.documentation,
                                              shared_address_space=self.shared_address_space,
                                              extra=self.extra)


class TopfibConfig(_Strict):
    api: ApiConfig = ApiConfig()
    collector: CollectorConfig = CollectorConfig()
    store: StoreConfig = StoreConfig()
    state: StateConfig = StateConfig()
    exabgp: ExabgpConfig = ExabgpConfig()
    matrix: MatrixConfig = MatrixConfig()
    special_use: SpecialUseConfig = SpecialUseConfig()
    switch: list[SwitchConfig] = Field(min_length=1)
    token: list[TokenConfig] = []

    @field_validator("token")
    @classmethod
    def _unique_tokens(cls, value: list[TokenConfig]) -> list[TokenConfig]:
        problem = repeated_token(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> TopfibConfig:
        names = [s.name for s in self.switch]
        if len(set(names)) != len(names):
            raise ValueError("switch names must be unique")
        owners: dict[str, str] = {}
        for sw in self.switch:
            for agent in sw.sflow_agents:
                if agent in owners:
                    raise ValueError(f"sflow agent {agent} listed for {owners[agent]} and {sw.name}")
                owners[agent] = sw.name
        api_port = split_host_port(self.api.listen)[1]
        if any(split_host_port(item)[1] == api_port for item in self.collector.sflow_listen):
            raise ValueError("api.listen and collector.sflow_listen use the same port")
        if any(split_host_port(item)[1] == api_port for item in self.collector.netflow_listen):
            raise ValueError("api.listen and collector.netflow_listen use the same port")
        flow = [split_host_port(item) for item in self.collector.sflow_listen + self.collector.netflow_listen]
        if len(set(flow)) != len(flow):
            raise ValueError("collector.sflow_listen and collector.netflow_listen repeat an address")
        return self

    def switch_named(self, name: str) -> SwitchConfig | None:
        return next((s for s in self.switch if s.name == name), None)


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key."""


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{key}: {err['msg']}")
    return "; ".join(lines)


def parse_config(text: str) -> TopfibConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    try:
        return TopfibConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None


def load_config(path: Path) -> TopfibConfig:
    try:
        _check_not_writable_by_anyone(path)
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_config(text)


def _check_not_writable_by_anyone(path: Path) -> None:
    """The file holds the API tokens: refuse it when any local user could rewrite it (world-writable,
    through a symlink too) or replace it (in a world-writable directory that is not sticky)."""
    target = path.resolve()
    if target.stat().st_mode & stat.S_IWOTH:
        raise ConfigError(f"{target} is writable by anyone (it holds the API tokens): chmod o-w it")
    for directory in {path.absolute().parent, target.parent}:
        mode = directory.stat().st_mode
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            raise ConfigError(f"directory {directory} is writable by anyone, who could replace {path.name} "
                              "(it holds the API tokens): chmod o-w it")
