# topfib with ExaBGP 5 in one image, installed from topfib's wheel. The switch, Redis and the sFlow
# replayer run as their own services (see docker-compose.yml).

# Build stage: the wheel, with the C fast paths compiled (the runtime stage has no compiler).
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE setup.py ./
COPY collector ./collector
COPY controller ./controller
COPY api ./api
COPY exabgp ./exabgp
# links to the folders above: the wheel installs them as topfib.collector, topfib.controller, ...
COPY topfib ./topfib
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Runtime stage: the wheel and its dependencies (ExaBGP among them), nothing of the source tree.
FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/topfib-*.whl && rm -rf /wheels \
    && useradd --system --uid 10179 --user-group --home-dir /var/lib/topfib --create-home \
       --shell /usr/sbin/nologin topfib
# Not root, and no capability is needed as configured here: topfib connects to the switch (BGP is
# outbound), and its API (8080) and sFlow (6343) ports are unprivileged. A passive session
# (switch[].passive) listens on 179, which takes CAP_NET_BIND_SERVICE; Docker's --cap-add does not
# reach a non-root user (no ambient capabilities), so give the container's own network namespace a
# lower unprivileged-port floor instead: --sysctl net.ipv4.ip_unprivileged_port_start=179.
# The namespace demo (`topfib demo` as root: netns, veths, BIRD) needs CAP_SYS_ADMIN and CAP_NET_ADMIN
# and is not for this container; run it on a host.
USER topfib
WORKDIR /var/lib/topfib
EXPOSE 8080/tcp 6343/udp 179/tcp
ENTRYPOINT ["topfib"]
CMD ["run", "--config", "/etc/topfib/topfib.toml"]
