# receiver: webhook receiver and normalizer. Data (SQLite file, generated credentials)
# lives in the /data volume; mount it to keep deliveries and webhook URLs across restarts.
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RECEIVER_DATA_DIR=/data \
    RECEIVER_MAPPINGS_DIR=/app/mappings

WORKDIR /app
COPY pyproject.toml README.md ./
COPY receiver ./receiver
COPY mappings ./mappings
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home --home-dir /app receiver \
    && mkdir -p /data \
    && chown receiver /data

USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["receiver", "serve", "--host", "0.0.0.0", "--port", "8000"]
