# noticewatch: the long-lived service image.
#   docker build -t noticewatch .
#   docker run -v noticewatch-data:/data -v "$PWD/sources.toml:/config/sources.toml:ro" noticewatch
# Stage 1 builds the package and its dependencies into a virtualenv at /opt/venv;
# stage 2 is the slim runtime that gets only that venv (no compilers, no pip cache).

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY storage ./storage
COPY notifiers ./notifiers
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/noticewatch --version

FROM python:3.11-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="noticewatch" \
      org.opencontainers.image.description="Alerting monitor for procurement notices, regulator press pages and news feeds" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/noticewatch/noticewatch" \
      org.opencontainers.image.documentation="https://github.com/noticewatch/noticewatch#running-in-a-container"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    NOTICEWATCH_CONFIG=/config/sources.toml \
    NOTICEWATCH_DATABASE_URL=sqlite:////data/noticewatch.db \
    NOTICEWATCH_HTTP_HOST=0.0.0.0

# A fixed, unprivileged uid/gid so that a host directory mounted at /data can be chowned to it.
RUN groupadd --system --gid 10001 noticewatch \
    && useradd --system --uid 10001 --gid noticewatch --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin noticewatch \
    && mkdir -p /data /config \
    && chown noticewatch:noticewatch /data

COPY --from=build /opt/venv /opt/venv
COPY sources.toml /config/sources.toml

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# Asks the service itself (GET /healthz on its own port); no curl needed in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["noticewatch", "healthcheck"]

# noticewatch is PID 1 and handles SIGTERM itself: it stops fetching, lets deliveries in
# flight finish and exits 0 within 10 s (the default stop timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["noticewatch"]
CMD ["run"]
