# valve: `make demo` serves the bundled example, `make check` builds and runs every test.
# Both do all the set-up on a fresh Debian bookworm machine (as root) and are quick when
# everything is already there: each step is a file that is rebuilt only when its inputs change.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# A JDK >= 21 for Maven and for rJava: R picks its JVM from JAVA_HOME when it starts.
JAVA_HOME := $(shell inst/bin/find-jdk)
export JAVA_HOME
ifeq ($(JAVA_HOME),)
$(error no JDK >= 21 found: set JAVA_HOME or install one under /usr/lib/jvm)
endif

R_LIB := $(CURDIR)/.lib
STAMPS := $(CURDIR)/.stamps
export R_LIBS := $(R_LIB)
RSCRIPT := Rscript --no-init-file
MVN := mvn -B -q -f java/pom.xml
VERSION := $(shell sed -n 's/^Version: //p' DESCRIPTION)
TARBALL := valve_$(VERSION).tar.gz

APT_PACKAGES := r-base-core r-cran-rjava r-cran-plumber r-cran-testthat \
  r-cran-cli r-cran-rlang r-cran-jsonlite r-cran-later r-cran-curl r-cran-processx \
  r-cran-withr r-cran-roxygen2 maven openjdk-17-jre-headless util-linux procps curl \
  iproute2 dnsmasq-base r-cran-yaml nginx-light apache2-utils prometheus chromium \
  r-cran-shiny python3-websockets r-cran-knitr r-cran-markdown

JAVA_SOURCES := $(shell find java/src/main -type f) java/pom.xml
R_SOURCES := $(wildcard R/*.R) DESCRIPTION
PACKAGE_FILES := $(R_SOURCES) $(shell find inst tests -type f -not -path 'inst/java/*' 2>/dev/null)

.PHONY: help deps jars document install demo check java-test r-check bench image-test clean

help:
	@echo "make demo   serve the bundled example API on http://127.0.0.1:3000"
	@echo "make check  build everything and run every test (JUnit, R CMD check)"
	@echo "make bench  valve vs HAProxy vs nginx on the same workers (bench/latest.md, bench/latest.png)"
	@echo "make image-test  build the Dockerfile with podman from Debian alone and run it (minutes)"

deps: $(STAMPS)/apt

# Installs only what is missing, so a machine that has everything does no apt work at all.
$(STAMPS)/apt: Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@mkdir -p $(STAMPS) && touch $@

jars: inst/java/valve-engine.jar

inst/java/valve-engine.jar: $(JAVA_SOURCES) | $(STAMPS)/apt
	rm -rf inst/java
	$(MVN) package -DskipTests
	@touch $@

document: $(STAMPS)/document

# roxygen2 sources the R files rather than loading the package, so it needs no JVM.
$(STAMPS)/document: $(R_SOURCES) | $(STAMPS)/apt
	$(RSCRIPT) -e 'roxygen2::roxygenise(load_code = roxygen2::load_source)'
	@mkdir -p $(STAMPS) && touch $@

install: $(STAMPS)/install

$(STAMPS)/install: $(PACKAGE_FILES) inst/java/valve-engine.jar $(STAMPS)/document
	mkdir -p $(R_LIB)
	R CMD INSTALL --no-multiarch --library=$(R_LIB) . >/dev/null
	@touch $@

demo: install
	@echo "valve demo: once it says it is serving, try in another shell:"
	@echo "  curl 'http://127.0.0.1:3000/hello?name=valve'"
	@echo "  curl 'http://127.0.0.1:3000/sleep?ms=500'   (docs: http://127.0.0.1:3000/__docs__/)"
	$(RSCRIPT) -e 'valve::valve_run(system.file("examples", "hello", "plumber.R", package = "valve"), port = 3000, n_max = 4)'

# Not quiet: Surefire's summary lines are the record of what ran.
java-test: | $(STAMPS)/apt
	mvn -B -f java/pom.xml test

# End-to-end tests must run here: VALVE_E2E=required turns a would-be skip into a failure,
# and the testthat summary is checked for skips as well. Tests keep what a person should look at
# (the status page's screenshot) in VALVE_TEST_ARTIFACTS, and read the Dockerfile, which is not
# in the package, from VALVE_SOURCE_DIR. The vignettes are built (knitr, markdown: no pandoc).
r-check: $(STAMPS)/install
	rm -rf check && mkdir -p check
	cd check && R CMD build .. >/dev/null
	cd check && NOT_CRAN=true VALVE_E2E=required VALVE_SOURCE_DIR=$(CURDIR) VALVE_TEST_ARTIFACTS=$(CURDIR)/check/artifacts \
	  _R_CHECK_FUTURE_FILE_TIMESTAMPS_=false R CMD check --no-manual $(TARBALL)
	@summary=$$(grep -aE '\[ FAIL [0-9]+ \| WARN [0-9]+ \| SKIP [0-9]+ \| PASS [0-9]+ \]' check/valve.Rcheck/tests/testthat.Rout | tail -n 1); \
	echo "testthat: $$summary"; \
	pass=$$(sed -E 's/.*PASS ([0-9]+).*/\1/' <<<"$$summary"); \
	fail=$$(sed -E 's/.*FAIL ([0-9]+).*/\1/' <<<"$$summary"); \
	skip=$$(sed -E 's/.*SKIP ([0-9]+).*/\1/' <<<"$$summary"); \
	echo "R tests: $$pass passed, $$fail failed"; \
	if [ "$$skip" != "0" ]; then echo "make check: $$skip test(s) skipped; every test must run here" >&2; exit 1; fi

check: java-test r-check

BENCH_APT_PACKAGES := wrk haproxy nginx-light

# Bounded: BENCH_ROUNDS rounds (default 3) of about 40 wrk runs of BENCH_SECONDS each (default 5),
# plus start-ups (about 14 minutes in all); the timeout, scaled to both, is a backstop.
bench: install
	@missing=$$(for p in $(BENCH_APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	timeout $$(awk -v r="$${BENCH_ROUNDS:-3}" -v s="$${BENCH_SECONDS:-5}" 'BEGIN { print int(900 + 50 * r * s) }') $(RSCRIPT) bench/run.R

# Not part of check: minutes of apt, debootstrap and podman (tools/image-test.sh says what it
# does). The jars are built first so that Maven's local repository holds all the image's build needs.
image-test: jars
	tools/image-test.sh

clean:
	rm -rf $(R_LIB) $(STAMPS) check inst/java java/target
