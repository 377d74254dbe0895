# natops CLI image with the dataplane tools it drives. The gateway pods themselves use the image
# named in the ovn-vpc-nat-gw-config ConfigMap; this image runs natops.
FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iptables conntrack iputils-arping iputils-ping socat \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/natops
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY cli ./cli
COPY common ./common
COPY dataplane ./dataplane
COPY gitops ./gitops
COPY lab ./lab
COPY runtime ./runtime
COPY examples ./examples
ENTRYPOINT ["node", "/opt/natops/bin/natops.js"]
CMD ["--help"]
