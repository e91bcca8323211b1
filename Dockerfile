# valve in a container: R + plumber + valve + a JDK >= 21, serving an API with the CLI.
#
#   docker build -t valve .
#   docker run -p 8000:8000 -e PORT=8000 -v "$PWD/api:/api" valve --dir /api
#
# Mount or COPY your API to /api (a plumber.R, or an entrypoint.R). Every option of
# `valve --help` can be set with VALVE_* variables; PORT sets the port.

# Debian bookworm has no JDK >= 21: take one from the Eclipse Temurin image.
FROM eclipse-temurin:21-jdk AS jdk

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      r-base-core r-cran-rjava r-cran-plumber r-cran-cli r-cran-rlang r-cran-jsonlite \
      r-cran-later maven \
 && rm -rf /var/lib/apt/lists/*
COPY --from=jdk /opt/java/openjdk /opt/java/openjdk
ENV JAVA_HOME=/opt/java/openjdk
COPY . /src
WORKDIR /src
RUN mvn -B -q -f java/pom.xml package -DskipTests \
 && R CMD INSTALL --no-test-load --library=/usr/local/lib/R/site-library .

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      r-base-core r-cran-plumber r-cran-later util-linux \
 && rm -rf /var/lib/apt/lists/*
COPY --from=jdk /opt/java/openjdk /opt/java/openjdk
COPY --from=build /usr/local/lib/R/site-library/valve /usr/local/lib/R/site-library/valve
COPY inst/examples/hello /api
ENV JAVA_HOME=/opt/java/openjdk \
    VALVE_HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
# valve forwards SIGTERM to a graceful stop; no init wrapper is needed.
ENTRYPOINT ["/usr/local/lib/R/site-library/valve/bin/valve"]
CMD ["--dir", "/api"]
