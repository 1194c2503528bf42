# topfib with ExaBGP 5 in one image. The switch, Redis and the sFlow replayer run as their own services
# (see docker-compose.yml).
FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev iproute2 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/topfib
COPY pyproject.toml README.md setup.py ./
COPY collector ./collector
COPY controller ./controller
COPY api ./api
COPY exabgp ./exabgp
# Editable: topfib finds exabgp/ (ExaBGP's config template and the bridge), the dashboard's files and
# the demo table beside its packages, as in a source checkout.
RUN pip install --no-cache-dir -e .
EXPOSE 8080/tcp 6343/udp 179/tcp
ENTRYPOINT ["topfib"]
CMD ["run", "--config", "/etc/topfib/topfib.toml"]
