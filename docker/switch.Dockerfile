FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends bird2 iproute2 \
    && rm -rf /var/lib/apt/lists/*
