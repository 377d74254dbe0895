# natops image: the CLI, `natops serve` and `natops worker`, with the dataplane tools the netns
# runtime drives and git for the planner. Redis is external here (NATOPS_REDIS_URL); the gateway
# pods themselves use the image named in the ovn-vpc-nat-gw-config ConfigMap.
#
# The image runs the compiled JavaScript (dist/, from `npm run build` in the build stage) with the
# production dependencies only: no TypeScript sources, no compiler, no tsx at start.

# production dependencies, cached until package-lock.json changes
FROM node:20-bookworm-slim AS deps
WORKDIR /opt/natops
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# every dependency (esbuild), the sources, `npm run build` (bundled by esbuild, scripts/build.mjs)
FROM node:20-bookworm-slim AS build
WORKDIR /opt/natops
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# the whole checkout but what .dockerignore leaves out (tests, benchmarks, docs, node_modules):
# a new source folder needs no line here
COPY . .
RUN npm run build

FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iptables conntrack iputils-arping iputils-ping socat git \
 && rm -rf /var/lib/apt/lists/*
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
ENTRYPOINT ["node", "/opt/natops/bin/natops.js"]
CMD ["--help"]
