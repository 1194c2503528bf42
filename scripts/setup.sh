# Sourced by scripts/test.sh and scripts/demo.sh: install system packages and the venv, idempotently.
APT_PACKAGES="bird2 frr redis-server redis-sentinel iproute2 pmacct chromium prometheus"
missing=""
for pkg in $APT_PACKAGES; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null || true
        apt-get install -y -q --no-install-recommends $missing >/dev/null
    else
        sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
    fi
fi
# Debian starts services on install; topfib's tests start their own on loopback ports.
systemctl disable --now bird frr redis-server redis-sentinel prometheus >/dev/null 2>&1 || true
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stale=0
for f in pyproject.toml setup.py collector/sflow/_sflow_fast.c collector/rib/_exabgp_fast.c collector/rib/_keymap_fast.c; do
    [ -f .venv/.installed ] && [ ! "$f" -nt .venv/.installed ] || stale=1
done
if [ "$stale" -eq 1 ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/pip install -q -e '.[dev]'
    touch .venv/.installed
fi
