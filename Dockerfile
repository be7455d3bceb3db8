# syntax=docker/dockerfile:1
# The `etl` command in an image: `docker build -t etl .`, then `docker run --rm etl validate pipelines/`.
# etl is TypeScript that Node 24 runs as it is (type stripping): there is nothing to compile, so the image holds
# the sources and the production dependencies only. docker-compose.yml builds it for the whole stack.
ARG NODE_IMAGE=node:24-slim

# Production dependencies only (no compiler, test runner or linter). Lifecycle scripts stay off: no production
# dependency needs one, and a registry package then cannot run code at build time.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    ETL_DATA_DIR=/var/lib/etl
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# .nvmrc: bin/runtime.js reads it at start (the Node version etl targets).
COPY package.json package-lock.json .nvmrc ./
COPY bin ./bin
COPY engine ./engine
COPY operators ./operators
COPY pipelines ./pipelines
COPY deploy/etl ./deploy/etl
COPY deploy/loggen ./deploy/loggen
# The state directory and the log directory the compose stack mounts volumes on: a named volume takes the
# owner of the directory it is mounted on, so the unprivileged user can write there.
RUN ln -s /app/bin/etl.js /usr/local/bin/etl \
 && mkdir -p /var/lib/etl /var/log/nginx \
 && chown node:node /var/lib/etl /var/log/nginx
# `node` (uid 1000) comes with the official Node images.
USER node
VOLUME ["/var/lib/etl"]
# etl_* metrics when a pipeline sets telemetry.metrics.prometheus_port (9464 in pipelines/); set
# ETL_METRICS_HOST=0.0.0.0 so that they are reachable from outside the container.
EXPOSE 9464
ENTRYPOINT ["etl"]
CMD ["apply", "pipelines/web-access.yaml"]
