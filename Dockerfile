# One image for the gateway and the compile workers (they share the artifact volume and the database).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sdk sdk
COPY services services
COPY workers workers
COPY device_agents device_agents
COPY migrations migrations
RUN pip install --no-cache-dir -e '.[server,worker]'
ENV EDGEFARM_DATA_DIR=/data
EXPOSE 8000
CMD ["python", "-m", "edgefarm_gateway", "serve", "--host", "0.0.0.0"]
