# pyblob server image: `docker build -t pyblob . && docker run -p 8000:8000 -v pyblob-data:/data pyblob`
# BASE: any Debian-like image with python3 (>= 3.11) and its venv module; CI builds on a base it made
# with debootstrap (no registry is reachable there), everyone else gets the official slim image.
ARG BASE=python:3.12-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY objstore ./objstore
COPY s3api ./s3api
COPY shortlinks ./shortlinks
COPY pyblob ./pyblob
# A virtual environment of its own: a distribution's python3 refuses system-wide pip installs.
# PIP_CERT (optional): a CA bundle for pip, where the build machine reaches PyPI through a TLS proxy.
ARG PIP_CERT
RUN python3 -m venv /opt/pyblob && /opt/pyblob/bin/pip install . && rm -rf /src
ENV PATH=/opt/pyblob/bin:$PATH

# Run unprivileged; the data dir is a volume owned by that user (pyblob keeps it mode 0700).
RUN useradd --system --uid 10001 --home-dir /app --create-home pyblob \
    && mkdir /data && chown pyblob:pyblob /data
ENV PYBLOB_DATA_DIR=/data \
    PYBLOB_HOST=0.0.0.0
VOLUME /data
WORKDIR /app
USER pyblob
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD python3 -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PYBLOB_PORT', '8000'), timeout=4)"

CMD ["pyblob", "serve"]
