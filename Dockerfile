FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BILLING_DATABASE_URL=sqlite+aiosqlite:////data/billing.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 billing \
    && mkdir -p /data && chown billing:billing /data

USER billing
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["billing-graphql", "serve", "--host", "0.0.0.0", "--port", "8000"]
