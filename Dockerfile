# receiver: webhook receiver and normalizer. Data (SQLite file, generated credentials)
# lives in the /data volume; mount it to keep deliveries and webhook URLs across restarts.
#
# The image installs the same wheel as `pip install receiver-hooks` (mapping files
# included), built in a first stage, so the two cannot drift apart.

FROM python:3.11.10-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2
COPY . .
RUN python -m build --wheel --outdir /dist .

FROM python:3.11.10-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RECEIVER_DATA_DIR=/data
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && useradd --system --uid 10001 --no-create-home --home-dir /data receiver \
    && mkdir -p /data \
    && chown receiver /data \
    && chmod 0700 /data

USER 10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["receiver", "serve", "--host", "0.0.0.0", "--port", "8000"]
