# MaaS service image. Postgres runs separately (see docker-compose.yml); set MAAS_DATABASE_URL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MAAS_HOST=0.0.0.0 \
    MAAS_PORT=8000 \
    MAAS_DATA_DIR=/data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY maas ./maas
COPY selflearn ./selflearn
COPY web ./web
COPY bench ./bench
COPY migrations ./migrations
COPY seeds ./seeds
# Local embeddings as in the README's install; the CPU wheel of torch first, so pip does not pull
# the multi-GB CUDA build from PyPI.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install '.[local-embeddings]' \
 && useradd --create-home --uid 10001 maas \
 && mkdir -p /data \
 && chown maas:maas /data

# A normal user: the embedded Postgres is not used here, and nothing needs root.
USER maas
WORKDIR /home/maas
EXPOSE 8000
VOLUME ["/data"]

CMD ["maas", "serve"]
