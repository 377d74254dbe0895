# natops image: the CLI, `natops serve` and `natops worker`, with the dataplane tools the netns
# runtime drives and git for the planner. Redis is external here (NATOPS_REDIS_URL); the gateway
# pods themselves use the image named in the ovn-vpc-nat-gw-config ConfigMap
# (images/vpc-nat-gateway/Dockerfile).
#
# The image runs the compiled JavaScript (dist/, from `npm run build` in the build stage) with the
# production dependencies only: no TypeScript sources, no compiler, no tsx at start.
#
# It runs as the unprivileged user natops (uid 10001): the webhook, the planner, the dashboard and
# workers with `--runtime kubernetes` need no root. The netns runtime (gateways in network
# namespaces of the machine it runs on) needs root: run that container as root (`--user 0`,
# `runAsUser: 0`) with the host's network and NET_ADMIN.
#
# BASE is any Debian 12 image with Node 24 and npm in /usr/local/bin (the official
# node:24-bookworm-slim by default). Where no registry is reachable, scripts/natops-image.sh
# builds one here (images/base-image.sh) and passes it with --build-arg BASE=....
ARG BASE=node:24-bookworm-slim

# production dependencies, cached until package-lock.json changes
FROM ${BASE} AS deps
# a CA bundle for npm where the build's network re-signs TLS (scripts/natops-image.sh); unset here
ARG NPM_CONFIG_CAFILE
WORKDIR /opt/natops
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error

# the sources and `npm run build` (bundled by esbuild, scripts/build.mjs) on the production tree:
# esbuild is in it (tsx runs on it), and the build needs nothing else, so no devDependency is
# fetched. The whole checkout but what .dockerignore leaves out (tests, benchmarks, docs,
# node_modules) is copied: a new source folder needs no line here.
FROM deps AS build
COPY . .
RUN npm run build

FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iptables conntrack iputils-arping iputils-ping socat git ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 natops \
 && useradd --system --uid 10001 --gid natops --home-dir /var/lib/natops --create-home --shell /usr/sbin/nologin natops
WORKDIR /opt/natops
# Express's production mode: no error pages with stacks, cached views (natops's own last error
# handler already answers without a stack; this covers what reaches Express's default)
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY --from=deps /opt/natops/node_modules ./node_modules
# bin/natops.js finds no cli/main.ts here, so it runs dist/ as it is
COPY --from=build /opt/natops/dist ./dist
COPY bin ./bin
COPY examples ./examples
RUN ln -s /opt/natops/bin/natops.js /usr/local/bin/natops
# numeric, so a cluster's runAsNonRoot can tell it is not root
USER 10001:10001
# GET /healthz where `natops serve` listens (NATOPS_LISTEN, default 127.0.0.1:8080), with Node's
# own fetch: the image needs no curl
COPY images/natops/healthcheck.mjs ./healthcheck.mjs
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["node", "/opt/natops/healthcheck.mjs"]
ENTRYPOINT ["node", "/opt/natops/bin/natops.js"]
CMD ["--help"]
