# otel-costattr as a container: `otel-costattr serve` for the collector route (docker-compose.otel.yml).
# Build from the repository root: docker build -t otel-costattr .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the wheel is built from (the pricing tables are packed into it) and the lock, so that local
# virtualenvs and test data never enter the image.
COPY pyproject.toml uv.lock README.md ./
COPY otel_costattr ./otel_costattr
COPY pricing ./pricing
# The versions uv.lock pins for the serve extra (uvicorn + httptools: the serve command needs them), hash-checked,
# then the wheel built with the pinned build backend (pyproject's build constraints), installed with nothing left to
# resolve. uv (the version scripts/_uv.sh pins) only exports the lock and builds the wheel.
RUN pip install "uv==0.13.9" \
    && uv export --quiet --frozen --no-dev --extra serve --no-emit-project --no-header -o /tmp/requirements.txt \
    && uv build --quiet --wheel --out-dir /tmp/dist . \
    && pip uninstall -y uv \
    && pip install --no-deps --require-hashes -r /tmp/requirements.txt \
    && pip install --no-deps /tmp/dist/*.whl \
    && pip check \
    && rm -rf /src /tmp/requirements.txt /tmp/dist /root/.cache/uv

# /data holds the ledger; created here so a named volume mounted on it belongs to the service user.
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin costattr \
    && mkdir /data && chown costattr /data
USER costattr
WORKDIR /data

EXPOSE 4319
ENTRYPOINT ["otel-costattr"]
CMD ["serve", "--host", "0.0.0.0", "--port", "4319", "--forward", "http://collector:4320"]
