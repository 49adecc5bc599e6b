# GraphiQL's scripts, installed from npm at build time so the explorer works without internet.
FROM python:3.11-slim AS explorer
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# What the wheel is built from: the metadata, the package, and queries/ (the registered documents,
# which the wheel carries as billing_graphql/queries); tests/test_wheel.py checks these lines.
COPY pyproject.toml README.md ./
COPY src ./src
COPY queries ./queries
RUN pip install --no-cache-dir . && billing-graphql install-explorer /opt/explorer

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BILLING_DATABASE_URL=sqlite+aiosqlite:////data/billing.db \
    BILLING_GRAPHIQL_ASSETS_DIR=/opt/explorer

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY queries ./queries
COPY --from=explorer /opt/explorer /opt/explorer
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 billing \
    && mkdir -p /data && chown billing:billing /data

USER billing
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["billing-graphql", "serve", "--host", "0.0.0.0", "--port", "8000"]
