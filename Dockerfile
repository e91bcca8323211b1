# valve in a container: R + plumber + valve + Java >= 21, all from Debian trixie, serving an API
# with valve's command line.
#
#   docker build -t valve .
#   docker run -p 8000:8000 -v "$PWD/api:/api" valve            # serves ./api (plumber.R or entrypoint.R)
#   docker run -p 8000:8000 -e VALVE_N_MAX=8 valve --file /api/plumber.R
#
# Mount or COPY your API to /api (the image serves inst/examples/hello there until you do).
# Every option of `valve --help` can be set with a VALVE_* variable (or a flag after the image
# name); PORT sets the port. The admin listener (probes, /metrics, /status) is on
# VALVE_ADMIN_PORT (9090). `make image-test` builds and runs this file with podman.
#
# A Shiny app: build with `--build-arg EXTRA_PACKAGES=r-cran-shiny` (any Debian packages your
# app needs go there too) and mount the app's directory at /api: an app.R (or ui.R + server.R)
# is detected. Its sessions stick to workers inside this container (valve's cookie), so when you
# run several containers, put the affinity in front of them (a Service with sessionAffinity:
# ClientIP, or an Ingress with cookie affinity): each valve owns its workers' sessions. `valve k8s`
# (service mode) keeps no sessions and is for stateless plumber APIs only.

# Debian's JDK: 21 is trixie's default and valve's minimum; trixie also has 25.
ARG JAVA_VERSION=21

# What building needs: a JDK, Maven, R and the packages valve imports.
FROM debian:trixie-slim AS build-base
ARG JAVA_VERSION
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-${JAVA_VERSION}-jdk-headless maven \
      r-base-core r-cran-rjava r-cran-plumber r-cran-cli r-cran-rlang r-cran-jsonlite r-cran-later \
 && rm -rf /var/lib/apt/lists/*

FROM build-base AS build
COPY . /src
WORKDIR /src
# Maven 3.9 reads MAVEN_ARGS: `--build-arg MAVEN_ARGS=--offline` with a filled local repository
# mounted at /root/.m2/repository builds without Maven Central (make image-test does).
ARG MAVEN_ARGS=""
RUN JAVA_HOME=$(inst/bin/find-jdk) mvn -B -q -f java/pom.xml package -DskipTests \
 && R CMD INSTALL --no-test-load --library=/usr/local/lib/R/site-library .

# What running needs. The engine only runs jars: a JRE is enough (inst/bin/valve asks find-jdk
# for `java`, not `javac`). Workers need R and plumber; later is for their watchdog. tini is
# PID 1: it passes SIGTERM to valve and reaps any process orphaned inside the container. curl
# runs the HEALTHCHECK.
FROM debian:trixie-slim AS runtime-base
ARG JAVA_VERSION
ARG EXTRA_PACKAGES=""
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-${JAVA_VERSION}-jre-headless r-base-core r-cran-plumber r-cran-later tini curl ${EXTRA_PACKAGES} \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/valve valve

FROM runtime-base
COPY --from=build /usr/local/lib/R/site-library/valve /usr/local/lib/R/site-library/valve
COPY inst/examples/hello /api
ENV VALVE_HOST=0.0.0.0 \
    PORT=8000 \
    VALVE_ADMIN_PORT=9090
EXPOSE 8000 9090
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001:10001
WORKDIR /home/valve
# Ready: a worker answers (or one can start at once). The probe asks 127.0.0.1, so VALVE_HOST
# must be 0.0.0.0 (the default here) or 127.0.0.1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${VALVE_ADMIN_PORT}/readyz" || exit 1
# SIGTERM stops gracefully: in-flight requests get 10 s, then valve exits 0. Give `docker stop`
# more than that (`-t 15`) when requests may be in flight.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/lib/R/site-library/valve/bin/valve"]
CMD ["--dir", "/api"]
