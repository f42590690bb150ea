# footfall's image: one image for `footfall serve` and `footfall worker`.
# NOTE: no Docker engine runs where footfall is developed, so CI never builds this image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --uid 10001 footfall

USER footfall
EXPOSE 8000
# Embedded by default; the compose file passes the distributed URLs.
CMD ["footfall", "serve", "--host", "0.0.0.0", "--db", "/tmp/footfall.db"]
