# The eLibrary SRE toolkit in one image: the app, the exporter and every `sre` command.
#
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t elibrary-sre .
#
# Three stages on the same base: `build` turns the project and its pinned dependencies into
# wheels, `install` puts them into a virtualenv from those wheels only (no index), and the
# runtime stage copies that virtualenv alone: no pip, pip cache, wheels, sources or tests.
# Every dependency ships binary wheels for CPython 3.11 on glibc, so no stage needs a
# compiler; one that only came as source would fail the build stage, not slip in.
# The base is any Debian-based image with Python 3.11 and its venv module: the official
# python image by default, or scripts/make-base-image's debootstrap one where registries are
# out of reach (--build-arg BASE_IMAGE=elibrary-base:bookworm-py311). `python3 -m venv`
# makes both behave the same, whether python3 lives in /usr/local/bin or /usr/bin.
# See docs/image.md for running it read-only as in production.

ARG BASE_IMAGE=python:3.11.14-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/build
WORKDIR /src
# .dockerignore lets in only the packaging files and the package sources.
COPY . .
RUN /opt/build/bin/python -m pip wheel --no-cache-dir --constraint constraints.txt \
        --wheel-dir /wheels .

FROM ${BASE_IMAGE} AS install
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# --no-index: every distribution comes from the wheels built above, pinned by constraints.txt.
# pip and setuptools are removed once they have served: nothing installs at run time.
# The dependencies' own test suites go too (64 MB: scipy, numpy, matplotlib, gevent…), and
# the stray top-level `test` package grafana-client's wheel ships.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --no-index --find-links /wheels \
        /wheels/elibrary_sre-*.whl \
    && /opt/venv/bin/python -m pip check \
    && /opt/venv/bin/python -m pip uninstall --yes setuptools pip \
    && find /opt/venv -depth -type d -name tests -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3.*/site-packages/test

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="elibrary-sre" \
      org.opencontainers.image.description="eLibrary service, MySQL and business exporter, and the sre toolkit" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# A fixed numeric user, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --system --gid 10001 elibrary \
    && useradd --system --uid 10001 --gid elibrary --home-dir /home/elibrary --create-home \
        --shell /usr/sbin/nologin elibrary \
    && install -d -o elibrary -g elibrary -m 0750 /var/lib/elibrary /run/elibrary

COPY --from=install /opt/venv /opt/venv

# With a read-only root filesystem these are the only places written to; mount them:
#   /tmp                  tmpfs: gunicorn's worker heartbeats, matplotlib's cache, temp files
#   /run/elibrary         tmpfs: prometheus-client's multiprocess files (SRE_METRICS_DIR)
#   /var/lib/elibrary     a volume, only for SQLite (production uses MySQL: DATABASE_URL)
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/elibrary \
    MPLCONFIGDIR=/tmp/matplotlib \
    SRE_METRICS_DIR=/run/elibrary/metrics \
    DATABASE_URL=sqlite:////var/lib/elibrary/elibrary.sqlite3 \
    SRE_APP_PORT=8000 \
    SRE_BUILD_REVISION=${REVISION}
# CMD leaves --port out so that `sre app serve` and the HEALTHCHECK both read SRE_APP_PORT.

USER 10001:10001
WORKDIR /var/lib/elibrary
EXPOSE 8000 9207

# Liveness of the app; for the exporter set SRE_HEALTHCHECK_URL=http://127.0.0.1:9207/healthz.
# Python rather than curl, which the image does not carry.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('SRE_HEALTHCHECK_URL') or 'http://127.0.0.1:%s/api/health' % os.environ['SRE_APP_PORT'], timeout=4)"]

ENTRYPOINT ["sre"]
CMD ["app", "serve", "--host", "0.0.0.0"]
