# A first working image (the container issue hardens it: two stages, healthcheck...).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NOTICEWATCH_CONFIG=/config/sources.toml \
    NOTICEWATCH_DATABASE_URL=sqlite:////data/noticewatch.db

WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY storage ./storage
COPY notifiers ./notifiers
RUN pip install . && rm -rf /src

COPY sources.toml /config/sources.toml
RUN useradd --system --uid 10001 --home-dir /data noticewatch \
    && mkdir -p /data && chown noticewatch /data
USER noticewatch
WORKDIR /data
VOLUME ["/data"]

ENTRYPOINT ["noticewatch"]
CMD ["run"]
