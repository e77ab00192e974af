# The wiki + webhook mock services, for Docker mode.
#
#   docker build -f docker/mock.Dockerfile -t agent-harness-mocks:latest .
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -e AHP_MOCK_WIKI_TOKEN -e AHP_MOCK_WEBHOOK_TOKEN agent-harness-mocks:latest
#
# Tokens come from the environment (values taken from the Kitaru secrets `wiki-token` and
# `webhook-token` by the caller), never baked into the image. Only mocks/app.py and
# mocks/__main__.py run here, so the image needs FastAPI and uvicorn and nothing else.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONIOENCODING=utf-8 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install "fastapi>=0.110,<1" "uvicorn>=0.29,<1" "pydantic>=2.7,<3" \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin mock

WORKDIR /app
COPY mocks/__init__.py mocks/app.py mocks/__main__.py /app/mocks/

USER mock
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

CMD ["python", "-m", "mocks", "--host", "0.0.0.0", "--port", "8080"]
