# idsync: one image for the API (`idsync serve`), the Celery worker (`idsync worker`),
# beat (`idsync beat`) and migrations (`idsync db upgrade`). See docker-compose.yml.
# The build context is limited by .dockerignore (an allowlist of the paths copied here).

# ---- build: wheels for idsync and every dependency (compilers only live here) ----
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the package needs; the wheels carry exactly the dependencies pyproject.toml
# declares (no dev extras), so worker and beat run on what a user installs.
COPY pyproject.toml README.md ./
COPY idsync ./idsync
COPY models ./models
COPY scim ./scim
COPY worker ./worker
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- runtime ----
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IDSYNC_DATA_DIR=/var/lib/idsync
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels idsync \
 && useradd --system --uid 10001 --home-dir /var/lib/idsync --create-home idsync
# The example configuration and worked example, so that
#   docker compose run --rm migrate idsync apply examples/acme.yaml --dry-run
# works as docs/worked-example.md writes it (relative to the working directory).
WORKDIR /opt/idsync
COPY examples ./examples
USER idsync
EXPOSE 8000
# Plain liveness for `docker run`; docker-compose.yml sets per-service healthchecks.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"
CMD ["idsync", "serve", "--host", "0.0.0.0", "--port", "8000"]
