# natops image: the CLI, `natops serve` and `natops worker`, with the dataplane tools the netns
# runtime drives and git for the planner. Redis is external here (NATOPS_REDIS_URL); the gateway
# pods themselves use the image named in the ovn-vpc-nat-gw-config ConfigMap.
FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iptables conntrack iputils-arping iputils-ping socat git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/natops
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY cli ./cli
COPY common ./common
COPY dataplane ./dataplane
COPY gitops ./gitops
COPY github ./github
COPY preview ./preview
COPY lab ./lab
COPY runtime ./runtime
COPY functions ./functions
COPY queue ./queue
COPY server ./server
COPY examples ./examples
ENTRYPOINT ["node", "/opt/natops/bin/natops.js"]
CMD ["--help"]
