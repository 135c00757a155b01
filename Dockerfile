# dbmcp server image: non-root, config mounted at /etc/dbmcp/config.yaml, secrets from the environment.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dbmcp ./dbmcp
RUN pip install . && useradd --system --uid 10001 --no-create-home dbmcp
USER dbmcp
EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8765/healthz').status != 200)"
ENTRYPOINT ["dbmcp"]
CMD ["serve", "--config", "/etc/dbmcp/config.yaml"]
